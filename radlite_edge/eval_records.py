"""The evaluation runner's records, typed: settings, one record per sample, summaries.

Each has one way to JSON and one way back, so a misspelt field is an error where it is
read, not a silent None. The JSON is what earlier versions wrote, plus ``model_id`` and
``sample_digest`` on sample records: older files are read, but their records carry no
model identity and are never taken as results of the model now evaluated (they run again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from .identity import ModelId
from .tasks.samples import Sample


def decoding_label(grammar: bool) -> str:
    """How a score was decoded, as every table names it."""
    return "grammar-constrained (deployment mode)" if grammar else "strict (free generation, as the paper)"


class EvalMode(str, Enum):
    FAST = "fast"
    NAIVE = "naive"

    def __str__(self) -> str:
        return self.value

    @property
    def help(self) -> str:
        return {"fast": "shared prefix once, parallel sequences",
                "naive": "one Llama call per sample"}[self.value]


@dataclass(frozen=True)
class EvalSettings:
    mode: EvalMode = EvalMode.FAST
    grammar: bool = False  # False: strict (free generation, as the paper scores); True: label tasks constrained
    few_shot: int = 0
    n: int | None = None  # samples per task (None: all test samples)
    seed: int = 0
    profile: str = "radlite"  # the prompt profile (tasks/prompts.py): the published interface unless told
    lora: str | None = None  # a GGUF LoRA applied at run time, as "<file name>@<file digest>"; None: the model alone

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", EvalMode(self.mode))  # a typo is a ValueError here

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode.value}

    def output_key(self) -> "EvalSettings":
        """The settings one sample's output depends on."""
        return dataclasses.replace(self, n=None)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalSettings":
        return cls(**data)


def sample_digest(sample: Sample) -> str:
    """What a sample asks and expects: a record is reused only for the same content."""
    content = json.dumps([sample.task, sample.input, sample.reference, sample.labels], sort_keys=True,
                         ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(list(v) if isinstance(v, tuple) else v for v in value)
    return value


@dataclass
class SampleRecord:
    id: str
    task: str
    model: str  # the file name, for people
    output: str
    parsed: Any  # the parser's value, as JSON (sets as sorted lists)
    score: float
    prompt_tokens: int
    tokens: int
    seconds: float
    settings: EvalSettings
    few_shot_ids: list[str]
    model_id: ModelId | None = None
    sample_digest: str | None = None

    def to_json(self) -> str:
        data = {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "parsed": _jsonable(self.parsed), "settings": self.settings.to_dict(),
                "model_id": self.model_id.to_dict() if self.model_id else None}
        return json.dumps(data)

    @classmethod
    def from_json(cls, line: str) -> "SampleRecord":
        """A record; ValueError (json's included) or TypeError for a line that is not one."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        data["settings"] = EvalSettings.from_dict(data["settings"])
        if data.get("model_id") is not None:
            data["model_id"] = ModelId.from_dict(data["model_id"])
        return cls(**data)

    def is_result_of(self, model: ModelId, settings: EvalSettings, digest: str) -> bool:
        """The same sample, model and output settings (how many samples were asked for does not
        change one sample's output: raising --n reuses what is done)."""
        return (self.settings.output_key() == settings.output_key() and self.model_id is not None
                and self.model_id.digest == model.digest and self.sample_digest == digest)


@dataclass
class TaskSummary:
    n: int
    metric: str
    value: float
    ci95: tuple[float, float]
    parsed: float  # share of outputs the parser read
    seconds_per_sample: float
    extra: dict[str, Any] = field(default_factory=dict)  # the task's further metrics (per label, per system, …)
    floors: dict[str, float] = field(default_factory=dict)  # trivial answers' scores on the same samples

    @property
    def floor(self) -> tuple[str, float]:
        """The best trivial answer and its score: what this task's score must beat to mean something."""
        return max(self.floors.items(), key=lambda kv: kv[1]) if self.floors else ("", float("nan"))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "metric": self.metric, "value": self.value, "ci95": list(self.ci95),
                "parsed": self.parsed, "seconds_per_sample": self.seconds_per_sample, "floors": self.floors,
                **self.extra}


@dataclass
class EvalSummary:
    model: str  # the file name, for people
    model_id: ModelId
    settings: EvalSettings
    tasks: dict[str, TaskSummary]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the run repaired or skipped, for the user
    split: str = "test"  # test, or generalization (wording training never uses)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_id": self.model_id.to_dict(), "settings": self.settings.to_dict(),
                "tasks": {name: t.to_dict() for name, t in self.tasks.items()}, "seconds": self.seconds,
                "notes": self.notes, "split": self.split}
