"""Architecture tables: how an HF config and its tensors become GGUF keys and names.

One entry per architecture (qwen2, qwen3, llama). Tensor names come from
``gguf.TensorNameMap`` and metadata keys from ``gguf.Keys``: nothing here re-types a
GGUF string. Per-architecture differences are data (which block tensors are required,
whether q/k rows are permuted), read by the one generic loop in ``hf_to_gguf``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gguf
from gguf import MODEL_ARCH, MODEL_TENSOR, Keys

from radlite_edge.errors import UserError


@dataclass(frozen=True)
class HParam:
    hf_key: str
    gguf_key: str  # a gguf.Keys template with {arch}
    kind: type  # int or float
    required: bool = True


# The hyper-parameters every supported architecture writes, as llama.cpp's converter does.
COMMON_HPARAMS: tuple[HParam, ...] = (
    HParam("max_position_embeddings", Keys.LLM.CONTEXT_LENGTH, int),
    HParam("hidden_size", Keys.LLM.EMBEDDING_LENGTH, int),
    HParam("num_hidden_layers", Keys.LLM.BLOCK_COUNT, int),
    HParam("intermediate_size", Keys.LLM.FEED_FORWARD_LENGTH, int),
    HParam("num_attention_heads", Keys.Attention.HEAD_COUNT, int),
    HParam("num_key_value_heads", Keys.Attention.HEAD_COUNT_KV, int, required=False),
    HParam("rope_theta", Keys.Rope.FREQ_BASE, float, required=False),
    HParam("rms_norm_eps", Keys.Attention.LAYERNORM_RMS_EPS, float),
    # An explicit head_dim (Qwen3: 128 with hidden/heads = 80) is written as key/value length.
    HParam("head_dim", Keys.Attention.KEY_LENGTH, int, required=False),
    HParam("head_dim", Keys.Attention.VALUE_LENGTH, int, required=False),
)

_BLOCK_CORE = (
    MODEL_TENSOR.ATTN_NORM, MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V, MODEL_TENSOR.ATTN_OUT,
    MODEL_TENSOR.FFN_NORM, MODEL_TENSOR.FFN_GATE, MODEL_TENSOR.FFN_UP, MODEL_TENSOR.FFN_DOWN,
)


@dataclass(frozen=True)
class Arch:
    name: str  # GGUF architecture name
    arch: MODEL_ARCH
    hf_classes: tuple[str, ...]
    # per-block tensors the checkpoint must have, as (tensor type, suffix)
    block_tensors: tuple[tuple[MODEL_TENSOR, str], ...]
    # llama's HF checkpoints store q/k rows in the rotate-half order; GGML wants pairs
    permute_qk: bool = False
    extra_hparams: tuple[HParam, ...] = field(default=())

    @property
    def gguf_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]


def _weights(*types: MODEL_TENSOR) -> tuple[tuple[MODEL_TENSOR, str], ...]:
    return tuple((t, "weight") for t in types)


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch(
            "qwen2", MODEL_ARCH.QWEN2, ("Qwen2ForCausalLM",),
            _weights(*_BLOCK_CORE)
            + tuple((t, "bias") for t in (MODEL_TENSOR.ATTN_Q, MODEL_TENSOR.ATTN_K, MODEL_TENSOR.ATTN_V)),
        ),
        Arch(
            "qwen3", MODEL_ARCH.QWEN3, ("Qwen3ForCausalLM",),
            _weights(*_BLOCK_CORE, MODEL_TENSOR.ATTN_Q_NORM, MODEL_TENSOR.ATTN_K_NORM),
        ),
        Arch(
            "llama", MODEL_ARCH.LLAMA, ("LlamaForCausalLM", "MistralForCausalLM"),
            _weights(*_BLOCK_CORE),
            permute_qk=True,
            extra_hparams=(HParam("vocab_size", Keys.LLM.VOCAB_SIZE, int),),
        ),
    )
}
_BY_HF_CLASS = {cls: a for a in ARCHS.values() for cls in a.hf_classes}


def arch_for_config(config: dict, *, source: str) -> Arch:
    classes = config.get("architectures") or []
    for cls in classes:
        if cls in _BY_HF_CLASS:
            return _BY_HF_CLASS[cls]
    model_type = config.get("model_type")
    if model_type in ARCHS and not classes:
        return ARCHS[model_type]
    known = ", ".join(sorted(_BY_HF_CLASS))
    raise UserError(f"{source}: unsupported architecture {classes or model_type!r}; supported: {known}")


def check_config(arch: Arch, config: dict, *, source: str) -> None:
    """Refuse configs whose features the converter would silently get wrong."""
    for hp in COMMON_HPARAMS + arch.extra_hparams:
        if hp.required and hp.hf_key not in config:
            raise UserError(f"{source}: config.json lacks {hp.hf_key!r}, needed for {arch.name}")
    scaling = config.get("rope_scaling")
    rope_params = config.get("rope_parameters") or {}
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type")) or rope_params.get("rope_type", "default")
    if rope_type not in (None, "default"):
        raise UserError(f"{source}: rope scaling {rope_type!r} is not supported by radlite convert yet")
    if arch.permute_qk and config.get("attention_bias"):
        raise UserError(f"{source}: llama checkpoints with attention biases are not supported")
    if config.get("use_sliding_window"):
        raise UserError(f"{source}: use_sliding_window=true is not supported (llama.cpp's {arch.name} has no SWA)")


def hparam_values(arch: Arch, config: dict) -> list[tuple[str, type, int | float]]:
    """(GGUF key, kind, value) for the hyper-parameters present in ``config``."""
    out = []
    for hp in COMMON_HPARAMS + arch.extra_hparams:
        value = config.get(hp.hf_key)
        if value is None and hp.hf_key == "rope_theta":
            value = (config.get("rope_parameters") or {}).get("rope_theta")
        if value is None and hp.hf_key == "num_key_value_heads":
            value = config["num_attention_heads"]
        if value is None:
            continue
        out.append((hp.gguf_key.format(arch=arch.gguf_name), hp.kind, hp.kind(value)))
    if arch.permute_qk:  # llama.cpp's llama converter also states the rotary width
        head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
        out.append((Keys.Rope.DIMENSION_COUNT.format(arch=arch.gguf_name), int, int(head_dim)))
    return out


def expected_tensor_names(arch: Arch, n_blocks: int, *, tied: bool) -> list[str]:
    """The GGUF tensor names a complete checkpoint of this architecture yields."""
    names = gguf.TENSOR_NAMES
    out = [names[MODEL_TENSOR.TOKEN_EMBD] + ".weight", names[MODEL_TENSOR.OUTPUT_NORM] + ".weight"]
    if not tied:
        out.append(names[MODEL_TENSOR.OUTPUT] + ".weight")
    for bid in range(n_blocks):
        out += [names[t].format(bid=bid) + "." + suffix for t, suffix in arch.block_tensors]
    return out


def permute_qk(w, n_head: int):
    """HF's rotate-half row order to GGML's interleaved pairs, per head."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
