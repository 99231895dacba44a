"""Encode float32 rows into a GGML tensor type: our C kernels where they exist, else gguf.

The C kernels (``radlite_edge._native``) give the same bytes as ``gguf.quants`` (the
tests hold them to it) and are much faster; without the extension the converter still
works through the gguf library's numpy code.
"""

from __future__ import annotations

import os

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as QT
from gguf import quants as gguf_quants

try:
    from radlite_edge import _native
except ImportError:  # a source tree without the built extension
    _native = None

NATIVE_TYPES = {QT.Q8_0: "q8_0", QT.Q4_0: "q4_0", QT.Q4_1: "q4_1", QT.Q5_0: "q5_0", QT.Q5_1: "q5_1"}


def has_native() -> bool:
    return _native is not None


def can_encode(shape: tuple[int, ...], qtype: QT) -> bool:
    block, _ = GGML_QUANT_SIZES[qtype]
    return shape[-1] % block == 0


def encode(rows: np.ndarray, qtype: QT, *, n_threads: int | None = None, native: bool = True) -> np.ndarray:
    """float32 ``rows`` (..., n) -> the tensor's bytes in ``qtype`` (an array to write as is)."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if qtype == QT.F32:
        return rows
    if qtype == QT.F16:
        return rows.astype(np.float16)
    if native and _native is not None and qtype in NATIVE_TYPES:
        block, type_size = GGML_QUANT_SIZES[qtype]
        out = np.empty(rows.size // block * type_size, dtype=np.uint8)
        _native.quantize(NATIVE_TYPES[qtype], rows, out, n_threads=n_threads or os.cpu_count() or 1)
        return out
    return gguf_quants.quantize(rows, qtype)


def reference_encode(rows: np.ndarray, qtype: QT) -> np.ndarray:
    """The gguf library's own result: what ``encode`` must equal byte for byte."""
    return gguf_quants.quantize(np.ascontiguousarray(rows, dtype=np.float32), qtype)
