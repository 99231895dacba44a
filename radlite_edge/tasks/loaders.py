"""Public radiology datasets, read from their own file formats into task samples.

- RadNLI (JSONL: pair_id, sentence1, sentence2, gold_label) -> radiology_nli
- RadGraph (JSON: doc id -> text, entities {tokens, label, ...}) -> radiology_ner
- MIMIC-CXR reports (text files with FINDINGS: / IMPRESSION: sections) -> impression_generation
- Open-I / IU X-ray (XML with AbstractText Label="FINDINGS" / "IMPRESSION") -> impression_generation
- CheXpert / CheXbert label CSV (report column + 14 labels as 1, 0, -1 or blank) -> abnormality_detection
- generic JSONL or CSV with a column mapping (task=, input=, reference=, id=)

A missing file, a missing field or an unreadable record is a ``UserError`` that names the
file, the record and the field.
"""

from __future__ import annotations

import csv
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..errors import UserError
from .labels import CHEXPERT_LABELS, NER_TYPES, NLI_LABELS
from .samples import SPLITS, Sample


def _files(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes)
        if not files:
            raise UserError(f"{path}: no {'/'.join(suffixes)} files in the directory")
        return files
    if not path.is_file():
        raise UserError(f"{path}: no such file or directory")
    return [path]


def _need(record: dict, field: str, where: str):
    if field not in record or record[field] in (None, ""):
        raise UserError(f"{where}: missing field {field!r}")
    return record[field]


def load_radnli(path: Path, split: str) -> list[Sample]:
    out = []
    for f in _files(path, (".jsonl", ".json")):
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{f}:{i}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{where}: not a JSON line") from None
            label = str(_need(rec, "gold_label", where)).lower()
            if label not in NLI_LABELS:
                raise UserError(f"{where}: gold_label {label!r} is not one of {', '.join(NLI_LABELS)}")
            text = f"Premise: {_need(rec, 'sentence1', where)}\nHypothesis: {_need(rec, 'sentence2', where)}"
            out.append(Sample(f"radnli-{rec.get('pair_id', i)}", "radiology_nli", text, label, None, "radnli", split))
    return out


def load_radgraph(path: Path, split: str) -> list[Sample]:
    out = []
    for f in _files(path, (".json",)):
        try:
            docs = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            raise UserError(f"{f}: not valid JSON (RadGraph files map document ids to annotations)") from None
        if not isinstance(docs, dict):
            raise UserError(f"{f}: expected an object of documents")
        for doc_id, doc in docs.items():
            where = f"{f}: document {doc_id}"
            text = _need(doc, "text", where)
            entities = []
            for eid, ent in (doc.get("entities") or {}).items():
                label = _need(ent, "label", f"{where} entity {eid}")
                if label not in NER_TYPES:
                    raise UserError(f"{where} entity {eid}: label {label!r} is not a RadGraph type")
                entities.append((str(_need(ent, "tokens", f"{where} entity {eid}")), label))
            unique = list(dict.fromkeys(entities))
            reference = "\n".join(f"{t} | {k}" for t, k in unique)
            out.append(Sample(f"radgraph-{doc_id}", "radiology_ner", text, reference,
                              {"entities": [list(e) for e in unique]}, "radgraph", split))
    return out


_SECTION = re.compile(r"^\s*([A-Z][A-Z /]+):", re.MULTILINE)


def report_sections(text: str) -> dict[str, str]:
    """Upper-case 'NAME:' headed sections of a free-text report."""
    marks = list(_SECTION.finditer(text))
    out = {}
    for m, nxt in zip(marks, marks[1:] + [None]):
        body = text[m.end(): nxt.start() if nxt else len(text)]
        out[m.group(1).strip()] = re.sub(r"\s+", " ", body).strip()
    return out


def _impression_sample(source: str, sid: str, findings: str | None, impression: str | None,
                       split: str) -> Sample | None:
    if not findings or not impression:
        return None  # reports without both sections cannot be a sample; they are skipped, not errors
    return Sample(f"{source}-{sid}", "impression_generation", f"FINDINGS: {findings}", impression, None, source, split)


def load_mimic_cxr(path: Path, split: str) -> list[Sample]:
    out = []
    for f in _files(path, (".txt",)):
        sec = report_sections(f.read_text(encoding="utf-8", errors="replace"))
        s = _impression_sample("mimic-cxr", f.stem, sec.get("FINDINGS"), sec.get("IMPRESSION"), split)
        if s:
            out.append(s)
    if not out:
        raise UserError(f"{path}: no report has both a FINDINGS: and an IMPRESSION: section")
    return out


