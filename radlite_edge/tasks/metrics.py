"""Metrics of the 9 tasks, per sample and per corpus, with bootstrap intervals.

ROUGE-L comes from Google's ``rouge-score`` and BLEU from ``sacrebleu`` (maintained
implementations, not re-typed); accuracy, Jaccard and F1 are counted here because they
are one line each. Every per-sample score is in [0, 1]; a parse failure (None) scores 0.
"""

from __future__ import annotations

import functools
from collections import Counter
from typing import Callable, Hashable, Iterable, Sequence

import numpy as np


@functools.lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(pred: str | None, ref: str) -> float:
    if not pred:
        return 0.0
    return float(_rouge().score(ref, pred)["rougeL"].fmeasure)


def corpus_bleu(preds: Sequence[str | None], refs: Sequence[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu([p or "" for p in preds], [list(refs)]).score)


def length_ratio(preds: Sequence[str | None], refs: Sequence[str]) -> float:
    pred_words = sum(len((p or "").split()) for p in preds)
    return pred_words / max(1, sum(len(r.split()) for r in refs))


def exact(pred: Hashable | None, ref: Hashable) -> float:
    return float(pred is not None and pred == ref)


def jaccard(pred: set | None, ref: set) -> float:
    pred = pred or set()
    if not pred and not ref:
        return 1.0
    return len(pred & ref) / len(pred | ref)


def f1_counts(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def set_f1(preds: Iterable[set | None], refs: Iterable[set]) -> float:
    """Micro F1 over the items of all samples' sets (entity-level F1)."""
    tp = fp = fn = 0
    for p, r in zip(preds, refs):
        p = p or set()
        tp += len(p & r)
        fp += len(p - r)
        fn += len(r - p)
    return f1_counts(tp, fp, fn)


def macro_f1(preds: Sequence[Hashable | None], refs: Sequence[Hashable], labels: Sequence[Hashable]) -> float:
    """Mean over ``labels`` of one-vs-rest F1; a None prediction is a miss for its reference."""
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(preds, refs))
        fp = sum(p == label and r != label for p, r in zip(preds, refs))
        fn = sum(p != label and r == label for p, r in zip(preds, refs))
        if tp + fp + fn:
            scores.append(f1_counts(tp, fp, fn))
    return float(np.mean(scores)) if scores else 0.0


def per_group_accuracy(preds: Sequence, refs: Sequence, group: Callable[[object], str]) -> dict[str, float]:
    totals, hits = Counter(), Counter()
    for p, r in zip(preds, refs):
        g = group(r)
        totals[g] += 1
        hits[g] += p == r
    return {g: hits[g] / totals[g] for g in sorted(totals)}


def confusion(preds: Sequence, refs: Sequence, key: Callable[[object], str]) -> dict[str, dict[str, int]]:
    """reference group -> predicted group -> count ('unparsed' for None)."""
    out: dict[str, Counter] = {}
    for p, r in zip(preds, refs):
        out.setdefault(key(r), Counter())[key(p) if p is not None else "unparsed"] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def bootstrap_ci(scores: Sequence[float], *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-sample scores."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
