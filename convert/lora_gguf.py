"""``radlite export-lora``: a peft adapter as a GGUF LoRA that llama.cpp applies at run time.

One base GGUF can then serve several task adapters (llama-cpp-python ``lora_path``).
The file is what llama.cpp's ``convert_lora_to_gguf.py`` writes (general.type adapter,
adapter.type lora, adapter.lora.alpha, ``<weight>.lora_a`` / ``.lora_b`` under the GGUF
tensor names), with one addition: llama.cpp applies ``alpha / rank`` with a single global
alpha, so a module whose peft scale differs from that (rsLoRA, ``alpha_pattern``,
``rank_pattern``) has the ratio folded into its B. A plain adapter is written unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FILE, atomic_path, claim_output
from radlite_edge.levels import get_level
from radlite_edge.safetensors_io import Checkpoint

from . import quants
from .archs import arch_for_config, permute_qk
from .hf_to_gguf import load_config
from .lora import LoraAdapter

EXPORT_TYPES = ("f32", "f16", "bf16", "q8_0")  # as llama.cpp's LoRA converter offers


@dataclass
class ExportResult:
    path: Path
    n_pairs: int
    alpha: float
    rescaled: int  # pairs whose B carries a folded scale
    bytes: int
    seconds: float
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def export_lora(adapter_dir: Path, base_dir: Path, out: Path, *, outtype: str = EXPORT_TYPES[0],
                force: bool = False) -> ExportResult:
    """Write the adapter as a GGUF LoRA; an output whose manifest matches its inputs is kept unless ``force``."""
    t0 = time.perf_counter()
    out = Path(out)
    if outtype.lower() not in EXPORT_TYPES:
        raise UserError(f"--outtype {outtype}: a GGUF LoRA is written as one of {', '.join(EXPORT_TYPES)}")
    level = get_level(outtype)
    claim_output(out, [Path(adapter_dir), Path(base_dir)], step="export-lora", kind=FILE)
    config = load_config(Path(base_dir))
    arch = arch_for_config(config, source=str(Path(base_dir) / "config.json"))
    base = Checkpoint(Path(base_dir))
    adapter = LoraAdapter(Path(adapter_dir))
    adapter.check_against(base)
    adapter.check_finite()
    inputs = manifest.identify(manifest.folder_files(Path(adapter_dir)) + [Path(base_dir) / "config.json"])
    params = {"outtype": level.name}
    if not force and manifest.is_up_to_date(out, step="export-lora", inputs=inputs, params=params):
        previous = manifest.load(out)["result"]
        return ExportResult(**{**previous, "path": out, "seconds": time.perf_counter() - t0, "skipped": True})
    if adapter.replaced:
        raise UserError(f"{adapter_dir}: modules_to_save ({', '.join(sorted(adapter.replaced))}) cannot be applied by "
                        "llama.cpp as a LoRA; merge instead (radlite merge, or radlite convert --adapter)")
    if adapter.config.fan_in_fan_out:
        raise UserError(f"{adapter_dir}: fan_in_fan_out adapters are not exported as GGUF LoRA; merge instead")

    tmap = gguf.get_tensor_name_map(arch.arch, int(config["num_hidden_layers"]))
    alpha = adapter.config.lora_alpha
    writer = gguf.GGUFWriter(path=None, arch=arch.gguf_name)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(Path(adapter_dir).resolve().name)

    tensors: list[tuple[str, np.ndarray]] = []
    rescaled = 0
    for weight, pair in sorted(adapter.pairs.items()):
        gguf_name = tmap.get_name(weight, try_suffixes=(".weight",))
        if gguf_name is None:
            raise UserError(f"{adapter_dir}: {pair.module} has no place in a {arch.name} GGUF")
        a = adapter.tensors.read_f32(pair.a)
        b = adapter.tensors.read_f32(pair.b)
        if arch.permute_qk and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
            # the base's q/k rows are permuted per head in a llama GGUF (hf_to_gguf); the product
            # B·A has B's rows, so permuting B's rows alone permutes the delta the same way
            heads = int(config["num_attention_heads"])
            if gguf_name.endswith("attn_k.weight"):
                heads = int(config.get("num_key_value_heads") or heads)
            b = permute_qk(b, heads)
        llama_scale = alpha / pair.rank
        if pair.scale != llama_scale:
            b = b * np.float32(pair.scale / llama_scale)
            rescaled += 1
        tensors += [(gguf_name + ".lora_a", a), (gguf_name + ".lora_b", b)]

    for name, data in tensors:
        qtype = level.tensor_type if quants.can_encode(data.shape, level.tensor_type) else QT.F16
        encoded = quants.encode(data, qtype)
        if encoded.dtype == np.uint8:  # the gguf writer reads a quantized tensor's shape in bytes per row
            writer.add_tensor(name, encoded.reshape(*data.shape[:-1], -1), raw_dtype=qtype)
        else:
            writer.add_tensor(name, encoded)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    with atomic_path(out, step="export-lora") as tmp:
        try:
            writer.write_header_to_file(path=tmp)
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()
    result = ExportResult(out, len(adapter.pairs), alpha, rescaled, out.stat().st_size, time.perf_counter() - t0)
    manifest.write(out, step="export-lora", inputs=inputs, params=params, seconds=result.seconds,
                   result=result.to_dict())
    return result
