"""The one record shape of a task sample, and its JSONL files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from ..errors import UserError
from .labels import TASK_NAMES

SPLITS = ("train", "val", "test", "generalization")  # generalization: test cases in wording train never uses


@dataclass
class Sample:
    id: str
    task: str
    input: str
    reference: str  # what a perfect model writes
    labels: dict | None = None  # structured truth where the task has it (pairs, per-label values, rule inputs)
    source: str = "synthetic"
    split: str = "test"
    meta: dict = field(default_factory=dict)


def write_jsonl(path: Path, samples: Iterable[Sample]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(asdict(s), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: Path) -> list[Sample]:
    """Samples from a JSONL file; a malformed line is a UserError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such data file")
    try:
        return _read_samples(path)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}): give sample JSONL files") from None


def _read_samples(path: Path) -> list[Sample]:
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                sample = Sample(**raw)
            except (json.JSONDecodeError, TypeError) as e:
                raise UserError(f"{path}:{i}: not a sample record ({e})") from None
            if sample.task not in TASK_NAMES:
                raise UserError(f"{path}:{i}: unknown task {sample.task!r}")
            if sample.split not in SPLITS:
                raise UserError(f"{path}:{i}: split must be one of {', '.join(SPLITS)}, not {sample.split!r}")
            if not isinstance(sample.input, str) or not sample.input.strip():
                raise UserError(f"{path}:{i}: empty input")
            out.append(sample)
    return out


def read_dir(directory: Path) -> list[Sample]:
    directory = Path(directory)
    if not directory.exists():
        raise UserError(f"{directory}: no such data folder; it does not exist (make one with: radlite data synth -o DIR)")
    if not directory.is_dir():
        raise UserError(f"{directory}: a file, not a data folder: give the folder of sample JSONL files "
                        "(radlite data synth -o DIR)")
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        raise UserError(f"{directory}: no .jsonl sample files")
    return [s for f in files for s in read_jsonl(f)]
