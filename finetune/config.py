"""A fine-tuning run, as one config file: the dataclass whose defaults are the published recipe."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from radlite_edge.errors import UserError
from radlite_edge.lora_recipe import RADLITE_LORA

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
    bf16: str = field(default="auto", metadata={"help": "auto (where the hardware has it), true or false"})
    seed: int = field(default=0, metadata={"help": "data order, LoRA init and dropout"})

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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw or {}) - known)
        if unknown:
            raise UserError(f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            config = cls(**raw)
        except TypeError as e:
            raise UserError(f"{path}: {e}") from None
        base = path.parent
        for name in ("base", "data", "output"):  # paths in a config are relative to it
            value = Path(getattr(config, name)).expanduser()
            setattr(config, name, str(value if value.is_absolute() else base / value))
        return config
