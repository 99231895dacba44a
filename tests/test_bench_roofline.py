"""The roofline's byte counts against the files and llama.cpp; the page-cache tools; the probe."""

from __future__ import annotations

import math
from pathlib import Path

import gguf
import numpy as np
import pytest

from radlite_edge.bench import roofline
from radlite_edge.bench import throughput as tp


def _mount_type(path: Path) -> str:
    best, kind = "", ""
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_bytes_read_per_token(tiny_gguf, name):
    path = tiny_gguf(name, "q8_0")
    mb = roofline.model_bytes(path)
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    total = sum(int(t.n_bytes) for t in reader.tensors)
    embd = tensors["token_embd.weight"]
    row = int(embd.n_bytes) // mb.n_vocab
    assert mb.weight_bytes == total and mb.level == "Q8_0" and mb.name == name
    if "output.weight" in tensors:  # untied (tiny-qwen3): the lookup reads one row of the embedding
        assert name == "tiny-qwen3"
        assert mb.read_per_token == total - int(embd.n_bytes) + row
    else:  # tied (tiny-qwen2): the output projection reads the whole embedding, and the lookup a row
        assert name == "tiny-qwen2"
        assert mb.read_per_token == total + row
    assert mb.tg_bytes_per_token(depth=100, n_gen=9) == mb.read_per_token + mb.kv_bytes_per_token * 105


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_kv_bytes_match_llama_cpp(tiny_gguf, name, n_threads):
    """llama.cpp's saved sequence state is the K and V of its tokens plus a small header."""
    import llama_cpp

    path = tiny_gguf(name, "f16")
    mb = roofline.model_bytes(path)
    llm = tp.open_model(path, tp.ContextParams(n_ctx=256, threads=n_threads))
    try:
        rng = np.random.default_rng(0)
        for n in (50, 200):
            tp.prefill(llm, tp.random_tokens(llm, n, rng))
            state = llama_cpp.llama_state_seq_get_size(llm.ctx, 0)
            assert mb.kv_bytes(n) <= state <= mb.kv_bytes(n) * 1.01 + 8192, (n, state, mb.kv_bytes(n))
    finally:
        llm.close()


def test_depth_state_restores_the_cache(tiny_gguf, n_threads):
    """After a restore, the next token's logits equal those of evaluating the prefix afresh."""
    from radlite_edge.llm import last_logits

    llm = tp.open_model(tiny_gguf("tiny-qwen2", "f16"), tp.ContextParams(n_ctx=128, threads=n_threads))
    try:
        rng = np.random.default_rng(1)
        prefix, nxt = tp.random_tokens(llm, 40, rng), tp.random_tokens(llm, 1, rng)
        llm.reset()
        llm.eval(prefix)  # in one batch, then the next token alone: the same kernels as below
        llm.eval(nxt)
        expected = last_logits(llm)
        state = tp.prefill(llm, prefix)
        tp.pp_once(llm, state, 30, rng)  # disturb the cache
        tp.restore(llm, state)
        assert llm.n_tokens == 40
        llm.eval(nxt)
        np.testing.assert_allclose(last_logits(llm), expected, rtol=1e-4, atol=1e-4)
    finally:
        llm.close()


def test_cold_cache_is_obtained(tmp_path):
    if _mount_type(tmp_path) in ("tmpfs", "ramfs", "overlay"):
        pytest.skip(f"{tmp_path} is on {_mount_type(tmp_path)}: its pages are the file, none can be dropped")
    f = tmp_path / "blob.bin"
    f.write_bytes(np.random.default_rng(0).bytes(8 << 20))
    f.read_bytes()
    assert tp.resident_fraction(f) == 1.0
    tp.drop_page_cache(f)
    assert tp.resident_fraction(f) == 0.0


def test_roofline_arithmetic():
    assert roofline.ceiling_tok_s(2e9, 40.0) == 20.0
    assert math.isclose(roofline.fraction(15.0, 2e9, 40.0), 0.75)
    from radlite_edge.bench.bandwidth import BandwidthResult

    probes = {1: BandwidthResult("read", 1, 1, (30.0, 35.0, 33.0)), 2: BandwidthResult("read", 2, 1, (31.0, 32.0)),
              4: BandwidthResult("read", 4, 1, (50.0, 40.0))}
    assert roofline.ceiling_gbps(probes, 1) == 35.0
    assert roofline.ceiling_gbps(probes, 2) == 35.0  # a 2-thread decode can leave a thread idle
    assert roofline.ceiling_gbps(probes, 8) == 50.0
    with pytest.raises(ValueError):
        roofline.ceiling_gbps({2: probes[2]}, 1)
    result = roofline.probe_bandwidth(1, reps=2)
    assert result.kind == roofline.PROBE and len(result.gbps) == 2 and result.median > 0


def test_other_load_sees_another_process_and_not_a_short_window():
    import subprocess
    import sys
    import time

    import psutil

    assert tp.OtherLoad().share() is None  # a few ms: tick counts cannot tell
    other = tp.OtherLoad()
    # not reaped until after the reading, so its time is not counted as ours (children_*)
    spinner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 5: pass"])
    try:
        time.sleep(1.5)
        share = other.share()
    finally:
        spinner.kill()
        spinner.wait()
    cpus = len(psutil.cpu_times(percpu=True))
    assert share is not None and 0.6 / cpus <= share <= 1.0, share  # one whole CPU of ``cpus`` was busy
