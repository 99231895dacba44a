"""Reference answers in the answer styles the published RadLite models write (RADLITE.md).

The synthetic suite's references are written here, so a model fine-tuned on it learns the
published output format and the same parsers read the published models and ours. Each
writer has a parser in ``parsers.py`` that reads it back (tests hold every reference to that).
"""

from __future__ import annotations

from typing import Iterable

from .labels import CHEXPERT_LABELS

# "- [New Finding] new (related to: opacity)": bracket name and change word, by change
TEMPORAL_STYLE = {"new": ("New Finding", "new"), "worsened": ("Worsened", "increased"),
                  "improved": ("Improved", "decreased"), "resolved": ("Resolved", "resolved"),
                  "unchanged": ("No Change", "stable")}
# "Anatomy: right; upper; lobe" / "Observation (Present): mass": line heads, by RadGraph type
NER_STYLE = {"ANAT-DP": "Anatomy", "OBS-DP": "Observation (Present)", "OBS-DA": "Observation (Absent)",
             "OBS-U": "Observation (Uncertain)"}
# the published abnormality answer lists the 14 labels alphabetically (No Finding among them)
CHEXPERT_ORDER = tuple(sorted(CHEXPERT_LABELS))


def n_staging_answer(stage: str) -> str:
    """The worked examples' form: 'Positive. N staging: N2' / 'Negative. N staging: N0'."""
    return f"{'Negative' if stage == 'N0' else 'Positive'}. N staging: {stage}"


def temporal_answer(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"- [{TEMPORAL_STYLE[c][0]}] {TEMPORAL_STYLE[c][1]} (related to: {finding})"
                     for finding, c in pairs)


def ner_answer(entities: Iterable[tuple[str, str]]) -> str:
    by_type: dict[str, list[str]] = {}
    for text, kind in entities:
        by_type.setdefault(kind, []).append(text)
    return "\n".join(f"{NER_STYLE[k]}: {'; '.join(by_type[k])}" for k in NER_STYLE if k in by_type)


def chexpert_answer(values: dict[str, str]) -> str:
    return "\n".join(f"- {label}: {values[label]}" for label in CHEXPERT_ORDER)
