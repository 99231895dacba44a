"""The tokenizer of an HF checkpoint, written into GGUF as llama.cpp's converter writes it.

A byte-level BPE ``tokenizer.json`` becomes the ``gpt2`` tokenizer model with its
pre-tokenizer type, the token list padded to the model's vocab size, token types
(added special tokens are CONTROL, padding UNUSED), merges, special token ids,
add_bos and the chat template (the last four through ``gguf.SpecialVocab``).
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
from gguf import TokenType

from radlite_edge.errors import UserError

# The split regexes llama.cpp recognises, by its pre-tokenizer name.
KNOWN_PRE_TOKENIZERS = {
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}


def _split_regex(tokenizer: dict) -> str | None:
    pre = tokenizer.get("pre_tokenizer") or {}
    for p in pre.get("pretokenizers", [pre]):
        if p.get("type") == "Split":
            return (p.get("pattern") or {}).get("Regex")
    return None


def load_tokenizer_json(directory: Path) -> dict:
    path = directory / "tokenizer.json"
    if not path.is_file():
        raise UserError(f"{directory}: no tokenizer.json (a byte-level BPE tokenizer is required)")
    try:
        tok = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: not valid JSON") from None
    if (tok.get("model") or {}).get("type") != "BPE":
        raise UserError(f"{path}: tokenizer model {(tok.get('model') or {}).get('type')!r} is not supported (need BPE)")
    return tok


def _is_smollm(tokenizer: dict) -> bool:
    """SmolLM's pre-tokenizer: each digit on its own, then GPT-2's byte-level split (llama.cpp's "smollm")."""
    pre = tokenizer.get("pre_tokenizer") or {}
    steps = [(p.get("type"), p.get("individual_digits"), p.get("use_regex")) for p in pre.get("pretokenizers", [])]
    return steps == [("Digits", True, None), ("ByteLevel", None, True)]


def pre_tokenizer_name(tokenizer: dict, *, source: Path) -> str:
    regex = _split_regex(tokenizer)
    for name, known in KNOWN_PRE_TOKENIZERS.items():
        if regex == known:
            return name
    if regex is None and _is_smollm(tokenizer):
        return "smollm"
    raise UserError(f"{source}: pre-tokenizer split {regex!r} is not one llama.cpp knows here "
                    f"({', '.join(KNOWN_PRE_TOKENIZERS)}, smollm)")


def add_vocab(writer: gguf.GGUFWriter, directory: Path, vocab_size: int) -> int:
    """Write the tokenizer; return the number of tokens the tokenizer defines."""
    tok = load_tokenizer_json(directory)
    pre = pre_tokenizer_name(tok, source=directory / "tokenizer.json")
    by_id: dict[int, tuple[str, TokenType]] = {
        i: (t, TokenType.NORMAL) for t, i in tok["model"]["vocab"].items()
    }
    for added in tok.get("added_tokens", []):
        by_id[added["id"]] = (added["content"], TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED)
    n_defined = max(by_id) + 1 if by_id else 0
    if n_defined > vocab_size:
        raise UserError(
            f"{directory}: tokenizer defines {n_defined} tokens but config.json vocab_size is {vocab_size}"
        )
    tokens, types = [], []
    for i in range(vocab_size):
        text, ttype = by_id.get(i, (f"[PAD{i}]", TokenType.UNUSED))
        tokens.append(text)
        types.append(ttype)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(directory, load_merges=True, n_vocab=vocab_size)
    special.add_to_gguf(writer, quiet=True)
    return n_defined
