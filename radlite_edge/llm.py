"""Thin helpers over llama-cpp-python that the runtime, benchmarks and tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import UserError


def load(path: Path, *, n_ctx: int = 512, n_threads: int | None = None, **kwargs):
    """Open a GGUF in llama.cpp; a file llama.cpp refuses is a user error naming it."""
    from llama_cpp import Llama

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    try:
        return Llama(str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, **kwargs)
    except ValueError as e:
        raise UserError(f"{path}: llama.cpp cannot load it ({e})") from None


def last_logits(llm) -> np.ndarray:
    """The logits of the last token evaluated, as a float32 copy.

    Llama keeps ``scores`` only with ``logits_all=True``; this reads llama.cpp's own
    buffer, so no per-position copy is paid during evaluation.
    """
    import llama_cpp

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float32, copy=True)


def logits_for(llm, tokens: list[int]) -> np.ndarray:
    """Evaluate ``tokens`` from an empty cache and return the last position's logits."""
    llm.reset()
    llm.eval(tokens)
    return last_logits(llm)
