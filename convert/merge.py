"""``radlite merge``: base checkpoint + peft LoRA adapter -> merged HF checkpoint.

The output keeps the base's layout (shards, index, tensor order and dtypes) and copies
its config and tokenizer files, so every tool that loads the base loads the merge. Each
weight is merged in float32 slab by slab and rounded once to its stored dtype; memory
stays at a few slabs whatever the model size.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FOLDER, atomic_dir, claim_output
from radlite_edge.locks import output_lock
from radlite_edge.safetensors_io import INDEX_NAME, Checkpoint, PlannedTensor, SafetensorsWriter, f32_to_bf16_bits

from .lora import LoraAdapter, MergedCheckpoint

SLAB_ELEMENTS = 1 << 23
MERGE_DTYPES = ("f32", "f16", "bf16")  # what a merged checkpoint can be stored as


@dataclass
class MergeResult:
    path: Path
    n_tensors: int
    n_merged: int
    n_replaced: int
    bytes: int
    seconds: float
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def _encode(rows: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return f32_to_bf16_bits(rows)
    if dtype == "F16":
        return rows.astype(np.float16)
    return rows.astype(np.float32, copy=False)


def _shard_layout(base: Checkpoint) -> list[tuple[str, list[str]]]:
    """(file name, tensor names in data order) for every base weight file; the index
    file, copied as is, then still names the right shard for every tensor."""
    files: dict[Path, list[str]] = {}
    for name, entry in base.entries.items():
        files.setdefault(entry.path, []).append(name)
    return [(path.name, sorted(names, key=lambda n: base.entries[n].offset)) for path, names in sorted(files.items())]


def merge_checkpoint(
    base_dir: Path,
    adapter_dir: Path,
    out_dir: Path,
    *,
    dtype: str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> MergeResult:
    """Write ``out_dir``; ``dtype`` (F32, F16, BF16) overrides the base's stored dtype.

    An output whose manifest matches the inputs and parameters is kept (``skipped``) unless ``force``.
    """
    t0 = time.perf_counter()
    if dtype is not None and dtype.lower() not in MERGE_DTYPES:
        raise UserError(f"--dtype {dtype}: choose {', '.join(MERGE_DTYPES)}")
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    claim_output(out_dir, [base_dir, Path(adapter_dir)], step="merge", kind=FOLDER)
    if not (base_dir / "config.json").is_file():
        raise UserError(f"{base_dir}: no config.json (give the base HF checkpoint folder)")
    base = Checkpoint(base_dir)
    adapter = LoraAdapter(Path(adapter_dir))
    inputs = manifest.identify(manifest.folder_files(base_dir, Path(adapter_dir)))
    params = {"dtype": dtype.upper() if dtype else None}
    with output_lock(out_dir, what="radlite merge"):
        if not force and manifest.is_up_to_date(out_dir, step="merge", inputs=inputs, params=params):
            previous = manifest.load(out_dir)["result"]
            return MergeResult(**{**previous, "path": out_dir, "seconds": time.perf_counter() - t0, "skipped": True})
        result = _merge(base, adapter, out_dir, dtype=dtype, progress=progress, t0=t0)
        manifest.write(out_dir, step="merge", inputs=inputs, params=params, seconds=result.seconds,
                       result=result.to_dict())
    return result


def _merge(base: Checkpoint, adapter: LoraAdapter, out_dir: Path, *, dtype: str | None,
           progress: Callable[[int, int], None] | None, t0: float) -> MergeResult:
    base_dir, adapter_dir = base.directory, adapter.directory
    merged = MergedCheckpoint(base, adapter)
    total = sum(e.nbytes for e in base.entries.values())
    done = written = 0
    with atomic_dir(out_dir, step="merge") as tmp:
        for extra in sorted(base_dir.iterdir()):
            # our own records (radlite_*.json, manifests) describe the base, not the merge
            if extra.is_file() and extra.suffix != ".safetensors" and not extra.name.startswith("radlite_") \
                    and not extra.name.endswith(".manifest.json"):
                shutil.copy2(extra, tmp / extra.name)
        if dtype:  # the config states the stored dtype
            cfg = json.loads((tmp / "config.json").read_text())
            cfg["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype.upper()]
            (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        for fname, names in _shard_layout(base):
            out_dtype = {n: dtype.upper() if dtype else base.entries[n].dtype for n in names}
            plan = [PlannedTensor(n, out_dtype[n], base.entries[n].shape) for n in names]
            written += sum(t.nbytes for t in plan)
            with SafetensorsWriter(tmp / fname, plan) as w:
                for name in names:
                    for start, stop in merged.row_slabs(name, SLAB_ELEMENTS):
                        w.write(_encode(merged.read_f32(name, start, stop), out_dtype[name]).reshape(-1))
                    done += base.entries[name].nbytes
                    if progress:
                        progress(done, total)
        index = tmp / INDEX_NAME
        if index.is_file():  # sizes change with --dtype
            data = json.loads(index.read_text())
            data.setdefault("metadata", {})["total_size"] = written
            index.write_text(json.dumps(data, indent=2) + "\n")
        (tmp / "radlite_merge.json").write_text(json.dumps({
            "base": str(base_dir), "adapter": str(adapter_dir), "merged_modules": len(adapter.pairs),
            "replaced": sorted(adapter.replaced), "r": adapter.config.r, "lora_alpha": adapter.config.lora_alpha,
            "use_rslora": adapter.config.use_rslora,
        }, indent=2) + "\n")
    return MergeResult(out_dir, len(base.entries), len(adapter.pairs), len(adapter.replaced),
                       sum(f.stat().st_size for f in out_dir.glob("*.safetensors")), time.perf_counter() - t0)
