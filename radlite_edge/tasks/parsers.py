"""Output parsers: what a model wrote -> the task's value, or None when it cannot be read.

They read the answer styles the published RadLite models write (RADLITE.md: "BI-RADS 4",
"- [New Finding] new (related to: opacity)", "Anatomy: ...; Observation (Present): ...",
"- Atelectasis: negative") and the common variants of other models ("BI-RADS Category 4A",
"PI-RADS v2.1: 4", "LR-5", "T2N1M0", "not entailed", CheXpert groups or JSON, temporal prose).
A think block (Qwen3's, empty or not) is dropped first. A parse failure is None, which every
metric counts as wrong (strict scoring, as the paper); parsers never raise on any string and
never take a number out of a version ("v2.1", "v2022").
"""

from __future__ import annotations

import json
import re

from .labels import CHANGES, CHEXPERT_LABELS, NER_TYPES, NO_RADS, RADS_SYSTEMS
from .styles import TEMPORAL_STYLE

_THINK = re.compile(r"\A\s*<think>.*?(?:</think>\s*|\Z)", re.DOTALL)


def strip_think(text: str) -> str:
    """The answer after a leading think block; an unclosed block leaves no answer."""
    return _THINK.sub("", text or "", count=1)


# ------------------------------------------------------------------------ RADS

# what may stand between a system's name and its category: a version, a modality, a word
_BETWEEN = (r"(?:[\s:=,\-]|\bv(?:ersion)?\s*\d+(?:\.\d+)*\b|\(?\b(?:19|20)\d\d\b\)?|\b(?:us|mri?|ct)\b|"
            r"\bcategory\b|\bcat\b\.?|\bscore\b|\bclass\b|\bassessment\b|\bis\b|\bof\b)*")
# system -> (alias regex, category regex, normaliser of the category match)
_RADS_PATTERNS = {
    "BI-RADS": (r"\bbi[\s\-_]?rads", r"([0-6])\s*([abc](?![a-z]))?(?!\.?[0-9])", lambda m: m[1] + (m[2] or "").upper()),
    "TI-RADS": (r"\b(?:acr[\s\-]?)?ti[\s\-_]?rads", r"(?:tr)?\s*-?\s*([1-5])(?!\.?[0-9])", lambda m: "TR" + m[1]),
    "LI-RADS": (r"\bli[\s\-_]?rads", r"(?:lr)?\s*-?\s*(tiv|m|[1-5])(?!\.?[0-9]|[a-z])", lambda m: "LR-" + m[1].upper()),
    "PI-RADS": (r"\bpi[\s\-_]?rads", r"([1-5])(?!\.?[0-9])", lambda m: m[1]),
    "VI-RADS": (r"\bvi[\s\-_]?rads", r"([1-5])(?!\.?[0-9])", lambda m: m[1]),
    "O-RADS": (r"\bo[\s\-_]?rads", r"([0-5])(?!\.?[0-9])", lambda m: m[1]),
    "NI-RADS": (r"\bni[\s\-_]?rads", r"([1-4])(?!\.?[0-9])", lambda m: m[1]),
    "Lung-RADS": (r"\blung[\s\-_]?rads", r"([0-4])\s*([abx](?![a-z]))?(?!\.?[0-9])", lambda m: m[1] + (m[2] or "").upper()),
    "GB-RADS": (r"\bgb[\s\-_]?rads", r"([0-5])(?!\.?[0-9])", lambda m: m[1]),
    "CAD-RADS": (r"\bcad[\s\-_]?rads", r"([0-5]|n)\s*([ab](?![a-z]))?(?!\.?[0-9])", lambda m: m[1].upper() + (m[2] or "").upper()),
}
_RADS_RE = {s: re.compile(alias + _BETWEEN + cat, re.IGNORECASE) for s, (alias, cat, _) in _RADS_PATTERNS.items()}
# a category written without its system's name: only where the notation names the system
_BARE = {
    "LI-RADS": (re.compile(r"\bLR-?(TIV|M|[1-5])(?!\.?[0-9]|[a-z])", re.IGNORECASE), lambda m: "LR-" + m[1].upper()),
    "TI-RADS": (re.compile(r"\bTR-?([1-5])(?!\.?[0-9])", re.IGNORECASE), lambda m: "TR" + m[1]),
}
_NO_RADS_RE = re.compile(r"\bno\s+applicable\s+rads\b|\bnot\s+applicable\b|\bno\s+rads\b|\bn/a\b", re.IGNORECASE)


