"""HF safetensors checkpoint -> GGUF, one tensor (one slab of rows) in memory at a time.

The gguf library plans the file (metadata, tensor infos with their final types and
sizes), writes its header, then each tensor's data is produced slab by slab from the
checkpoint, encoded and appended. Type rules follow llama.cpp's converter: 1-D tensors
and norms stay F32, 2-D weights take the requested type, and a weight whose rows do not
split into whole blocks falls back to F16. A tied output matrix is not written (llama.cpp
reads token_embd in its place). The file appears under its final name only when complete.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FILE, atomic_path, claim_output
from radlite_edge.levels import Level, convert_levels, get_level
from radlite_edge.safetensors_io import DTYPES, Checkpoint

from . import quants
from .archs import Arch, arch_for_config, check_config, expected_tensor_names, hparam_values, permute_qk
from .lora import LoraAdapter, MergedCheckpoint
from .vocab import add_vocab

SLAB_ELEMENTS = 1 << 23  # 8M values per slab: 32 MB as float32
_SKIPPED_SUFFIXES = ("rotary_emb.inv_freq",)


@dataclass(frozen=True)
class TensorJob:
    hf_name: str
    gguf_name: str
    shape: tuple[int, ...]
    qtype: QT
    permute_heads: int | None = None  # llama q/k: permute rows per head

    @property
    def nbytes(self) -> int:
        return int(np.prod(gguf.quant_shape_to_byte_shape(self.shape, self.qtype)))


@dataclass
class ConvertPlan:
    directory: Path
    config: dict
    arch: Arch
    level: Level
    checkpoint: Checkpoint | MergedCheckpoint
    jobs: list[TensorJob]
    notes: list[str] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        embd = next(j for j in self.jobs if j.gguf_name == "token_embd.weight")
        return int(self.config.get("vocab_size") or embd.shape[0])

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(j.shape)) for j in self.jobs)


def load_config(directory: Path) -> dict:
    path = directory / "config.json"
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a directory"
        raise UserError(f"checkpoint directory {directory} {what}")
    if not path.is_file():
        raise UserError(f"{directory}: no config.json (is this an HF checkpoint folder?)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: not valid JSON") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object")
    return config


def _tensor_type(gguf_name: str, shape: tuple[int, ...], level: Level, notes: list[str]) -> QT:
    assert level.tensor_type is not None
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or level.tensor_type == QT.F32:
        return QT.F32
    if not quants.can_encode(shape, level.tensor_type):
        notes.append(f"{gguf_name}: rows of {shape[-1]} do not split into {level.name} blocks, kept as F16")
        return QT.F16
    return level.tensor_type


def plan_conversion(directory: Path, outtype: str, *, adapter: Path | None = None) -> ConvertPlan:
    """Read config, tokenizer presence and tensor headers; decide every output tensor.

    With ``adapter`` (a peft LoRA folder) the weights are read merged with it.
    """
    directory = Path(directory)
    level = get_level(outtype)
    if level.maker != "gguf":
        names = ", ".join(lv.name.lower() for lv in convert_levels())
        raise UserError(f"--outtype {outtype}: convert writes {names}; make {level.name} with radlite quantize")
    config = load_config(directory)
    arch = arch_for_config(config, source=str(directory / "config.json"))
    check_config(arch, config, source=str(directory / "config.json"))
    ckpt: Checkpoint | MergedCheckpoint = Checkpoint(directory)
    if adapter is not None:
        ckpt = MergedCheckpoint(ckpt, LoraAdapter(Path(adapter)))
    n_blocks = int(config["num_hidden_layers"])
    tied = bool(config.get("tie_word_embeddings", False))
    tmap = gguf.get_tensor_name_map(arch.arch, n_blocks)
    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)

    jobs: list[TensorJob] = []
    notes: list[str] = []
    unknown: list[str] = []
    seen: dict[str, str] = {}
    for name in ckpt.names():
        if name.endswith(_SKIPPED_SUFFIXES) or (tied and name == "lm_head.weight"):
            continue
        gguf_name = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            unknown.append(name)
            continue
        if gguf_name in seen:
            raise UserError(f"{directory}: tensors {seen[gguf_name]} and {name} both map to {gguf_name}")
        seen[gguf_name] = name
        shape = ckpt.entries[name].shape
        permute = None
        if arch.permute_qk and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
            permute = n_head if gguf_name.endswith("attn_q.weight") else n_head_kv
        jobs.append(TensorJob(name, gguf_name, shape, _tensor_type(gguf_name, shape, level, notes), permute))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UserError(f"{directory}: tensor {unknown[0]}{more} is not part of a {arch.name} model")
    expected = expected_tensor_names(arch, n_blocks, tied=tied)
    missing = [n for n in expected if n not in seen]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(
            f"{directory}: the checkpoint lacks tensor {missing[0]}{more}; it is incomplete or not a {arch.name} model"
        )
    return ConvertPlan(directory, config, arch, level, ckpt, jobs, notes)


class _StreamedTensor:
    """What ``GGUFWriter.write_tensor_data`` needs (nbytes, tofile), produced in slabs."""

    def __init__(self, plan: ConvertPlan, job: TensorJob, n_threads: int | None, on_bytes: Callable[[int], None]):
        self.plan, self.job, self.n_threads, self.on_bytes = plan, job, n_threads, on_bytes
        self.nbytes = job.nbytes

    def tofile(self, fout) -> None:
        job, ckpt = self.job, self.plan.checkpoint
        # A permuted tensor moves rows between slabs: read it whole (q/k are small).
        budget = SLAB_ELEMENTS if job.permute_heads is None else max(SLAB_ELEMENTS, int(np.prod(job.shape)))
        written = 0
        for start, stop in ckpt.row_slabs(job.hf_name, budget):
            rows = ckpt.read_f32(job.hf_name, start, stop)
            if job.permute_heads is not None:
                rows = permute_qk(rows, job.permute_heads)
            data = quants.encode(rows, job.qtype, n_threads=self.n_threads)
            data.tofile(fout)
            written += data.nbytes
            self.on_bytes(rows.size * DTYPES[ckpt.entries[job.hf_name].dtype][0])
        if written != self.nbytes:
            raise RuntimeError(f"{job.gguf_name}: wrote {written} bytes, planned {self.nbytes}")


def _metadata(writer: gguf.GGUFWriter, plan: ConvertPlan, name: str | None) -> None:
    cfg = plan.config
    writer.add_type(gguf.GGUFType.MODEL)
    model_name = name or plan.directory.resolve().name
    writer.add_name(model_name)
    writer.add_basename(plan.directory.resolve().name)
    writer.add_size_label(gguf.size_label(plan.n_params, 0, 0, 0))
    origin = cfg.get("_name_or_path") or ""
    if origin.count("/") == 1 and not origin.startswith(("/", ".")):
        writer.add_source_repo_url(f"https://huggingface.co/{origin}")
    for key, kind, value in hparam_values(plan.arch, cfg):
        if kind is int:
            writer.add_uint32(key, value)
        else:
            writer.add_float32(key, value)
    writer.add_file_type(int(plan.level.ftype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


@dataclass
class ConvertResult:
    path: Path
    level: str
    arch: str
    n_tensors: int
    n_params: int
    bytes: int
    seconds: float
    types: dict[str, int]
    notes: list[str]
    native: bool
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def convert_checkpoint(
    directory: Path,
    out: Path,
    *,
    outtype: str = "f16",
    n_threads: int | None = None,
    name: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    adapter: Path | None = None,
) -> ConvertResult:
    """Convert ``directory`` to the GGUF file ``out``; ``progress(done, total)`` in bytes read.

    An output whose manifest matches the inputs and parameters is kept (``skipped``)
    unless ``force``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    claim_output(out, [Path(directory)] + ([Path(adapter)] if adapter is not None else []), step="convert", kind=FILE)
    plan = plan_conversion(Path(directory), outtype, adapter=adapter)
    sources = [plan.directory] + ([Path(adapter)] if adapter is not None else [])
    inputs = manifest.identify(p for d in sources for p in d.iterdir() if p.suffix in (".json", ".safetensors"))
    params = {"outtype": plan.level.name, "name": name, "adapter": adapter is not None}
    if not force and manifest.is_up_to_date(out, step="convert", inputs=inputs, params=params):
        previous = manifest.load(out)["result"]
        return ConvertResult(**{**previous, "path": out, "seconds": time.perf_counter() - t0, "skipped": True})

    writer = gguf.GGUFWriter(path=None, arch=plan.arch.gguf_name)
    _metadata(writer, plan, name)
    add_vocab(writer, plan.directory, plan.vocab_size)
    for job in plan.jobs:
        writer.add_tensor_info(job.gguf_name, job.shape, np.dtype(np.float32), job.nbytes, raw_dtype=job.qtype)

    total_in = sum(plan.checkpoint.entries[j.hf_name].nbytes for j in plan.jobs)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total_in)

    with atomic_path(out, step="convert") as tmp:
        try:
            writer.open_output_file(tmp)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for job in plan.jobs:
                writer.write_tensor_data(_StreamedTensor(plan, job, n_threads, on_bytes))
        finally:
            writer.close()
    types = Counter(j.qtype.name for j in plan.jobs)
    result = ConvertResult(
        path=out, level=plan.level.name, arch=plan.arch.name, n_tensors=len(plan.jobs), n_params=plan.n_params,
        bytes=out.stat().st_size, seconds=time.perf_counter() - t0, types=dict(types), notes=plan.notes,
        native=quants.has_native(),
    )
    manifest.write(out, step="convert", inputs=inputs, params=params, seconds=result.seconds, result=result.to_dict())
    return result


def conversion_outtypes() -> Sequence[str]:
    return [lv.name.lower() for lv in convert_levels()]
