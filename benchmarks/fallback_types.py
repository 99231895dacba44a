"""Where a quantized file loses accuracy: in its weights, or in llama.cpp's arithmetic on them.

    python -m benchmarks.fallback_types REFERENCE-F16.gguf LEVEL.gguf [LEVEL.gguf ...] [--rows 64] [--base BASE.gguf]

For each file, two numbers per weight type it holds:

- **weights:** the relative Frobenius error of its dequantized weights against the reference
  (ggml's own ``to_float``, which the gguf library's dequantizer matches bit for bit here);
- **kernel:** the relative error of llama.cpp's CPU dot product (``vec_dot``, with the activations
  quantized to the type's ``vec_dot_type`` as a matmul does) against the exact dot product of the
  same dequantized operands, on Gaussian activations. It isolates what the kernel adds: Q5_0 and
  Q4_0 pair with Q8_0 activations and add nothing; Q5_1 and Q4_1 pair with Q8_1, whose block sum
  is stored in fp16.

With ``--base`` (the quantized model a LoRA fine-tune started from, e.g. the embedded default's
Q4_1 base), a third: **to base**, the distance of the file's weights to the base's over their
distance to the reference. Below 1, the quantizer has rounded the fine-tune's delta away and
put the weights back on the base's grid: an asymmetric format whose step matches the base's
(Q4_1 itself; Q5_1 when its importance-weighted search finds half that step) erases a small
delta that a symmetric one (Q4_0, Q5_0) keeps.

Read beside ``radlite fidelity`` (KLD against the reference) and the task scores.
"""

from __future__ import annotations

import argparse
import ctypes as C
import os
import sys
from pathlib import Path

import numpy as np

FROM_FLOAT = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)
TO_FLOAT = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)
VEC_DOT = C.CFUNCTYPE(None, C.c_int, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t, C.c_int)


class _Traits(C.Structure):  # ggml.h: struct ggml_type_traits
    _fields_ = [("type_name", C.c_char_p), ("blck_size", C.c_int64), ("blck_size_interleave", C.c_int64),
                ("type_size", C.c_size_t), ("is_quantized", C.c_bool), ("to_float", TO_FLOAT),
                ("from_float_ref", FROM_FLOAT)]


class _CpuTraits(C.Structure):  # ggml-cpu.h: struct ggml_type_traits_cpu
    _fields_ = [("from_float", FROM_FLOAT), ("vec_dot", VEC_DOT), ("vec_dot_type", C.c_int), ("nrows", C.c_int64)]


def _ggml():
    import llama_cpp

    lib = Path(llama_cpp.__file__).parent / "lib"
    base = C.CDLL(str(lib / "libggml-base.so"), mode=C.RTLD_GLOBAL)
    cpu = C.CDLL(str(lib / "libggml-cpu.so"), mode=C.RTLD_GLOBAL)
    base.ggml_get_type_traits.restype = C.POINTER(_Traits)
    cpu.ggml_get_type_traits_cpu.restype = C.POINTER(_CpuTraits)
    cpu.ggml_cpu_init()
    return base, cpu


def _activation_values(traits: _Traits, q: np.ndarray, n: int) -> np.ndarray:
    """The quantized activations as the kernel sees them (Q8_1 has no to_float in ggml: d·q)."""
    if traits.to_float:
        out = np.zeros(n, np.float32)
        traits.to_float(q.ctypes.data, out.ctypes.data, n)
        return out
    blocks = q.reshape(-1, traits.type_size)
    name = traits.type_name.decode()
    if name == "q8_1":  # fp16 d, fp16 s (d · Σq), int8 qs[32]
        d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
        qs = blocks[:, 4:]
    elif name == "q8_K":  # fp32 d, int8 qs[256], int16 bsums[16]
        d = blocks[:, :4].copy().view(np.float32)
        qs = blocks[:, 4:4 + traits.blck_size]
    else:
        raise ValueError(f"activation type {name}: no decoder")
    return (d * qs.view(np.int8).astype(np.float32)).reshape(-1)


