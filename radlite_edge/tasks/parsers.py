"""Output parsers: what a model wrote -> the task's value, or None when it cannot be read.

Tolerant of the variants models write ("BIRADS 4a", "bi-rads: 4A", "ACR TI-RADS TR 4",
"pN2", "Pleural effusion - present"); a parse failure is None, which every metric counts
as wrong. Parsers never raise on any string.
"""

from __future__ import annotations

import re

from .labels import CHANGES, CHEXPERT_LABELS, NER_TYPES, NO_RADS, RADS_SYSTEMS

_SEP = r"[\s:=,\-]*(?:category|cat\.?|score|class)?[\s:=\-]*"
# system -> (alias regex, category regex, normaliser of the category match)
_RADS_PATTERNS = {
    "BI-RADS": (r"\bbi[\s\-_]?rads", r"([0-6])\s*([abc])?(?![0-9])", lambda m: m[1] + (m[2] or "").upper()),
    "TI-RADS": (r"\b(?:acr[\s\-]?)?ti[\s\-_]?rads", r"(?:tr)?\s*-?\s*([1-5])(?![0-9])", lambda m: "TR" + m[1]),
    "LI-RADS": (r"\bli[\s\-_]?rads", r"(?:lr)?\s*-?\s*(tiv|m|[1-5])(?![0-9a-z])", lambda m: "LR-" + m[1].upper()),
    "PI-RADS": (r"\bpi[\s\-_]?rads", r"([1-5])(?![0-9])", lambda m: m[1]),
    "VI-RADS": (r"\bvi[\s\-_]?rads", r"([1-5])(?![0-9])", lambda m: m[1]),
    "O-RADS": (r"\bo[\s\-_]?rads", r"([0-5])(?![0-9])", lambda m: m[1]),
    "NI-RADS": (r"\bni[\s\-_]?rads", r"([1-4])(?![0-9])", lambda m: m[1]),
    "Lung-RADS": (r"\blung[\s\-_]?rads", r"([0-4])\s*([abx])?(?![0-9])", lambda m: m[1] + (m[2] or "").upper()),
    "GB-RADS": (r"\bgb[\s\-_]?rads", r"([0-5])(?![0-9])", lambda m: m[1]),
    "CAD-RADS": (r"\bcad[\s\-_]?rads", r"([0-5]|n)\s*([ab])?(?![0-9])", lambda m: m[1].upper() + (m[2] or "").upper()),
}
_RADS_RE = {s: re.compile(alias + _SEP + cat, re.IGNORECASE) for s, (alias, cat, _) in _RADS_PATTERNS.items()}
_NO_RADS_RE = re.compile(r"\bno\s+applicable\s+rads\b|\bnot\s+applicable\b|\bno\s+rads\b|\bn/a\b", re.IGNORECASE)


def parse_rads(text: str) -> str | None:
    """'<SYSTEM> <category>' in canonical form, or 'No applicable RADS'; the earliest mention wins."""
    found: list[tuple[int, str]] = []
    for system, rx in _RADS_RE.items():
        m = rx.search(text)
        if m:
            cat = _RADS_PATTERNS[system][2](m)
            if cat in RADS_SYSTEMS[system]:
                found.append((m.start(), f"{system} {cat}"))
    m = _NO_RADS_RE.search(text)
    if m:
        found.append((m.start(), NO_RADS))
    return min(found)[1] if found else None


def rads_system(label: str | None) -> str | None:
    if label is None:
        return None
    return "none" if label == NO_RADS else label.split(" ", 1)[0]


def _stage(text: str, letter: str, top: int) -> str | None:
    m = re.search(rf"\b[cpy]?{letter}\s*([0-{top}])(?:[a-c]|mi)?\b", text, re.IGNORECASE)
    return f"{letter}{m[1]}" if m else None


def parse_n_stage(text: str) -> str | None:
    return _stage(text, "N", 3)


def parse_m_stage(text: str) -> str | None:
    return _stage(text, "M", 1)


_NLI = {"entailment": r"entail", "contradiction": r"contradict", "neutral": r"neutral"}


def parse_nli(text: str) -> str | None:
    hits = [(m.start(), label) for label, rx in _NLI.items() if (m := re.search(rx, text, re.IGNORECASE))]
    return min(hits)[1] if hits else None


_VALUE_WORDS = {
    "positive": ("positive", "present", "yes", "1"),
    "negative": ("negative", "absent", "no", "0"),
    "uncertain": ("uncertain", "possible", "equivocal", "maybe", "-1"),
}
_VALUE_OF = {w: v for v, words in _VALUE_WORDS.items() for w in words}


def parse_chexpert(text: str) -> dict[str, str]:
    """Label -> positive/negative/uncertain for each label the text states (others absent)."""
    out: dict[str, str] = {}
    for label in CHEXPERT_LABELS:
        m = re.search(rf"^\W*{re.escape(label)}\s*[:=\-]\s*(-?\w+)", text, re.IGNORECASE | re.MULTILINE)
        if m and m[1].lower() in _VALUE_OF:
            out[label] = _VALUE_OF[m[1].lower()]
    return out


_CHANGE_WORDS = {
    "new": ("new", "newly"),
    "worsened": ("worsened", "worse", "increased", "progressed", "enlarged", "worsening"),
    "improved": ("improved", "better", "decreased", "smaller", "improving"),
    "resolved": ("resolved", "cleared", "gone", "resolution"),
    "unchanged": ("unchanged", "stable", "no change", "same"),
}


def normalise_phrase(text: str) -> str:
    t = re.sub(r"[^\w\s\-]", " ", text.lower())
    t = re.sub(r"\b(the|a|an)\b", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def parse_temporal(text: str) -> set[tuple[str, str]]:
    """(finding, change) pairs from lines 'finding: change'."""
    pairs = set()
    for line in text.splitlines():
        m = re.match(r"^\W*(.+?)\s*[:\-–]\s*(\w[\w ]*?)\W*$", line.strip())
        if not m:
            continue
        word = m[2].lower()
        change = next((c for c, words in _CHANGE_WORDS.items() if word in words), None)
        if change in CHANGES and normalise_phrase(m[1]):
            pairs.add((normalise_phrase(m[1]), change))
    return pairs


_NER_ALIASES = {t.lower(): t for t in NER_TYPES} | {
    "anatomy": "ANAT-DP", "observation present": "OBS-DP", "present": "OBS-DP",
    "absent": "OBS-DA", "observation absent": "OBS-DA", "uncertain": "OBS-U", "observation uncertain": "OBS-U",
}


def parse_ner(text: str) -> set[tuple[str, str]]:
    """(entity text, RadGraph type) pairs from lines 'text | TYPE' or 'text (TYPE)'."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"^\W*(.+?)\s*(?:\||\(|:)\s*([A-Za-z\- ]+?)\)?\s*$", line.strip())
        if m and m[2].strip().lower() in _NER_ALIASES and normalise_phrase(m[1]):
            out.add((normalise_phrase(m[1]), _NER_ALIASES[m[2].strip().lower()]))
    return out


def parse_free_text(text: str) -> str | None:
    t = text.strip()
    return t or None
