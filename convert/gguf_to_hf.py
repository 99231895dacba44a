"""``radlite import``: a GGUF model back to an HF checkpoint, so any GGUF can be fine-tuned.

The reverse of ``hf_to_gguf``, over the same architecture tables: hyper-parameters from the
GGUF keys of ``archs.COMMON_HPARAMS``, each tensor dequantized with the gguf library and
renamed through ``gguf.TensorNameMap``, llama's q/k rows put back in HF's rotate-half order,
and the tokenizer rebuilt as a byte-level BPE ``tokenizer.json`` (vocabulary, merges, the
pre-tokenizer llama.cpp names in ``tokenizer.ggml.pre``, special tokens, chat template).
Tensors are streamed one at a time into safetensors; the folder appears only when complete.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import gguf
import numpy as np
from gguf import MODEL_TENSOR, Keys, TokenType

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FOLDER, atomic_dir, claim_output
from radlite_edge.locks import output_lock
from radlite_edge.gguf_file import open_model
from radlite_edge.safetensors_io import PlannedTensor, SafetensorsWriter, f32_to_bf16_bits

from .archs import ARCHS, COMMON_HPARAMS, Arch
from .vocab import KNOWN_PRE_TOKENIZERS

IMPORT_DTYPES = ("f32", "bf16")
# the HF module each GGUF tensor type comes from, in the llama/qwen family's naming
_HF_MODULE = {
    MODEL_TENSOR.TOKEN_EMBD: "model.embed_tokens", MODEL_TENSOR.OUTPUT_NORM: "model.norm",
    MODEL_TENSOR.OUTPUT: "lm_head", MODEL_TENSOR.ATTN_NORM: "model.layers.{bid}.input_layernorm",
    MODEL_TENSOR.ATTN_Q: "model.layers.{bid}.self_attn.q_proj", MODEL_TENSOR.ATTN_K: "model.layers.{bid}.self_attn.k_proj",
    MODEL_TENSOR.ATTN_V: "model.layers.{bid}.self_attn.v_proj", MODEL_TENSOR.ATTN_OUT: "model.layers.{bid}.self_attn.o_proj",
    MODEL_TENSOR.ATTN_Q_NORM: "model.layers.{bid}.self_attn.q_norm",
    MODEL_TENSOR.ATTN_K_NORM: "model.layers.{bid}.self_attn.k_norm",
    MODEL_TENSOR.FFN_NORM: "model.layers.{bid}.post_attention_layernorm",
    MODEL_TENSOR.FFN_GATE: "model.layers.{bid}.mlp.gate_proj", MODEL_TENSOR.FFN_UP: "model.layers.{bid}.mlp.up_proj",
    MODEL_TENSOR.FFN_DOWN: "model.layers.{bid}.mlp.down_proj",
}


@dataclass
class ImportResult:
    path: Path
    arch: str
    n_tensors: int
    n_params: int
    bytes: int
    seconds: float
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    if f.types and f.types[0] == gguf.GGUFValueType.ARRAY:
        return [f.contents(i) for i in range(len(f.data))]
    return f.contents()


def hf_names(arch: Arch, n_blocks: int) -> dict[str, str]:
    """GGUF tensor name -> HF tensor name, each checked against gguf's own map in the other direction."""
    tmap = gguf.get_tensor_name_map(arch.arch, n_blocks)
    out = {}
    for kind, module in _HF_MODULE.items():
        if kind not in gguf.MODEL_TENSORS[arch.arch]:
            continue
        for bid in range(n_blocks) if "{bid}" in module else (None,):
            hf = module.format(bid=bid) if bid is not None else module
            gguf_name = tmap.get_name(hf)
            if gguf_name is None:
                raise RuntimeError(f"gguf's tensor map does not know {hf} for {arch.name}")
            for suffix in ("weight", "bias"):
                out[f"{gguf_name}.{suffix}"] = f"{hf}.{suffix}"
    return out


