"""Trivial answers and what they score: the floor every model score is read against.

For each task, on the same samples a model is scored on: the majority answer (the most
common reference label; per label for CheXpert), a constant answer a lazy model might give,
an echo of the input, and the empty answer. A score means something only above these.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

from .labels import CHEXPERT_LABELS
from .registry import Task, sample_score
from .samples import Sample
from .styles import chexpert_answer, temporal_answer

# the answer a lazy model gives whatever the report says, per task
CONSTANT_ANSWER: dict[str, str] = {
    "rads_assignment": "BI-RADS 2",
    "impression_generation": "No acute findings.",
    "temporal_comparison": temporal_answer([("general", "unchanged")]),
    "radiology_ner": "Anatomy: lung\nObservation (Present): opacity",
    "n_staging": "Negative. N staging: N0",
    "m_staging": "M0",
    "radiology_nli": "neutral",
    "abnormality_detection": chexpert_answer({label: "negative" for label in CHEXPERT_LABELS}),
    "radiology_qa": "No.",
}


def majority_answer(task: Task, samples: Sequence[Sample]) -> str:
    """The reference text of the most common reference value (CheXpert: each label's most common value)."""
    if task.name == "abnormality_detection":
        values = {label: Counter(task.reference_value(s).get(label) for s in samples).most_common(1)[0][0]
                  for label in CHEXPERT_LABELS}
        return chexpert_answer(values)
    by_value: dict[str, str] = {}
    counts: Counter = Counter()
    for s in samples:
        key = repr(task.reference_value(s))
        counts[key] += 1
        by_value.setdefault(key, s.reference)
    return by_value[counts.most_common(1)[0][0]]


def floors(task: Task, samples: Sequence[Sample]) -> dict[str, float]:
    """Mean primary score of each trivial answer on ``samples``."""
    if not samples:
        return {}
    majority = majority_answer(task, samples)
    answers: dict[str, Callable[[Sample], str]] = {
        "majority": lambda s: majority, "constant": lambda s: CONSTANT_ANSWER[task.name],
        "echo": lambda s: s.input, "empty": lambda s: "",
    }
    return {name: sum(sample_score(task, answer(s), s)[1] for s in samples) / len(samples)
            for name, answer in answers.items()}
