"""Synthetic HF checkpoints: tiny Qwen2/Qwen3 models and full-size random ones.

Every tensor is drawn from its own seeded stream (seed, tensor name), so a checkpoint
is reproducible bit for bit, and written slab by slab: the full-size Qwen2.5-3B and
Qwen3-4B shapes (6-8 GB of bf16) never need more than a few hundred MB of memory.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import manifest
from ..errors import UserError
from ..fileio import atomic_dir
from ..safetensors_io import PlannedTensor, SafetensorsWriter, split_into_shards, write_index
from .tokenizer import ENDOFTEXT, IM_END, save_tokenizer, train_tokenizer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    arch: str  # "qwen2" | "qwen3"
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab_size: int | None  # None: the tokenizer's size padded to a multiple of 64
    max_positions: int
    rope_theta: float
    tied: bool
    tiny: bool  # tiny: weights scaled for peaky logits; full-size: HF's init (std 0.02)


SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        # Tiny, but every matrix row is a multiple of 256 so that llama.cpp's K-quants and
        # IQ types apply to them as they do to the real models (no fallback types).
        ModelSpec("tiny-qwen2", "qwen2", 256, 2, 4, 2, 64, 512, None, 2048, 1_000_000.0, True, True),
        # Qwen3-style attention wider than the residual stream (8 x 64 = 512 > 256), like Qwen3-4B.
        ModelSpec("tiny-qwen3", "qwen3", 256, 2, 8, 4, 64, 512, None, 2048, 1_000_000.0, False, True),
        # The exact shapes of Qwen2.5-3B-Instruct and Qwen3-4B.
        ModelSpec("qwen2.5-3b", "qwen2", 2048, 36, 16, 2, 128, 11008, 151936, 32768, 1_000_000.0, True, False),
        ModelSpec("qwen3-4b", "qwen3", 2560, 36, 32, 8, 128, 9728, 151936, 40960, 1_000_000.0, True, False),
    )
}

DEFAULT_MODELS = tuple(name for name, spec in SPECS.items() if spec.tiny)  # what `radlite synth` writes unasked
FULL_SIZE_MODELS = tuple(name for name, spec in SPECS.items() if not spec.tiny)

_HF_CLASS = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
_SLAB_ELEMENTS = 1 << 24  # 16M values: 64 MB of float32 at a time


def _pad64(n: int) -> int:
    return -(-n // 64) * 64


def get_spec(name: str) -> ModelSpec:
    if name not in SPECS:
        raise UserError(f"unknown synthetic model {name!r}: choose one of {', '.join(SPECS)}")
    return SPECS[name]


def tensor_plan(spec: ModelSpec, vocab_size: int) -> list[tuple[str, tuple[int, ...], str]]:
    """(HF name, shape, init kind) for every tensor, in HF's order."""
    h, q, kv, i = spec.hidden, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim, spec.intermediate
    plan: list[tuple[str, tuple[int, ...], str]] = [("model.embed_tokens.weight", (vocab_size, h), "embed")]
    for b in range(spec.layers):
        p = f"model.layers.{b}."
        plan += [(p + "input_layernorm.weight", (h,), "norm")]
        plan += [(p + "self_attn.q_proj.weight", (q, h), "linear"), (p + "self_attn.k_proj.weight", (kv, h), "linear"),
                 (p + "self_attn.v_proj.weight", (kv, h), "linear")]
        if spec.arch == "qwen2":  # Qwen2 has q/k/v biases
            plan += [(p + "self_attn.q_proj.bias", (q,), "bias"), (p + "self_attn.k_proj.bias", (kv,), "bias"),
                     (p + "self_attn.v_proj.bias", (kv,), "bias")]
        if spec.arch == "qwen3":  # Qwen3 normalises q and k per head
            plan += [(p + "self_attn.q_norm.weight", (spec.head_dim,), "norm"),
                     (p + "self_attn.k_norm.weight", (spec.head_dim,), "norm")]
        plan += [(p + "self_attn.o_proj.weight", (h, q), "linear")]
        plan += [(p + "post_attention_layernorm.weight", (h,), "norm")]
        plan += [(p + "mlp.gate_proj.weight", (i, h), "linear"), (p + "mlp.up_proj.weight", (i, h), "linear"),
                 (p + "mlp.down_proj.weight", (h, i), "linear")]
    plan += [("model.norm.weight", (h,), "norm")]
    if not spec.tied:
        plan += [("lm_head.weight", (vocab_size, h), "linear")]
    return plan


def _sampler(spec: ModelSpec, kind: str, shape: tuple[int, ...]) -> Callable[[np.random.Generator, int], np.ndarray]:
    fan_in = shape[-1]
    if spec.tiny:
        # Unit-scale activations and logits a few units apart, so greedy decoding has
        # clear winners that float rounding cannot flip.
        std = {"embed": 1.0, "linear": fan_in ** -0.5, "bias": 0.1, "norm": 0.1}[kind]
    else:
        std = {"embed": 0.02, "linear": 0.02, "bias": 0.02, "norm": 0.02}[kind]
    mean = 1.0 if kind == "norm" else 0.0

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        x = rng.standard_normal(n, dtype=np.float32)
        x *= np.float32(std)
        x += np.float32(mean)
        return x

    return draw