def measure(reference: Path, path: Path, rows: int, seed: int = 0,
            start: Path | None = None) -> dict[str, dict[str, float]]:
    import gguf

    base, cpu = _ggml()
    ref = {t.name: t for t in gguf.GGUFReader(str(reference)).tensors}
    origin = {t.name: t for t in gguf.GGUFReader(str(start)).tensors} if start else {}
    rng = np.random.default_rng(seed)
    acc: dict[str, list[float]] = {}  # type -> [weight err², weight norm², kernel err², kernel norm², elements]
    for t in gguf.GGUFReader(str(path)).tensors:
        if t.name not in ref or len(t.shape) < 2:
            continue
        traits, cpu_traits = base.ggml_get_type_traits(int(t.tensor_type)).contents, \
            cpu.ggml_get_type_traits_cpu(int(t.tensor_type)).contents
        if not traits.to_float or not cpu_traits.vec_dot:
            continue
        act = base.ggml_get_type_traits(cpu_traits.vec_dot_type).contents
        act_cpu = cpu.ggml_get_type_traits_cpu(cpu_traits.vec_dot_type).contents
        data = np.ascontiguousarray(t.data).reshape(t.data.shape[0], -1)
        n = int(data.shape[1] // traits.type_size * traits.blck_size)
        r0 = ref[t.name]
        w0 = gguf.quants.dequantize(r0.data, r0.tensor_type).astype(np.float64).reshape(data.shape[0], n)
        a = acc.setdefault(traits.type_name.decode(), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        b0 = (gguf.quants.dequantize(origin[t.name].data, origin[t.name].tensor_type).astype(np.float64)
              .reshape(data.shape[0], n) if t.name in origin else None)
        for r in range(0, data.shape[0], max(1, data.shape[0] // rows)):
            x = np.ascontiguousarray(data[r])
            w = np.zeros(n, np.float32)
            traits.to_float(x.ctypes.data, w.ctypes.data, n)
            a[0] += float(((w - w0[r]) ** 2).sum())
            a[1] += float((w0[r] ** 2).sum())
            if b0 is not None:
                a[5] += float(((w - b0[r]) ** 2).sum())
            y = rng.standard_normal(n).astype(np.float32)
            yq = np.zeros(n // act.blck_size * act.type_size, np.uint8)
            act_cpu.from_float(y.ctypes.data, yq.ctypes.data, n)
            s = np.zeros(1, np.float32)
            cpu_traits.vec_dot(n, s.ctypes.data, 0, x.ctypes.data, 0, yq.ctypes.data, 0, 1)
            exact = float(np.dot(w.astype(np.float64), _activation_values(act, yq, n).astype(np.float64)))
            a[2] += (float(s[0]) - exact) ** 2
            a[3] += exact ** 2
        a[4] += t.n_elements
    return {k: {"weights": (v[0] / v[1]) ** 0.5, "kernel": (v[2] / v[3]) ** 0.5, "elements": v[4],
                "to_base": (v[5] / v[0]) ** 0.5 if origin and v[0] else None}
            for k, v in acc.items()}


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from radlite_edge import machine

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reference", type=Path)
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--rows", type=int, default=64, help="rows sampled per tensor (default 64)")
    ap.add_argument("--base", type=Path, help="the quantized base a LoRA fine-tune started from")
    a = ap.parse_args(argv)
    for p in (a.reference, *a.files, *([a.base] if a.base else [])):
        if not p.is_file():
            print(f"{p}: no such GGUF file", file=sys.stderr)
            return 2
    table = Table(title=f"weights vs arithmetic · {machine.describe()['cpu']}")
    for col in ("file", "type", "M weights", "weight rel. err", "kernel rel. err") + (("to base",) if a.base else ()):
        table.add_column(col, justify="left" if col in ("file", "type") else "right")
    for p in a.files:
        for kind, v in sorted(measure(a.reference, p, a.rows, start=a.base).items()):
            table.add_row(p.name, kind, f"{v['elements'] / 1e6:.1f}", f"{v['weights']:.4f}", f"{v['kernel']:.1e}",
                          *([f"{v['to_base']:.2f}" if v["to_base"] is not None else "—"] if a.base else []))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
