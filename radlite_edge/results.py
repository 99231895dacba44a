"""One record shape for every measured figure, appended as JSONL (DESIGN.md, Results)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from . import machine
from .identity import ModelId

DEFAULT_RESULTS = Path("results/bench.jsonl")  # where bench and fidelity append, and report reads


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
    stat: str = "median"  # what ``value`` is of the n figures: "median" or "mean"
    samples: list[float] | None = None  # the raw figures, where a benchmark keeps them (llama-bench does)
    model_id: ModelId | None = None  # the measured file (identity.py): records of one file join on its digest

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        """A record as written by ``to_dict``; records written before ``model_id`` existed read as None."""
        if data.get("model_id") is not None:
            data = {**data, "model_id": ModelId.from_dict(data["model_id"])}
        return cls(**data)

    @classmethod
    def from_samples(cls, samples: Sequence[float], *, stat: str = "median", keep: bool = False,
                     **kwargs) -> "Result":
        """``stat`` (median or mean) of the samples, their stdev as spread, n = len(samples)."""
        if stat not in ("median", "mean"):
            raise ValueError(f"stat must be median or mean, not {stat!r}")
        spread = statistics.stdev(samples) if len(samples) > 1 else None
        value = statistics.median(samples) if stat == "median" else statistics.fmean(samples)
        return cls(value=value, n=len(samples), spread=spread, stat=stat,
                   samples=[float(x) for x in samples] if keep else None, **kwargs)


def append_jsonl(path: Path, results: Sequence[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in results:
            f.write(json.dumps(r.to_dict()) + "\n")


def read_jsonl(path: Path) -> list[Result]:
    with open(path) as f:
        return [Result.from_dict(json.loads(line)) for line in f if line.strip()]
