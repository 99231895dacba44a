"""pytest-benchmark suite: what the Python path adds to each generated token.

    pytest benchmarks/bench_overhead.py --benchmark-enable

One single-token decode of a tiny model (its compute is a few tens of microseconds, so
the Python layers show) reached four ways, from bare ctypes to a sampled generation:

    llama_decode      llama-cpp-python's ctypes binding, one preallocated batch: the floor
    Llama.eval        what ``radlite bench``'s tg test runs (and llama-cpp-python's own loop)
    eval+logits       Llama.eval, then the last logits copied to numpy (``llm.last_logits``)
    generate          next() of ``Llama.generate``: decode + llama.cpp's greedy sampler

On a full-size model a token costs 70-300 ms, so the gaps here bound the Python path's
share of tg; ``python -m benchmarks.vs_llama_bench`` measures that share directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from radlite_edge.bench import throughput as tp
from radlite_edge.llm import last_logits

ROUNDS = 400
N_CTX = 1024  # ROUNDS + warm-up rounds fit: no cache reset inside a timed series


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    from radlite_edge.convert.hf_to_gguf import convert_checkpoint
    from radlite_edge.synth.models import SPECS, write_checkpoint

    d = tmp_path_factory.mktemp("overhead")
    ckpt = write_checkpoint(SPECS["tiny-qwen2"], d / "tiny-qwen2", seed=0)
    path = d / "tiny-qwen2-F16.gguf"
    convert_checkpoint(ckpt, path, outtype="f16", n_threads=1)
    model = tp.open_model(path, tp.ContextParams(n_ctx=N_CTX, threads=1))
    yield model
    model.close()


def _series(benchmark, fn):
    benchmark.group = "one generated token"
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=20)


def test_llama_decode(benchmark, llm):
    import llama_cpp

    tp.restore(llm, tp.prefill(llm, []))
    token = (llama_cpp.llama_token * 1)(1)
    batch = llama_cpp.llama_batch_get_one(token, 1)

    def step():
        if llama_cpp.llama_decode(llm.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")

    _series(benchmark, step)


def test_llama_eval(benchmark, llm):
    tp.restore(llm, tp.prefill(llm, []))
    _series(benchmark, lambda: llm.eval([1]))


def test_eval_and_logits(benchmark, llm):
    tp.restore(llm, tp.prefill(llm, []))

    def step():
        llm.eval([1])
        return last_logits(llm)

    _series(benchmark, step)
    assert np.isfinite(last_logits(llm)).all()


def test_generate(benchmark, llm):
    tp.restore(llm, tp.prefill(llm, []))
    gen = llm.generate([1], top_k=1, temp=0.0, repeat_penalty=1.0)
    _series(benchmark, lambda: next(gen))
    gen.close()
