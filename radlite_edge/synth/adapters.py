"""Synthetic peft LoRA adapters of the paper's shape, for tests and benchmarks.

Their shape is the paper's recipe (``RADLITE_LORA``) unless told otherwise. peft starts B at zero;
here both A and B are random (seeded per tensor) so that a merge visibly changes every
targeted weight. Files are what peft's ``save_pretrained`` writes: adapter_config.json
and adapter_model.safetensors with float32 ``base_model.model.<module>.lora_{A,B}.weight``.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from ..fileio import atomic_dir
from ..lora_recipe import RADLITE_LORA
from ..safetensors_io import PlannedTensor, SafetensorsWriter
from .models import ModelSpec, tensor_plan

_SLAB = 1 << 22


def adapter_plan(spec: ModelSpec, vocab_size: int, *, rank: int,
                 targets: tuple[str, ...] = RADLITE_LORA.target_modules) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """(module, A shape, B shape) for every targeted linear of ``spec``; a rank above the
    smaller side of a targeted matrix (a LoRA that low-rank cannot be) is refused."""
    out = []
    for name, shape, _ in tensor_plan(spec, vocab_size):
        module = name.removesuffix(".weight")
        if name.endswith(".weight") and module.rsplit(".", 1)[-1] in targets:
            out.append((module, (rank, shape[1]), (shape[0], rank)))
    smallest = min((min(b[0], a[1]) for _, a, b in out), default=rank)
    if not 1 <= rank <= smallest:
        raise UserError(f"--rank {rank}: give 1 to {smallest} for {spec.name} (the smaller side of its "
                        "smallest targeted matrix)")
    return out


def adapter_bytes(spec: ModelSpec, vocab_size: int, *, rank: int) -> int:
    """Bytes of the float32 A and B matrices of an adapter of this rank."""
    return sum(4 * (a[0] * a[1] + b[0] * b[1]) for _, a, b in adapter_plan(spec, vocab_size, rank=rank))


ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def is_synth_adapter(folder: Path) -> bool:
    """A folder holding what ``write_adapter`` writes and nothing else: an earlier synthetic adapter
    (it has no manifest)."""
    names = {p.name for p in Path(folder).iterdir()}
    return bool(names) and names <= set(ADAPTER_FILES)


def write_adapter(
    spec: ModelSpec,
    vocab_size: int,
    out_dir: Path,
    *,
    rank: int = RADLITE_LORA.r,
    alpha: float = RADLITE_LORA.alpha,
    use_rslora: bool = False,
    seed: int = 0,
    base_name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    plan = adapter_plan(spec, vocab_size, rank=rank)
    tensors: list[PlannedTensor] = []
    for module, a_shape, b_shape in plan:
        tensors.append(PlannedTensor(f"base_model.model.{module}.lora_A.weight", "F32", a_shape))
        tensors.append(PlannedTensor(f"base_model.model.{module}.lora_B.weight", "F32", b_shape))
    tensors.sort(key=lambda t: t.name)  # peft's files list tensors by name
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": base_name or spec.name,
        "r": rank, "lora_alpha": alpha, "lora_dropout": RADLITE_LORA.dropout, "use_rslora": use_rslora,
        "target_modules": list(RADLITE_LORA.target_modules), "fan_in_fan_out": False, "bias": "none", "use_dora": False,
        "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "inference_mode": True,
        "init_lora_weights": True, "layers_to_transform": None, "layers_pattern": None,
    }
    with atomic_dir(out_dir, owned=is_synth_adapter) as tmp:
        (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
        with SafetensorsWriter(tmp / "adapter_model.safetensors", tensors, {"format": "pt"}) as w:
            for t in tensors:
                rng = np.random.default_rng([seed, zlib.crc32(t.name.encode())])
                # A like peft's Kaiming init (fan-in scaled); B small but non-zero
                std = t.shape[1] ** -0.5 if ".lora_A." in t.name else 0.02
                left = t.shape[0] * t.shape[1]
                while left:
                    n = min(left, _SLAB)
                    w.write(rng.standard_normal(n, dtype=np.float32) * np.float32(std))
                    left -= n
                    if progress:
                        progress(n * 4)
    return out_dir