def parse_rads(text: str) -> str | None:
    """'<SYSTEM> <category>' in canonical form, or 'No applicable RADS'.

    The earliest category mentioned wins; "not applicable" counts only when no category is
    given (a model that names a category and adds a caveat has answered).
    """
    text = strip_think(text)
    found: list[tuple[int, str]] = []
    for system, rx in _RADS_RE.items():
        for m in rx.finditer(text):
            cat = _RADS_PATTERNS[system][2](m)
            if cat in RADS_SYSTEMS[system]:
                found.append((m.start(), f"{system} {cat}"))
                break
    if not found:
        for system, (rx, norm) in _BARE.items():
            m = rx.search(text)
            if m and norm(m) in RADS_SYSTEMS[system]:
                found.append((m.start(), f"{system} {norm(m)}"))
    if found:
        return min(found)[1]
    return NO_RADS if _NO_RADS_RE.search(text) else None


def rads_system(label: str | None) -> str | None:
    if label is None:
        return None
    return "none" if label == NO_RADS else label.split(" ", 1)[0]


# --------------------------------------------------------------------- staging


def _stage(text: str, letter: str, top: int) -> str | None:
    """The first ``letter`` stage: "N2", "pN3b", "ypN0", "N-2", "T2N1M0", "N staging: N1"; "Nx" is no stage."""
    text = strip_think(text)
    # a stage ends at a non-word or where the next TNM part starts ("T2N1M0")
    rx = (rf"(?:(?<![A-Za-z])|(?<=[0-9]))(?:[cpyr]|yp)?{letter}\s*-?\s*([0-{top}]|x)(?:[a-c]|mi)?"
          r"(?=$|[^0-9A-Za-z]|[TNM][0-9xX])")
    m = re.search(rx, text, re.IGNORECASE)
    if m is None or m[1].lower() == "x":
        return None
    return f"{letter}{m[1]}"


def parse_n_stage(text: str) -> str | None:
    return _stage(text, "N", 3)


def parse_m_stage(text: str) -> str | None:
    return _stage(text, "M", 1)


# ------------------------------------------------------------------------- NLI

_NLI = {"entailment": r"entail", "contradiction": r"contradict", "neutral": r"neutral"}
_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|cannot)\b|n't\b", re.IGNORECASE)


def parse_nli(text: str) -> str | None:
    """The first label the text asserts; "not entailed" is not entailment, "neither … nor" is neutral."""
    text = strip_think(text)
    if re.search(r"\bneither\b.*\bnor\b", text, re.IGNORECASE | re.DOTALL):
        return "neutral"
    hits = []
    for label, rx in _NLI.items():
        for m in re.finditer(rx, text, re.IGNORECASE):
            before = text[max(0, m.start() - 20):m.start()]
            if not _NEGATION.search(re.split(r"[.;,]", before)[-1]):
                hits.append((m.start(), label))
                break
    return min(hits)[1] if hits else None


# ------------------------------------------------------------------ CheXpert

_VALUE_WORDS = {
    "positive": ("positive", "present", "yes", "1", "1.0"),
    "negative": ("negative", "absent", "no", "0", "0.0"),
    "uncertain": ("uncertain", "possible", "equivocal", "maybe", "-1", "-1.0"),
}
_VALUE_OF = {w: v for v, words in _VALUE_WORDS.items() for w in words}
_LABEL_OF = {label.lower(): label for label in CHEXPERT_LABELS}
_LABELS_RX = "|".join(re.escape(label) for label in sorted(CHEXPERT_LABELS, key=len, reverse=True))


def parse_chexpert(text: str) -> dict[str, str]:
    """Label -> positive/negative/uncertain for each label the text states (others absent).

    Reads "- Label: value" lines (the published style), "Label: value" pairs in lines or comma
    lists, "Positive: a, b" / "Negative: c" groups, and a JSON object.
    """
    text = strip_think(text)
    out = _chexpert_json(text)
    if out:
        return out
    for m in re.finditer(rf"({_LABELS_RX})\s*[:=\-]\s*(-?[\w.]+)", text, re.IGNORECASE):
        label, value = _LABEL_OF[m[1].lower()], _VALUE_OF.get(m[2].lower())
        if value and label not in out:
            out[label] = value
    for m in re.finditer(r"^\W*(positive|negative|uncertain)(?:\s+findings?)?\s*:\s*(.+)$", text,
                         re.IGNORECASE | re.MULTILINE):
        for name in re.split(r"[,;]", m[2]):
            label = _LABEL_OF.get(name.strip(" .-").lower())
            if label and label not in out:
                out[label] = m[1].lower()
    return out


def _chexpert_json(text: str) -> dict[str, str]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = json.loads(text[start:end + 1])
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for key, value in data.items():
        label, v = _LABEL_OF.get(str(key).strip().lower()), _VALUE_OF.get(str(value).strip().lower())
        if label and v:
            out[label] = v
    return out


# ------------------------------------------------------------------ temporal

