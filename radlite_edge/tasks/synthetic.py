"""The synthetic task suite: all 9 tasks, deterministic from a seed, labels from the rules.

Test and validation samples come from ``synth_reports`` (RADS, in the published training mix)
and ``synth_tasks`` (the other eight), the generalization split from ``synth_heldout``, the train
split from ``synth_train`` (far more wording, labels balanced per task, sized on its own);
references are in the published answer styles. The
splits are disjoint by content: test is drawn first, then validation, then train, and a
sample whose normalised input (case, spacing and punctuation aside) was already drawn for
another split is drawn again. ``check_disjoint`` verifies the result on every suite made
and raises if any input crosses splits, so a leak fails loudly instead of flattering scores.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from typing import Iterable

from . import synth_heldout, synth_train
from . import synth_tasks as t
from .samples import Sample
from .synth_reports import Gen, _rads

GENERATORS: dict[str, Gen] = {
    "rads_assignment": _rads, "impression_generation": t.impression, "temporal_comparison": t.temporal,
    "radiology_ner": t.ner, "n_staging": t.n_staging, "m_staging": t.m_staging, "radiology_nli": t.nli,
    "abnormality_detection": t.chexpert, "radiology_qa": t.qa,
}
DEFAULT_N = 500  # test samples per task of `radlite data synth`
GENERALIZATION = "generalization"  # the split in wording training never uses
_DRAWS = 1000  # draws per sample before a generator is judged unable to avoid the other splits


class LeakError(RuntimeError):
    """The same input in two splits: scores on the later split would be inflated."""


def content_key(text: str) -> str:
    """An input as a duplicate check sees it: case, spacing and punctuation do not make it new."""
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def make_task_samples(task: str, n: int, *, seed: int = 0, split: str = "test",
                      taken: set[str] | None = None) -> list[Sample]:
    """``n`` samples of ``task``, none whose content is in ``taken`` (other splits' inputs). The
    generalization split comes from its own generators (``synth_heldout``), whose wording training
    never sees. Repeats within a split are left as drawn: rejecting them would skew the labels
    towards whichever label the generator words in more ways."""
    generators = {GENERALIZATION: synth_heldout.GENERATORS, "train": synth_train.GENERATORS}.get(split, GENERATORS)
    rng = random.Random(f"{seed}-{task}-{split}")
    taken = taken if taken is not None else set()
    out = []
    for i in range(n):
        for _ in range(_DRAWS):
            text, ref, labels = generators[task](rng)
            if content_key(text) not in taken:
                break
        else:
            raise LeakError(f"{task}: the generator cannot draw {n} {split} inputs outside the other splits")
        out.append(Sample(f"{task}-{split}-{i:05d}", task, text, ref, labels, "synthetic", split))
    return out


def make_suite(n_per_task: int, *, seed: int = 0, n_train: int | None = None, n_val: int | None = None,
               n_generalization: int | None = None) -> list[Sample]:
    """``n_per_task`` test samples per task, a generalization split in unseen wording, a validation
    split and a train split (few-shot pool, fine-tuning; ``n_train`` per task), all disjoint by content.
    The splits are drawn in that order from RNGs of their own, so the size of train changes no other split."""
    n_train = max(16, n_per_task // 4) if n_train is None else n_train
    n_val = max(8, n_per_task // 10) if n_val is None else n_val
    n_generalization = n_per_task if n_generalization is None else n_generalization
    out = []
    for task in GENERATORS:
        taken: set[str] = set()
        for split, n in (("test", n_per_task), (GENERALIZATION, n_generalization), ("val", n_val),
                         ("train", n_train)):
            samples = make_task_samples(task, n, seed=seed, split=split, taken=taken)
            taken |= {content_key(s.input) for s in samples}
            out += samples
    check_disjoint(out)
    return out


def check_disjoint(samples: Iterable[Sample]) -> dict[str, int]:
    """Inputs per split; raises ``LeakError`` naming the first input found in two splits."""
    seen: dict[tuple[str, str], str] = {}
    counts: dict[str, int] = defaultdict(int)
    for s in samples:
        key = (s.task, content_key(s.input))
        if key in seen and seen[key] != s.split:
            raise LeakError(f"{s.task}: sample {s.id} repeats a {seen[key]} input in the {s.split} split")
        seen.setdefault(key, s.split)
        counts[s.split] += 1
    return dict(counts)


def distinct_inputs(samples: Iterable[Sample]) -> dict[str, int]:
    """Distinct inputs per task (what a suite's variety is)."""
    keys: dict[str, set[str]] = defaultdict(set)
    for s in samples:
        keys[s.task].add(content_key(s.input))
    return {task: len(k) for task, k in keys.items()}
