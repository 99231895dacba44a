"""pytest-benchmark suite: each C kernel beside the gguf library's numpy.

    pytest benchmarks/bench_kernels.py --benchmark-enable

Groups pair the two implementations of a type so pytest-benchmark's table shows them
together; ``python -m benchmarks.quant_speed`` prints the ratios directly.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from radlite_edge import _native
from radlite_edge.bench.bandwidth import measure
from radlite_edge.convert.quants import NATIVE_TYPES, encode, reference_encode

DATA = (0.02 * np.random.default_rng(0).standard_normal((1024, 2048))).astype(np.float32)


@pytest.mark.parametrize("qtype", list(NATIVE_TYPES), ids=[t.name for t in NATIVE_TYPES])
def test_gguf_numpy(benchmark, qtype):
    benchmark.group = qtype.name
    benchmark(reference_encode, DATA, qtype)


@pytest.mark.parametrize("qtype", list(NATIVE_TYPES), ids=[t.name for t in NATIVE_TYPES])
def test_c_one_thread(benchmark, qtype):
    benchmark.group = qtype.name
    out = benchmark(encode, DATA, qtype, n_threads=1)
    assert np.array_equal(out, reference_encode(DATA, qtype).view(np.uint8).ravel())


@pytest.mark.parametrize("kind", ["read", "copy", "triad"])
def test_bandwidth_probe(benchmark, kind):
    benchmark.group = "bandwidth"
    result = benchmark.pedantic(measure, args=(kind,), kwargs={"threads": 1, "reps": 3}, rounds=3)
    benchmark.extra_info["GB/s"] = result.best


# --- issue 6: every thread count of the roofline probe, the F16 kernel, the quantizers on all cores ---

THREADS = sorted({1, os.cpu_count() or 1})


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("kind", ["read", "copy", "triad"])
def test_bandwidth_probe_threads(benchmark, kind, threads):
    benchmark.group = f"bandwidth {kind}"
    result = benchmark.pedantic(measure, args=(kind,), kwargs={"threads": threads, "reps": 3}, rounds=3)
    benchmark.extra_info["GB/s median"] = result.median


def test_fp32_to_fp16_c(benchmark):
    benchmark.group = "F16"
    out = np.empty(DATA.shape, dtype=np.float16)
    benchmark(_native.fp32_to_fp16, DATA, out)
    assert np.array_equal(out.view(np.uint16), DATA.astype(np.float16).view(np.uint16))


def test_fp32_to_fp16_numpy(benchmark):
    benchmark.group = "F16"
    benchmark(DATA.astype, np.float16)


@pytest.mark.parametrize("qtype", list(NATIVE_TYPES), ids=[t.name for t in NATIVE_TYPES])
def test_c_all_threads(benchmark, qtype):
    benchmark.group = qtype.name
    benchmark(encode, DATA, qtype, n_threads=THREADS[-1])
