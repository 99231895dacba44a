"""One record shape for every measured figure, appended as JSONL (DESIGN.md, Results).

A ``Result`` says what was measured (model identity, benchmark, metric, value, n, spread,
machine); its ``params`` say how, typed per kind of measurement: ``BenchParams`` for
``radlite bench``, ``FidelityParams`` for ``radlite fidelity``, ``EvalParams`` for
``radlite eval``. A misspelt field is an error where it is written or read. One-off studies
(benchmarks/) may keep a plain dict. In the JSON each typed params object carries its
``kind``; records written before that field existed are recognised by their fields.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Sequence, Union

from . import machine
from .identity import ModelId

DEFAULT_RESULTS = Path("results/bench.jsonl")  # where bench and fidelity append, and report reads


class TestKind(str, Enum):
    """The tests of ``radlite bench``, as llama-bench names its pp/tg."""

    __test__ = False  # not a pytest test class, whatever its name

    BANDWIDTH = "bandwidth"
    LOAD = "load"
    MEMORY = "memory"
    PP = "pp"
    TG = "tg"
    REQUEST = "request"

    def __str__(self) -> str:  # f-strings and tables show the name users type
        return self.value


@dataclass
class BenchParams:
    """How one ``radlite bench`` figure was measured."""

    run: str  # the run id: records of one invocation share it
    test: TestKind
    file: str
    threads: int
    repack: bool
    file_bytes: int | None = None
    n_params: int | None = None
    arch: str | None = None
    n_prompt: int | None = None
    n_gen: int | None = None
    n_depth: int | None = None
    n_batch: int | None = None
    n_ubatch: int | None = None
    flash_attn: bool | None = None
    n_ctx: int | None = None
    kv_bytes: int | None = None
    other_cpu_share: float | None = None  # share of the CPUs other processes took meanwhile
    bytes_per_token: float | None = None  # tg: weights and KV read per generated token
    bandwidth_gbps: float | None = None  # tg: the roofline's bandwidth
    bandwidth_probe: str | None = None
    ceiling_tok_s: float | None = None
    roofline_fraction: float | None = None
    measured: str | None = None  # what the figure is, in words
    cold_cache: str | None = None
    warm_cache: str | None = None
    resident_before: float | None = None
    prompt_tokens: int | None = None  # request: the task prompt's length
    max_tokens: int | None = None
    probe: str | None = None  # bandwidth: the probe's kernel
    array_bytes: int | None = None

    kind = "bench"

    def __post_init__(self) -> None:
        self.test = TestKind(self.test)


@dataclass
class FidelityParams:
    """How one ``radlite fidelity`` figure was measured: against which reference, on what text."""

    reference: str  # the reference file's path
    text: str  # the held-out text, by name
    ctx: int
    windows: int
    positions: int
    ppl_reference: float
    file: str  # the measured file's path
    reference_id: ModelId | None = None

    kind = "fidelity"

    def __post_init__(self) -> None:
        if isinstance(self.reference_id, dict):
            self.reference_id = ModelId.from_dict(self.reference_id)


@dataclass
class EvalParams:
    """The settings of one ``radlite eval`` figure and its 95 % bootstrap interval."""

    ci95: list[float]
    mode: str
    grammar: bool
    few_shot: int
    n: int | None
    seed: int
    split: str = "test"
    profile: str = "radlite"
    lora: str | None = None  # the runtime GGUF LoRA, "<file name>@<file digest>" (None: the model alone)

    kind = "eval"


Params = Union[BenchParams, FidelityParams, EvalParams, dict]
_KINDS: dict[str, type] = {k.kind: k for k in (BenchParams, FidelityParams, EvalParams)}


def params_to_dict(params: Params) -> dict[str, Any]:
    if isinstance(params, dict):
        return dict(params)
    data = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    data = {k: (v.value if isinstance(v, Enum) else v.to_dict() if isinstance(v, ModelId) else v)
            for k, v in data.items()}
    return {"kind": params.kind, **data}


def params_from_dict(data: dict[str, Any], *, benchmark: str) -> Params:
    data = dict(data)
    kind = data.pop("kind", None) or _infer_kind(data, benchmark)
    return _KINDS[kind](**data) if kind in _KINDS else data


def _infer_kind(data: dict[str, Any], benchmark: str) -> str | None:
    """The kind of a record written before params carried one."""
    if data.get("test") in {t.value for t in TestKind} and "run" in data:
        return "bench"
    if benchmark == "fidelity" and "reference" in data:
        return "fidelity"
    if "ci95" in data and "mode" in data:
        return "eval"
    return None


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
    params: Params = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=machine.describe)
    time: float = field(default_factory=time.time)
    stat: str = "median"  # what ``value`` is of the n figures: "median" or "mean"
    samples: list[float] | None = None  # the raw figures, where a benchmark keeps them (llama-bench does)
    model_id: ModelId | None = None  # the measured file (identity.py): records of one file join on its digest

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["params"] = params_to_dict(self.params)
        data["model_id"] = self.model_id.to_dict() if self.model_id else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        """A record as written by ``to_dict`` (or by an earlier version: no ``model_id``, untagged params)."""
        data = dict(data)
        data["params"] = params_from_dict(data.get("params") or {}, benchmark=data.get("benchmark", ""))
        if data.get("model_id") is not None:
            data["model_id"] = ModelId.from_dict(data["model_id"])
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


def is_results_file(path: Path) -> bool:
    """A results JSONL (what bench, fidelity and eval append to): an empty file, or result records."""
    from .fileio import records_with

    return records_with("benchmark", "metric", "value")(path)


def append_jsonl(path: Path, results: Sequence[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for r in results:
            f.write(json.dumps(r.to_dict()) + "\n")


def read_jsonl(path: Path) -> list[Result]:
    """The records of a results file; ValueError naming the file's line for one that is not a record."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Result.from_dict(json.loads(line)))
            except (ValueError, TypeError, KeyError) as e:
                raise ValueError(f"line {i}: not a result record ({e})") from None
    return out