_CHANGE_WORDS = {
    "new": ("new", "newly", "new finding", "appeared", "interval development"),
    "worsened": ("worsened", "worse", "increased", "progressed", "enlarged", "worsening", "larger"),
    "improved": ("improved", "better", "decreased", "smaller", "improving", "reduced"),
    "resolved": ("resolved", "cleared", "gone", "resolution", "no longer seen"),
    "unchanged": ("unchanged", "stable", "no change", "same", "no interval change"),
}
_CHANGE_OF = {w: c for c, words in _CHANGE_WORDS.items() for w in words}
_CHANGE_RX = "|".join(re.escape(w) for w in sorted(_CHANGE_OF, key=len, reverse=True))
# the published style: "- [New Finding] new (related to: opacity)"
_PUBLISHED_TEMPORAL = re.compile(r"^\W*\[([^\]]+)\]\s*([\w ]*?)\s*\(related to:\s*([^)]*)\)", re.IGNORECASE)
def normalise_phrase(text: str) -> str:
    t = re.sub(r"[^\w\s\-]", " ", text.lower())
    t = re.sub(r"\b(the|a|an)\b", " ", t)
    return re.sub(r"\s+", " ", t).strip()


def _change(words: str) -> str | None:
    w = normalise_phrase(words)
    return _CHANGE_OF.get(w) or next((c for c, (bracket, _) in TEMPORAL_STYLE.items() if bracket.lower() == w), None)


def parse_temporal(text: str) -> set[tuple[str, str]]:
    """(finding, change) pairs from the published lines, from 'finding: change' lines, and from prose
    ("The effusion has worsened.", "New right pleural effusion.")."""
    pairs = set()
    for line in strip_think(text).splitlines():
        line = line.strip()
        pair = _published_temporal(line) or _colon_temporal(line)
        if pair:
            pairs.add(pair)
            continue
        pairs |= _prose_temporal(line)
    return {(f, c) for f, c in pairs if f and c in CHANGES}


def _published_temporal(line: str) -> tuple[str, str] | None:
    m = _PUBLISHED_TEMPORAL.match(line)
    if not m:
        return None
    change = _change(m[1]) or _change(m[2])
    return (normalise_phrase(m[3]), change) if change else None


def _colon_temporal(line: str) -> tuple[str, str] | None:
    m = re.match(r"^\W*(.+?)\s*[:\-–]\s*(\w[\w ]*?)\W*$", line)
    if not m:
        return None
    change = _change(m[2])
    return (normalise_phrase(m[1]), change) if change else None


def _prose_temporal(line: str) -> set[tuple[str, str]]:
    out = set()
    for sentence in re.split(r"[.;]\s*", line):
        m = re.match(rf"^\W*(?:interval\s+)?({_CHANGE_RX})\s+(.+)$", sentence, re.IGNORECASE)  # "New effusion"
        if m is None:
            m2 = re.match(rf"^\W*(.+?)\s+(?:is|are|has|have|has been|have been|appears|remains|now)?\s*"
                          rf"(?:now\s+)?({_CHANGE_RX})\W*$", sentence, re.IGNORECASE)  # "The effusion has worsened"
            if m2:
                out.add((normalise_phrase(m2[1]), _CHANGE_OF[m2[2].lower()]))
            continue
        out.add((normalise_phrase(m[2]), _CHANGE_OF[m[1].lower()]))
    return out


# ------------------------------------------------------------------------- NER

_NER_ALIASES = {t.lower(): t for t in NER_TYPES} | {
    "anatomy": "ANAT-DP", "observation present": "OBS-DP", "present": "OBS-DP", "observation": "OBS-DP",
    "absent": "OBS-DA", "observation absent": "OBS-DA", "uncertain": "OBS-U", "observation uncertain": "OBS-U",
}
def _ner_type(name: str) -> str | None:
    return _NER_ALIASES.get(re.sub(r"\s+", " ", re.sub(r"[()]", " ", name)).strip().lower())


def parse_ner(text: str) -> set[tuple[str, str]]:
    """(entity text, RadGraph type) pairs from the published lines ("Anatomy: right; upper; lobe",
    "Observation (Present): mass; ...") and from lines 'text | TYPE' or 'text (TYPE)'."""
    out = set()
    for line in strip_think(text).splitlines():
        line = line.strip()
        head = re.match(r"^\W*([A-Za-z]+(?:\s*\(\s*[A-Za-z]+\s*\))?)\s*:\s*(.*)$", line)
        kind = _ner_type(re.sub(r"\s+", " ", head[1])) if head else None
        if kind and head[1].lower().startswith(("anatomy", "observation")):
            out |= {(normalise_phrase(e), kind) for e in head[2].split(";") if normalise_phrase(e)}
            continue
        m = re.match(r"^\W*(.+?)\s*(?:\||\(|:)\s*([A-Za-z\- ]+?)\)?\s*$", line)
        if m and m[2].strip().lower() in _NER_ALIASES and normalise_phrase(m[1]):
            out.add((normalise_phrase(m[1]), _NER_ALIASES[m[2].strip().lower()]))
    return out


def parse_free_text(text: str) -> str | None:
    t = strip_think(text).strip()
    return t or None