def _config(reader: gguf.GGUFReader, arch: Arch, *, vocab_size: int, tied: bool, dtype: str) -> dict:
    a = arch.gguf_name
    config: dict = {"architectures": [arch.hf_classes[0]], "model_type": arch.name, "vocab_size": vocab_size,
                    "hidden_act": "silu", "tie_word_embeddings": tied,
                    "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype]}
    for hp in COMMON_HPARAMS + arch.extra_hparams:
        value = _field(reader, hp.gguf_key.format(arch=a))
        if value is not None:
            config[hp.hf_key] = hp.kind(value)
    config.setdefault("num_key_value_heads", config["num_attention_heads"])
    config.setdefault("head_dim", config["hidden_size"] // config["num_attention_heads"])
    if arch.name == "qwen2":
        config["attention_bias"] = True  # q/k/v carry biases (the table's block tensors)
    for hf_key, gguf_key in (("bos_token_id", Keys.Tokenizer.BOS_ID), ("eos_token_id", Keys.Tokenizer.EOS_ID),
                             ("pad_token_id", Keys.Tokenizer.PAD_ID)):
        value = _field(reader, gguf_key)
        if value is not None:
            config[hf_key] = int(value)
    return config


def _tensor_f32(t, arch: Arch, config: dict) -> np.ndarray:
    """A tensor's float32 values in HF's layout (llama's q/k rows back in rotate-half order)."""
    data = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
    data = data.reshape(tuple(reversed([int(d) for d in t.shape])))
    if arch.permute_qk and t.name.endswith(("attn_q.weight", "attn_k.weight")):
        n_head = config["num_attention_heads"] if "attn_q" in t.name else config["num_key_value_heads"]
        data = data.reshape(n_head, data.shape[0] // n_head // 2, 2, *data.shape[1:]).swapaxes(1, 2).reshape(
            data.shape)
    return data


def import_gguf(source: Path, out_dir: Path, *, dtype: str = "f32", force: bool = False,
                progress: Callable[[int, int], None] | None = None) -> ImportResult:
    """Write ``out_dir`` (safetensors, config, tokenizer) from the GGUF model ``source``."""
    t0 = time.perf_counter()
    source, out_dir = Path(source), Path(out_dir)
    if dtype not in IMPORT_DTYPES:
        raise UserError(f"--dtype {dtype}: choose {', '.join(IMPORT_DTYPES)}")
    reader = open_model(source)
    claim_output(out_dir, [source], step="import", kind=FOLDER)
    with output_lock(out_dir, what="radlite import"):
        inputs, params = manifest.identify([source]), {"dtype": dtype}
        if not force and manifest.is_up_to_date(out_dir, step="import", inputs=inputs, params=params):
            previous = manifest.load(out_dir)["result"]
            return ImportResult(**{**previous, "path": out_dir, "seconds": time.perf_counter() - t0, "skipped": True})
        result = _import(reader, source, out_dir, dtype=dtype, progress=progress, t0=t0)
        manifest.write(out_dir, step="import", inputs=inputs, params=params, seconds=result.seconds,
                       result=result.to_dict())
    return result


def _import(reader, source: Path, out_dir: Path, *, dtype: str, progress: Callable[[int, int], None] | None,
            t0: float) -> ImportResult:
    arch_name = str(_field(reader, Keys.General.ARCHITECTURE))
    arch = next((a for a in ARCHS.values() if a.gguf_name == arch_name), None)
    if arch is None:
        raise UserError(f"{source}: architecture {arch_name!r} is not importable; supported: {', '.join(ARCHS)}")
    tensors = {t.name: t for t in reader.tensors}
    n_blocks = int(_field(reader, Keys.LLM.BLOCK_COUNT.format(arch=arch_name)))
    names = hf_names(arch, n_blocks)
    unknown = sorted(set(tensors) - set(names) - {"rope_freqs.weight"})
    if unknown:
        raise UserError(f"{source}: tensors {', '.join(unknown[:3])} have no place in a {arch.name} checkpoint")
    tied = "output.weight" not in tensors
    embd = tensors["token_embd.weight"]
    config = _config(reader, arch, vocab_size=int(embd.shape[-1]), tied=tied, dtype=dtype)
    order = [n for n in tensors if n in names]
    plan = [PlannedTensor(names[n], "F32" if dtype == "f32" else "BF16",
                          tuple(reversed([int(d) for d in tensors[n].shape]))) for n in order]
    total = sum(p.nbytes for p in plan)
    with atomic_dir(out_dir, step="import") as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_tokenizer(reader, tmp, source=source, model_max_length=config.get("max_position_embeddings", 2048))
        done = 0
        with SafetensorsWriter(tmp / "model.safetensors", plan) as w:
            for name in order:
                data = _tensor_f32(tensors[name], arch, config)
                w.write(data.reshape(-1) if dtype == "f32" else f32_to_bf16_bits(data).reshape(-1))
                done += data.size * (4 if dtype == "f32" else 2)
                if progress:
                    progress(done, total)
    return ImportResult(out_dir, arch.name, len(plan), sum(int(np.prod(p.shape)) for p in plan),
                        (out_dir / "model.safetensors").stat().st_size, time.perf_counter() - t0)


def _pre_tokenizer(pre: str, *, source: Path):
    from tokenizers import Regex, pre_tokenizers

    if pre in KNOWN_PRE_TOKENIZERS:
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(KNOWN_PRE_TOKENIZERS[pre]), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    if pre == "smollm":  # digits one by one, then GPT-2's byte-level split (SmolLM2's tokenizer.json)
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                                 use_regex=True)])
    if pre in ("gpt2", "default"):
        return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    raise UserError(f"{source}: pre-tokenizer {pre!r} is not importable here "
                    f"(known: {', '.join([*KNOWN_PRE_TOKENIZERS, 'smollm', 'gpt2'])})")


