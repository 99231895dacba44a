"""Training examples: task samples rendered exactly as eval renders them, loss on the answer only.

The prompt is ``Task.prompt`` through the same prompt profile eval uses (byte for byte the
published interface by default); the answer is the sample's reference (in the published answer
style) and the published stop, ``<|im_end|>``. Prompt and answer are tokenized apart, as
generation sees them, and the labels are -100 over the prompt (the assistant turn alone is
trained). Task-weighted mixing draws the training set; the leakage check runs first.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from radlite_edge.errors import UserError
from radlite_edge.tasks import TASKS, Sample
from radlite_edge.tasks.interface import PUBLISHED
from radlite_edge.tasks.prompts import DEFAULT_PROFILE, PromptProfile
from radlite_edge.tasks.synthetic import LeakError, check_disjoint

IGNORE = -100  # the label value the loss skips


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]
    task: str


def render(sample: Sample, tokenizer, *, profile: PromptProfile = DEFAULT_PROFILE) -> Example:
    task = TASKS[sample.task]
    prompt = tokenizer(task.prompt(sample.input, profile=profile), add_special_tokens=False)["input_ids"]
    answer = tokenizer(sample.reference + PUBLISHED.generation.stop[0], add_special_tokens=False)["input_ids"]
    return Example(prompt + answer, [IGNORE] * len(prompt) + answer, sample.task)


def mixture(samples: Sequence[Sample], weights: dict[str, float], total: int, *, seed: int) -> list[Sample]:
    """``total`` training samples, task t drawn with probability ∝ (its training samples) × weight_t,
    as the published mixing weights a dataset; within a task, without replacement until exhausted."""
    by_task: dict[str, list[Sample]] = {}
    for s in samples:
        if s.split == "train":
            by_task.setdefault(s.task, []).append(s)
    unknown = sorted(set(weights) - set(TASKS))
    if unknown:
        raise UserError(f"task_weights: unknown task {unknown[0]!r}")
    tasks = [t for t in by_task if weights.get(t, 0) > 0]
    if not tasks:
        raise UserError("no training samples of a weighted task in the data (radlite data synth writes a train split)")
    rng = random.Random(seed)
    share = [len(by_task[t]) * weights[t] for t in tasks]
    pools = {t: rng.sample(by_task[t], len(by_task[t])) for t in tasks}
    out = []
    for t in rng.choices(tasks, share, k=total):
        if not pools[t]:
            pools[t] = rng.sample(by_task[t], len(by_task[t]))
        out.append(pools[t].pop())
    return out


def describe(mix: Sequence[Sample]) -> dict[str, float]:
    counts = Counter(s.task for s in mix)
    return {t: counts[t] / len(mix) for t in sorted(counts)}


def check_no_leak(samples: Sequence[Sample]) -> None:
    """The interface's leakage check, before any training: a training input equal (by content) to a
    validation, test or generalization input stops the run."""
    try:
        check_disjoint(samples)
    except LeakError as e:
        raise UserError(f"leakage check failed: {e}; fix the data before training") from None
