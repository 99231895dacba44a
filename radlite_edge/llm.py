"""Thin helpers over llama-cpp-python that the runtime, benchmarks and tests share."""

from __future__ import annotations

import contextlib
import ctypes
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import UserError


def load(path: Path, *, n_ctx: int = 512, n_threads: int | None = None, repack: bool = True, **kwargs):
    """Open a GGUF in llama.cpp; a file llama.cpp refuses is a user error naming it.

    ``repack=False`` keeps the weights as they are in the file instead of copying them into
    llama.cpp's CPU-repacked layouts (``use_extra_bufts``, llama-bench's ``--repack 0``): the
    copy costs resident memory beside the mapped file and changes which kernels run, so speed
    moves both ways (docs/BENCHMARKS.md measures it per level).
    """
    from llama_cpp import Llama

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    if n_threads is not None:
        # llama-cpp-python gives prompt batches every core unless told: -t 1 must mean one thread
        # there too, or a process shares its cores with itself and with everything else running
        kwargs.setdefault("n_threads_batch", n_threads)
    try:
        with _model_params(use_extra_bufts=repack):
            return Llama(str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, **kwargs)
    except ValueError as e:
        raise UserError(f"{path}: llama.cpp cannot load it ({e})") from None


@contextlib.contextmanager
def _model_params(**fields) -> Iterator[None]:
    """``Llama`` builds its model params from ``llama_model_default_params()`` and exposes no
    argument for some fields (``use_extra_bufts``): set them on the defaults while it loads."""
    from llama_cpp import llama as llama_module

    binding = llama_module.llama_cpp
    original = binding.llama_model_default_params

    def defaults():
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    binding.llama_model_default_params = defaults
    try:
        yield
    finally:
        binding.llama_model_default_params = original


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


# ggml's log levels (ggml.h): llama-cpp-python's own callback maps them one off.
_GGML_LOG_WARN, _GGML_LOG_ERROR, _GGML_LOG_CONT = 3, 4, 5


class LlamaLog:
    """llama.cpp's log while it is captured: warnings and errors kept, the rest dropped."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []
        self._level = 0

    def add(self, level: int, text: str) -> None:
        if level == _GGML_LOG_CONT:
            level = self._level
        self._level = level
        if level >= _GGML_LOG_WARN:
            self.lines.append((level, text))

    def errors(self) -> list[str]:
        """The error messages, one per line, without llama.cpp's banner decoration."""
        text = "".join(t for level, t in self.lines if level == _GGML_LOG_ERROR)
        return [line.strip() for line in text.splitlines() if line.strip() and not set(line.strip()) <= {"="}]


@contextlib.contextmanager
def captured_llama_log() -> Iterator[LlamaLog]:
    """Route llama.cpp's log into a :class:`LlamaLog` for the duration, then back to llama-cpp-python.

    Calls made straight into llama.cpp (the quantizer, a context with an eval callback)
    would otherwise print every tensor of the model on stderr.
    """
    import llama_cpp
    from llama_cpp import _logger

    log = LlamaLog()

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data) -> None:
        log.add(level, text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    try:
        yield log
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


class Interrupts:
    """Ctrl-C held back while llama.cpp runs Python callbacks, and raised between its calls.

    A KeyboardInterrupt raised inside a ctypes callback cannot cross into C: Python prints
    "Exception ignored on calling ctypes callback" and llama.cpp carries on, so a run would
    finish with partial figures. Inside ``with Interrupts() as stop:`` SIGINT only sets a
    flag; ``stop.check()`` after each llama.cpp call raises KeyboardInterrupt at a safe point.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "Interrupts":
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._note)
        return self

    def _note(self, signum, frame) -> None:
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def __exit__(self, *exc) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc[0] is None:
            self.check()