def _config(spec: ModelSpec, vocab_size: int, ids: dict[str, int]) -> dict:
    cfg = {
        "architectures": [_HF_CLASS[spec.arch]],
        "model_type": spec.arch,
        "attention_dropout": 0.0,
        "bos_token_id": ids[ENDOFTEXT],
        "eos_token_id": ids[IM_END],
        "hidden_act": "silu",
        "hidden_size": spec.hidden,
        "initializer_range": 0.02,
        "intermediate_size": spec.intermediate,
        "max_position_embeddings": spec.max_positions,
        "max_window_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_hidden_layers": spec.layers,
        "num_key_value_heads": spec.kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": spec.rope_theta,
        "sliding_window": None,
        "tie_word_embeddings": spec.tied,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
    }
    if spec.arch == "qwen3":
        cfg["head_dim"] = spec.head_dim
        cfg["attention_bias"] = False
    return cfg


def write_checkpoint(
    spec: ModelSpec,
    out_dir: Path,
    *,
    seed: int = 0,
    shard_bytes: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write the checkpoint for ``spec`` to ``out_dir`` (atomically); return it.

    ``shard_bytes`` splits model.safetensors into shards with an index, as HF does for
    large models; ``progress`` is called with the bytes written after each slab.
    """
    t0 = time.perf_counter()
    tok = train_tokenizer(seed=seed)
    vocab_size = spec.vocab_size or _pad64(tok.get_vocab_size())
    if vocab_size < tok.get_vocab_size():
        raise ValueError(f"{spec.name}: vocab_size {vocab_size} is below the tokenizer's {tok.get_vocab_size()}")
    plan = tensor_plan(spec, vocab_size)
    planned = [PlannedTensor(name, "BF16", shape) for name, shape, _ in plan]
    kinds = {name: kind for name, _, kind in plan}
    total = sum(t.nbytes for t in planned)
    shards = split_into_shards(planned, shard_bytes) if shard_bytes else [planned]

    with atomic_dir(out_dir, step="synth") as tmp:
        ids = save_tokenizer(tok, tmp, model_max_length=spec.max_positions)
        (tmp / "config.json").write_text(json.dumps(_config(spec, vocab_size, ids), indent=2) + "\n")
        gen = {"bos_token_id": ids[ENDOFTEXT], "eos_token_id": [ids[IM_END], ids[ENDOFTEXT]],
               "pad_token_id": ids[ENDOFTEXT], "do_sample": False}
        (tmp / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
        weight_map: dict[str, str] = {}
        for k, shard in enumerate(shards):
            fname = "model.safetensors" if len(shards) == 1 else f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
            with SafetensorsWriter(tmp / fname, shard) as w:
                for t in shard:
                    weight_map[t.name] = fname
                    rng = np.random.default_rng([seed, zlib.crc32(t.name.encode())])
                    draw = _sampler(spec, kinds[t.name], t.shape)
                    left = int(np.prod(t.shape))
                    while left:
                        n = min(left, _SLAB_ELEMENTS)
                        # Truncation to bf16 (not rounding): random weights need no more,
                        # and it keeps a 3B-parameter checkpoint to about a minute.
                        bits = (draw(rng, n).view(np.uint32) >> 16).astype(np.uint16)
                        w.write(bits)
                        left -= n
                        if progress:
                            progress(bits.nbytes)
        if len(shards) > 1:
            write_index(tmp, weight_map, total)
    manifest.write(out_dir, step="synth", inputs=[], params=_synth_params(spec, seed, shard_bytes),
                   seconds=time.perf_counter() - t0,
                   result={"bytes": total})
    return out_dir


def _synth_params(spec: ModelSpec, seed: int, shard_bytes: int | None) -> dict:
    return {"model": spec.name, "seed": seed, "shard_bytes": shard_bytes}


def vocab_size_of(spec: ModelSpec, *, seed: int = 0) -> int:
    """The model's vocabulary: fixed for full-size shapes, the tokenizer's padded to 64 for tiny ones."""
    return spec.vocab_size or _pad64(train_tokenizer(seed=seed).get_vocab_size())


def checkpoint_bytes(spec: ModelSpec, *, seed: int = 0) -> int:
    return sum(int(np.prod(shape)) * 2 for _, shape, _ in tensor_plan(spec, vocab_size_of(spec, seed=seed)))


def is_current(out_dir: Path, spec: ModelSpec, *, seed: int, shard_bytes: int | None) -> bool:
    """True when ``out_dir`` already holds this exact synthetic checkpoint (its manifest says so)."""
    return manifest.is_up_to_date(Path(out_dir), step="synth", inputs=[], params=_synth_params(spec, seed, shard_bytes))
