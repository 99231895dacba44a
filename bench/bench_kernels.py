"""pytest-benchmark suite: each C kernel beside the gguf library's numpy.

    pytest bench/bench_kernels.py --benchmark-enable

Groups pair the two implementations of a type so pytest-benchmark's table shows them
together; ``python -m radlite_edge.bench.quant_speed`` prints the ratios directly.
"""

from __future__ import annotations

import numpy as np
import pytest

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
