"""The C quantizers must equal the gguf library's numpy reference byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from radlite_edge import _native
from radlite_edge.bench import bandwidth
from radlite_edge.convert.quants import NATIVE_TYPES, encode, reference_encode

TYPES = list(NATIVE_TYPES)


def _cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    n = 32 * 64
    blocks = {
        "normal": rng.standard_normal(n).astype(np.float32),
        "weights": (0.02 * rng.standard_normal(n)).astype(np.float32),
        "uniform": rng.uniform(-3, 3, n).astype(np.float32),
        "zeros": np.zeros(n, np.float32),
        "huge": (rng.standard_normal(n) * 1e30).astype(np.float32),
        "beyond_fp16": (rng.standard_normal(n) * 1e6).astype(np.float32),
        "tiny": (rng.standard_normal(n) * 1e-30).astype(np.float32),
        "fp16_subnormal_scale": (rng.standard_normal(n) * 1e-5).astype(np.float32),
        "positive": np.abs(rng.standard_normal(n)).astype(np.float32) + 1,
        "negative": -np.abs(rng.standard_normal(n)).astype(np.float32) - 1,
        "constant": np.full(n, 0.7, np.float32),
        # exact ties between +max and -max magnitudes, half-way values, repeated extremes
        "ties": np.tile(np.array([1.0, -1.0, 0.5, -0.5, 0.25, 0.75, -0.75, 0.0] * 4, np.float32), n // 32),
        "integers": rng.integers(-8, 9, n).astype(np.float32),
        "one_spike": np.where(np.arange(n) % 32 == 7, 100.0, 0.001).astype(np.float32),
    }
    return blocks


@pytest.mark.parametrize("qtype", TYPES, ids=[t.name for t in TYPES])
@pytest.mark.parametrize("case", list(_cases()))
def test_c_quantizer_equals_gguf_numpy(qtype, case):
    data = _cases()[case].reshape(-1, 256)
    ours = encode(data, qtype, n_threads=1)
    ref = reference_encode(data, qtype).reshape(-1)
    assert ours.dtype == np.uint8
    assert ours.nbytes == ref.nbytes
    mismatch = np.flatnonzero(ours != ref.view(np.uint8))
    assert mismatch.size == 0, f"first differing byte {mismatch[:5]}"


@pytest.mark.parametrize("qtype", TYPES, ids=[t.name for t in TYPES])
def test_threads_do_not_change_bytes(qtype):
    data = np.random.default_rng(7).standard_normal((37, 96 * 32)).astype(np.float32)
    one = encode(data, qtype, n_threads=1)
    many = encode(data, qtype, n_threads=3)
    assert np.array_equal(one, many)


def test_fp16_conversion_matches_numpy_everywhere_finite():
    # every float16 boundary region: normals, subnormals, overflow, and the halfway points
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    halves = np.arange(0, 2**16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    midpoints = (halves[:-1].astype(np.float64) + halves[1:].astype(np.float64)) / 2
    x = np.concatenate([x, halves[np.isfinite(halves)], midpoints.astype(np.float32)[np.isfinite(midpoints)]])
    x = x[np.isfinite(x)]
    out = np.empty(x.size, np.float16)
    _native.fp32_to_fp16(x, out)
    assert np.array_equal(out.view(np.uint16), x.astype(np.float16).view(np.uint16))


def test_bad_buffers_are_refused():
    with pytest.raises(ValueError):
        _native.quantize("q8_0", np.zeros(31, np.float32), np.zeros(34, np.uint8))
    with pytest.raises(ValueError):
        _native.quantize("q8_0", np.zeros(32, np.float32), np.zeros(33, np.uint8))
    with pytest.raises(ValueError):
        _native.quantize("q3_k", np.zeros(32, np.float32), np.zeros(34, np.uint8))


def test_bandwidth_probe_reports_each_repetition():
    r = bandwidth.measure("triad", threads=1, array_bytes=64 << 20, reps=3)
    assert len(r.gbps) == 3
    # any machine this runs on moves more than 0.5 GB/s and less than 10 TB/s
    assert all(0.5 < g < 10_000 for g in r.gbps)
    with pytest.raises(ValueError):
        bandwidth.measure("scale")


def test_q8_0_rounding_at_every_half_way_point():
    # a block whose max is 127 has scale d = 1, so each value is rounded as it is:
    # every k + 0.5 in range and its float neighbours, against the reference's np_roundf
    halves = np.arange(-127, 127, dtype=np.float32) + np.float32(0.5)
    values = np.concatenate([halves, np.nextafter(halves, np.float32(-200)), np.nextafter(halves, np.float32(200)),
                             np.float32([0.0, -0.0, 0.49999997, -0.49999997, 1e-30, -1e-30])])
    values = values[np.abs(values) <= 127]
    values = np.resize(values, (values.size + 30) // 31 * 31).reshape(-1, 31)
    blocks = np.concatenate([np.full((values.shape[0], 1), 127, np.float32), values], axis=1)
    assert np.array_equal(encode(blocks, QT.Q8_0, n_threads=1), reference_encode(blocks, QT.Q8_0).reshape(-1))