def write_tokenizer(reader: gguf.GGUFReader, directory: Path, *, source: Path, model_max_length: int) -> None:
    """tokenizer.json and tokenizer_config.json from the GGUF's byte-level BPE vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    if _field(reader, Keys.Tokenizer.MODEL) != "gpt2":
        raise UserError(f"{source}: tokenizer model {_field(reader, Keys.Tokenizer.MODEL)!r} is not importable "
                        "(need gpt2, byte-level BPE)")
    tokens = [str(t) for t in _field(reader, Keys.Tokenizer.LIST)]
    types = [int(t) for t in _field(reader, Keys.Tokenizer.TOKEN_TYPE, [TokenType.NORMAL] * len(tokens))]
    merges = [tuple(str(m).split(" ", 1)) for m in _field(reader, Keys.Tokenizer.MERGES, [])]
    special = {i for i, kind in enumerate(types) if kind in (TokenType.CONTROL, TokenType.USER_DEFINED)}
    # special tokens stay in the vocabulary too, so that adding them below keeps their ids
    vocab = {t: i for i, t in enumerate(tokens) if types[i] != TokenType.UNUSED}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = _pre_tokenizer(str(_field(reader, Keys.Tokenizer.PRE, "default")), source=source)
    tok.decoder = decoders.ByteLevel()
    # added tokens keep their ids: add them in id order (they follow the BPE vocabulary)
    for i in sorted(special):
        tok.add_special_tokens([AddedToken(tokens[i], special=types[i] == TokenType.CONTROL, normalized=False)])
        if tok.token_to_id(tokens[i]) != i:
            raise UserError(f"{source}: special token {tokens[i]!r} at id {i} cannot keep its id in tokenizer.json")
    tok.save(str(directory / "tokenizer.json"))

    def token(key: str) -> str | None:
        i = _field(reader, key)
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    config = {
        "add_bos_token": bool(_field(reader, Keys.Tokenizer.ADD_BOS, False)),
        "add_prefix_space": False, "clean_up_tokenization_spaces": False, "model_max_length": model_max_length,
        "bos_token": token(Keys.Tokenizer.BOS_ID), "eos_token": token(Keys.Tokenizer.EOS_ID),
        "pad_token": token(Keys.Tokenizer.PAD_ID), "unk_token": token(Keys.Tokenizer.UNK_ID),
        "chat_template": _field(reader, Keys.Tokenizer.CHAT_TEMPLATE),
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