def load_openi(path: Path, split: str) -> list[Sample]:
    out = []
    for f in _files(path, (".xml",)):
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as e:
            raise UserError(f"{f}: not valid XML ({e})") from None
        parts = {el.get("Label", "").upper(): (el.text or "").strip() for el in root.iter("AbstractText")}
        s = _impression_sample("openi", f.stem, parts.get("FINDINGS"), parts.get("IMPRESSION"), split)
        if s:
            out.append(s)
    if not out:
        raise UserError(f"{path}: no report has both FINDINGS and IMPRESSION AbstractText")
    return out


_CX_VALUES = {"1": "positive", "1.0": "positive", "0": "negative", "0.0": "negative", "-1": "uncertain",
              "-1.0": "uncertain", "": "negative"}  # blank (not mentioned) counts as negative here


def load_chexpert(path: Path, split: str) -> list[Sample]:
    out = []
    for f in _files(path, (".csv",)):
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            text_col = next((c for c in ("Report Impression", "report", "Report", "text") if c in cols), None)
            if text_col is None:
                raise UserError(f"{f}: no report column (Report Impression, report or text)")
            missing = [label for label in CHEXPERT_LABELS if label not in cols]
            if missing:
                raise UserError(f"{f}: missing label column {missing[0]!r}")
            for i, row in enumerate(reader, 2):
                values = {}
                for label in CHEXPERT_LABELS:
                    raw = (row[label] or "").strip()
                    if raw not in _CX_VALUES:
                        raise UserError(f"{f}:{i}: {label} is {raw!r}; expected 1, 0, -1 or blank")
                    values[label] = _CX_VALUES[raw]
                reference = "\n".join(f"{label}: {values[label]}" for label in CHEXPERT_LABELS)
                out.append(Sample(f"chexpert-{f.stem}-{i}", "abnormality_detection", row[text_col].strip(), reference,
                                  {"values": values}, "chexpert", split))
    return out


def _parse_mapping(mapping: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in mapping:
        if "=" not in item:
            raise UserError(f"--map {item!r}: write FIELD=COLUMN (task=NAME, input=COL, reference=COL, id=COL)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    for need in ("task", "input", "reference"):
        if need not in out:
            raise UserError(f"generic loader needs --map {need}=...")
    return out


def _generic(rows: Iterable[tuple[str, dict]], mapping: dict[str, str], split: str, source: str) -> list[Sample]:
    from .registry import TASKS

    task = mapping["task"]
    if task not in TASKS:
        raise UserError(f"--map task={task}: unknown task (choose from {', '.join(TASKS)})")
    out = []
    for where, row in rows:
        sid = str(row.get(mapping.get("id", ""), "")) or where.rsplit(":", 1)[-1]
        out.append(Sample(f"{source}-{sid}", task, str(_need(row, mapping["input"], where)),
                          str(_need(row, mapping["reference"], where)), None, source, split))
    return out


def _generic_rows(fmt: str, files: list[Path]) -> Iterable[tuple[str, dict]]:
    for f in files:
        if fmt == "jsonl":
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        yield f"{f}:{i}", json.loads(line)
                    except json.JSONDecodeError:
                        raise UserError(f"{f}:{i}: not a JSON line") from None
        else:
            with open(f, newline="", encoding="utf-8") as fh:
                for i, row in enumerate(csv.DictReader(fh), 2):
                    yield f"{f}:{i}", row


def _generic_loader(fmt: str) -> Callable[..., list[Sample]]:
    def load_generic(path: Path, split: str, mapping: Sequence[str] = ()) -> list[Sample]:
        return _generic(_generic_rows(fmt, _files(path, (f".{fmt}",))), _parse_mapping(mapping), split, path.stem)
    return load_generic


# The dataset formats ``radlite data load`` reads: name -> loader(path, split[, mapping]).
LOADERS: dict[str, Callable[..., list[Sample]]] = {
    "radnli": load_radnli, "radgraph": load_radgraph, "mimic-cxr": load_mimic_cxr, "openi": load_openi,
    "chexpert": load_chexpert, "jsonl": _generic_loader("jsonl"), "csv": _generic_loader("csv"),
}
GENERIC_FORMATS = ("jsonl", "csv")  # the formats that take a --map


def load(fmt: str, path: Path, *, split: str = "test", mapping: Sequence[str] = ()) -> list[Sample]:
    if split not in SPLITS:
        raise UserError(f"--split {split}: choose one of {', '.join(SPLITS)}")
    if fmt not in LOADERS:
        raise UserError(f"unknown dataset format {fmt!r}: choose one of {', '.join(LOADERS)}")
    try:
        if fmt in GENERIC_FORMATS:
            return LOADERS[fmt](Path(path), split, mapping)
        return LOADERS[fmt](Path(path), split)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start} of a file): is this the {fmt} dataset?") from None
