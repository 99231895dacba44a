"""One record shape for every measured figure, appended as JSONL (DESIGN.md, Results)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from . import machine


@dataclass
class Result:
    model: str
    level: str
    benchmark: str  # a task name or a benchmark name
    metric: str
    value: float
    n: int = 1
    spread: float | None = None  # sample standard deviation (n-1) when n > 1
    unit: str = ""
    params: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=machine.describe)
    time: float = field(default_factory=time.time)

    @classmethod
    def from_samples(cls, samples: Sequence[float], **kwargs) -> "Result":
        """Median of the samples, their stdev as spread, n = len(samples)."""
        spread = statistics.stdev(samples) if len(samples) > 1 else None
        return cls(value=statistics.median(samples), n=len(samples), spread=spread, **kwargs)


def append_jsonl(path: Path, results: Sequence[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in results:
            f.write(json.dumps(asdict(r)) + "\n")


def read_jsonl(path: Path) -> list[Result]:
    with open(path) as f:
        return [Result(**json.loads(line)) for line in f if line.strip()]
