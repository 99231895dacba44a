"""Upper bounds on what a user may ask for, and the checks that need the model to judge.

The bounds keep a typo from running for hours or filling a disk (``--rank 100000`` wrote
3 GB); each is far above any real use.
"""

from __future__ import annotations

from .errors import UserError

MAX_THREADS = 256  # the bandwidth probe's limit, and far beyond any edge device
MAX_COUNT = 1_000_000  # samples per task, chunks, windows, repetitions
MAX_RANK = 4096  # a LoRA rank; the real bound is the smaller side of each matrix (checked per model)
MAX_CHUNK_TOKENS = 1 << 20  # a context, chunk or batch size; the real bound is the model's training context


def check_context(tokens: int, n_ctx_train: int | None, *, what: str, model: str = "the model") -> None:
    """``tokens`` (a context, a chunk, a prompt plus what follows it) fits the model's training context."""
    if n_ctx_train and tokens > n_ctx_train:
        raise UserError(f"{what} {tokens}: {model} was trained on a context of {n_ctx_train} tokens; "
                        f"give at most {n_ctx_train}")
