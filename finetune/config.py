"""A fine-tuning run, as one config file: the dataclass whose defaults are the published recipe."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from radlite_edge.errors import UserError
from radlite_edge.limits import MAX_COUNT, MAX_RANK
from radlite_edge.lora_recipe import RADLITE_LORA
from radlite_edge.tasks.labels import TASK_NAMES

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

# the published sampling weight of each task's training data (RADLITE.md)
PUBLISHED_WEIGHTS = {
    "radiology_qa": 0.5, "temporal_comparison": 1.5, "impression_generation": 1.5, "radiology_ner": 1.0,
    "n_staging": 1.0, "abnormality_detection": 1.0, "rads_assignment": 3.0, "m_staging": 1.0, "radiology_nli": 3.0,
}


@dataclass
class FinetuneConfig:
    base: str = field(metadata={"help": "HF checkpoint folder to train (radlite import turns a GGUF into one)"})
    data: str = field(metadata={"help": "folder of task JSONL (radlite data synth / data load)"})
    output: str = field(metadata={"help": "folder for the adapter, its manifest, checkpoints and the log"})
    r: int = field(default=RADLITE_LORA.r, metadata={"help": "LoRA rank"})
    alpha: float = field(default=RADLITE_LORA.alpha, metadata={"help": "LoRA alpha"})
    dropout: float = field(default=RADLITE_LORA.dropout, metadata={"help": "LoRA dropout"})
    target_modules: list[str] = field(default_factory=lambda: list(RADLITE_LORA.target_modules),
                                      metadata={"help": "projections that carry LoRA"})
    layers_to_transform: list[int] | None = field(default=None, metadata={"help": "blocks that carry LoRA (all)"})
    task_weights: dict[str, float] = field(default_factory=lambda: dict(PUBLISHED_WEIGHTS),
                                           metadata={"help": "sampling weight per task, as published"})
    samples: int = field(default=2000, metadata={"help": "training examples drawn by the weighted mixture"})
    max_seq_len: int = field(default=512, metadata={"help": "longer examples are dropped, never cut"})
    batch_size: int = field(default=4, metadata={"help": "examples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "steps accumulated per optimizer update"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the mixture"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many updates (-1: by epochs)"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate (cosine, with warmup)"})
    warmup_steps: int = field(default=10, metadata={"help": "linear warmup updates"})
    eval_every: int = field(default=50, metadata={"help": "validation loss every N updates (0: never)"})
    save_every: int = field(default=50, metadata={"help": "checkpoint every N updates, for --resume"})
    val_samples: int = field(default=64, metadata={"help": "validation examples scored each time"})
    val_every: int = field(default=0, metadata={"help": "per-task strict accuracy on the val split every N updates, "
                                                        "generated and scored as radlite eval (0: never)"})
    val_per_task: int = field(default=16, metadata={"help": "validation samples per task generated each time"})
    patience: int = field(default=0, metadata={"help": "stop after this many task validations without a new best "
                                                       "mean (0: never stop early)"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for memory"})
    bf16: str = field(default="auto", metadata={"help": "auto (where the hardware has it natively: CUDA, or a CPU "
                                                        "with AVX512-BF16 or AMX), true or false"})
    answer_only_logits: bool = field(default=True, metadata={"help": "logits at the answer tokens only, the loss "
                                                                     "unchanged (false: at every position)"})
    numpy_dropout: bool = field(default=True, metadata={"help": "on a CPU, LoRA dropout masks drawn in bulk from "
                                                                "numpy's generator (same p; false: torch's Dropout)"})
    seed: int = field(default=0, metadata={"help": "data order, LoRA init and dropout"})

    def check(self, *, where: str = "config") -> "FinetuneConfig":
        """Every field against its type and bounds (``CHECKS``), before anything loads; the rank and the
        layers against the base's own shapes when its config.json is there. Returns self."""
        for f in fields(self):
            value = getattr(self, f.name)
            problem = CHECKS[f.name](value)
            if problem:
                raise UserError(f"{where}: {f.name} = {value!r}: {problem}")
        self.bf16 = str(self.bf16).lower()
        shape = _base_shape(Path(self.base))
        if shape:
            smallest, layers, n_ctx = shape
            if self.r > smallest:
                raise UserError(f"{where}: r = {self.r}: give 1 to {smallest} (the smaller side of the base's "
                                "matrices; a LoRA cannot have a higher rank)")
            bad = [x for x in self.layers_to_transform or () if x >= layers]
            if bad:
                raise UserError(f"{where}: layers_to_transform = {self.layers_to_transform!r}: the base has "
                                f"{layers} layers (0 to {layers - 1})")
            if n_ctx and self.max_seq_len > n_ctx:
                raise UserError(f"{where}: max_seq_len = {self.max_seq_len}: the base was trained on {n_ctx} "
                                f"tokens; give at most {n_ctx}")
        return self

    @classmethod
    def load(cls, path: Path) -> "FinetuneConfig":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such config file")
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            else:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, ImportError) as e:
            raise UserError(f"{path}: not a TOML or YAML config ({e})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: not a table of settings (write one `name = value` per line)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        for name in REQUIRED:
            if name not in raw:
                raise UserError(f"{path}: {name} is missing: {FIELD_HELP[name]}")
        for name in REQUIRED:  # paths in a config are relative to it
            if CHECKS[name](raw[name]):
                raise UserError(f"{path}: {name} = {raw[name]!r}: {CHECKS[name](raw[name])}")
            value = Path(raw[name]).expanduser()
            raw[name] = str(value if value.is_absolute() else path.parent / value)
        return cls(**raw).check(where=str(path))


# ------------------------------------------------------------------ the schema


def _int(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return f"an integer from {lo} to {hi}"
        return None if lo <= v <= hi else f"give {lo} to {hi}"
    return check


def _float(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], str | None]:
    span = f"{'above' if lo_open else 'from'} {lo:g} {'and below' if hi_open else 'to'} {hi:g}"

    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"a finite number {span}"
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        return None if ok else f"give a number {span}"
    return check


def _path(v) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a folder path (relative to the config file)"


def _modules(v) -> str | None:
    allowed = RADLITE_LORA.target_modules
    if not isinstance(v, list) or not v or not all(isinstance(m, str) for m in v):
        return f"a non-empty list of projection names from {', '.join(allowed)}"
    unknown = [m for m in v if m not in allowed]
    return f"unknown projection {unknown[0]!r}: choose from {', '.join(allowed)}" if unknown else None


def _layers(v) -> str | None:
    if v is None:
        return None
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v):
        return "a non-empty list of layer indices (0 = the first block), or leave it out for all layers"
    return None


def _weights(v) -> str | None:
    if not isinstance(v, dict) or not v:
        return f"a table of task = weight, tasks from {', '.join(TASK_NAMES)}"
    unknown = [t for t in v if t not in TASK_NAMES]
    if unknown:
        return f"unknown task {unknown[0]!r}: choose from {', '.join(TASK_NAMES)}"
    if any(_float(0, 1e6)(w) for w in v.values()):
        return "each weight a finite number from 0 to 1e6"
    return None if any(w > 0 for w in v.values()) else "at least one task needs a weight above 0"


def _flag(v) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _bf16(v) -> str | None:
    return None if isinstance(v, bool) or str(v).lower() in ("auto", "true", "false") else "auto, true or false"


STEPS = 100_000_000  # updates, intervals: far beyond any run


def _max_steps(v) -> str | None:
    if v == -1 and not isinstance(v, bool):
        return None
    return _int(1, STEPS)(v) and f"-1 (by epochs) or 1 to {STEPS}"


CHECKS: dict[str, Callable[[Any], str | None]] = {
    "base": _path, "data": _path, "output": _path,
    "r": _int(1, MAX_RANK), "alpha": _float(0, 1e6, lo_open=True), "dropout": _float(0, 1, hi_open=True),
    "target_modules": _modules, "layers_to_transform": _layers, "task_weights": _weights,
    "samples": _int(1, 9 * MAX_COUNT), "max_seq_len": _int(16, 1 << 20), "batch_size": _int(1, 4096),
    "grad_accum": _int(1, 4096), "epochs": _float(0, 10_000, lo_open=True),
    "max_steps": _max_steps,
    "learning_rate": _float(0, 1, lo_open=True), "warmup_steps": _int(0, STEPS),
    "eval_every": _int(0, STEPS), "save_every": _int(0, STEPS), "val_samples": _int(0, MAX_COUNT),
    "val_every": _int(0, STEPS), "val_per_task": _int(1, 10_000), "patience": _int(0, 10_000),
    "gradient_checkpointing": _flag, "bf16": _bf16, "seed": _int(0, 2**32 - 1),
    "answer_only_logits": _flag, "numpy_dropout": _flag,
}
REQUIRED = ("base", "data", "output")
FIELD_HELP = {f.name: f.metadata.get("help", "") for f in fields(FinetuneConfig)}


def _base_shape(base: Path) -> tuple[int, int, int | None] | None:
    """(smallest side of a LoRA-able matrix, layers, training context) from the base's config.json, or None."""
    try:
        cfg = json.loads((base / "config.json").read_text())
        hidden, inter = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
        heads = int(cfg["num_attention_heads"])
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        kv = int(cfg.get("num_key_value_heads") or heads) * head_dim
        return min(hidden, inter, kv, heads * head_dim), int(cfg["num_hidden_layers"]), \
            cfg.get("max_position_embeddings")
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no readable config: finetune says so before it loads anything
