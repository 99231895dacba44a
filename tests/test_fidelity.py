"""``radlite fidelity``: KL divergence, top-1 agreement and perplexity against F16, checked
against torch's own KL divergence and cross entropy, streamed in constant memory.

The tiny model here is tiny-qwen3: its untied head gives soft next-token distributions.
tiny-qwen2's tied embeddings (std 1) put the top logit ~120 above the next, so every
level agrees with F16 to the last bit of probability and KLD would be 0 everywhere.
"""

from __future__ import annotations

import json
import math
import shutil
import tracemalloc

import numpy as np
import pytest

from radlite_edge.bench.fidelity import HELD_OUT_SEED, measure_fidelity
from radlite_edge.cli import main
from radlite_edge.convert.imatrix import make_imatrix
from radlite_edge.convert.quantize import quantize_ladder
from radlite_edge.llm import load
from radlite_edge.results import read_jsonl
from radlite_edge.synth.corpus import radiology_corpus
from radlite_edge.token_windows import text_pieces, token_windows

MODEL = "tiny-qwen3"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture(scope="module")
def f16(tiny_gguf):
    return tiny_gguf(MODEL, "f16")


@pytest.fixture(scope="module")
def levels(f16, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("levels")
    return {r.level: r.path for r in quantize_ladder(f16, "q8_0,q4_k_m,q2_k", outdir, n_threads=2)}


def _text(path, n_reports: int, seed: int = HELD_OUT_SEED):
    path.write_text("\n".join(radiology_corpus(n_reports, seed=seed)) + "\n")
    return path


def test_identical_files_give_zero_kld_and_full_agreement(f16, tmp_path):
    twin = tmp_path / "twin.gguf"
    shutil.copyfile(f16, twin)
    rows, facts = measure_fidelity(f16, [f16, twin], ctx=128, max_windows=6, n_threads=2)
    for r in rows:
        assert r.kld_mean == r.kld_median == r.kld_p99 == 0.0
        assert r.top1 == 1.0 and r.ppl == r.ppl_ref and r.ppl_ratio == 1.0
        assert r.n_positions == facts["positions"] == 6 * 127


def test_fidelity_falls_with_the_level(f16, levels):
    rows, _ = measure_fidelity(f16, [levels["Q8_0"], levels["Q4_K_M"], levels["Q2_K"]], ctx=128, max_windows=16,
                               n_threads=2)
    q8, q4, q2 = rows
    assert 0 < q8.kld_mean < q4.kld_mean < q2.kld_mean
    assert q8.top1 > q4.top1 > q2.top1
    assert q8.bits_per_weight > q4.bits_per_weight > q2.bits_per_weight
    assert all(r.kld_median <= r.kld_p99 for r in rows)


def test_figures_match_torch(f16, levels, tmp_path):
    """The streamed figures against torch's kl_div and cross_entropy on the full logits."""
    import torch
    import torch.nn.functional as F

    text = _text(tmp_path / "held_out.txt", 12)
    ctx = 64
    rows, facts = measure_fidelity(f16, [levels["Q4_K_M"], levels["Q2_K"]], text=text, ctx=ctx, n_threads=2)

    def all_logits(path):
        llm = load(path, n_ctx=ctx, n_batch=ctx, n_ubatch=ctx, logits_all=True, n_threads=2)
        try:
            windows = list(token_windows(lambda s: llm.tokenize(s.encode(), add_bos=False, special=False),
                                         text_pieces(text), ctx, keep_partial=True))
            out = []
            for w in windows:
                llm.reset()
                llm.eval(w)
                out.append(torch.tensor(np.array(llm.scores[: len(w)]), dtype=torch.float64))
            return windows, out
        finally:
            llm.close()

    windows, ref = all_logits(f16)
    assert len(windows) == facts["windows"] and len(windows[-1]) < ctx  # the last, partial window is scored
    targets = [torch.tensor(w[1:]) for w in windows]
    ref_nll = sum(F.cross_entropy(L[:-1], t, reduction="sum") for L, t in zip(ref, targets))
    n = sum(len(t) for t in targets)
    assert n == facts["positions"]
    assert facts["ppl_reference"] == pytest.approx(math.exp(ref_nll / n), rel=1e-9)
    for row, level in zip(rows, ("Q4_K_M", "Q2_K")):
        _, cand = all_logits(levels[level])
        kld = torch.cat([F.kl_div(F.log_softmax(Q[:-1], -1), F.log_softmax(P[:-1], -1), log_target=True,
                                  reduction="none").sum(-1) for P, Q in zip(ref, cand)])
        top1 = sum(int((P[:-1].argmax(-1) == Q[:-1].argmax(-1)).sum()) for P, Q in zip(ref, cand)) / n
        nll = sum(F.cross_entropy(Q[:-1], t, reduction="sum") for Q, t in zip(cand, targets))
        assert row.kld_mean == pytest.approx(float(kld.mean()), rel=1e-6)
        assert row.kld_median == pytest.approx(float(torch.quantile(kld, 0.5)), rel=1e-5)
        assert row.kld_p99 == pytest.approx(float(torch.quantile(kld, 0.99)), rel=1e-5)
        assert row.top1 == pytest.approx(top1)
        assert row.ppl == pytest.approx(math.exp(nll / n), rel=1e-9)
        assert row.ppl_ratio == pytest.approx(math.exp((nll - ref_nll) / n), rel=1e-9)


def _held_while_streaming(f16, candidate, text) -> tuple[int, int]:
    """The most Python memory held at the end of any window (tracemalloc), and the positions scored."""
    held = [0]

    def progress(windows: int, positions: int) -> None:
        held[0] = max(held[0], tracemalloc.get_traced_memory()[0])

    tracemalloc.start()
    try:
        _, facts = measure_fidelity(f16, [candidate], text=text, ctx=256, n_threads=2, progress=progress)
        return held[0], facts["positions"]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_text(f16, levels, tmp_path):
    """8x the text: memory grows by the per-position KLD floats only, not by the text or its tokens.

    (Reading the long text whole and tokenizing it at once would hold ~36 bytes a token
    through the run: this test fails for that by some 700 KB.)
    """
    _held_while_streaming(f16, levels["Q8_0"], _text(tmp_path / "warm.txt", 4))  # one-time imports and caches
    small, small_n = _held_while_streaming(f16, levels["Q8_0"], _text(tmp_path / "short.txt", 50))
    big, big_n = _held_while_streaming(f16, levels["Q8_0"], _text(tmp_path / "long.txt", 400))
    assert big_n > 7 * small_n
    per_position = 12  # a float32 KLD, and the small array it sits in per block of rows
    assert big - small < per_position * (big_n - small_n) + 64 * 1024, (small, big, small_n, big_n)


def test_cli_table_and_results_records(f16, levels, tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    code, out, err = _run(capsys, "fidelity", str(f16), str(levels["Q8_0"]), str(levels["Q2_K"]), "-c", "128",
                          "--chunks", "4", "-t", "2", "--results", str(results))
    assert code == 0, err
    assert "KLD mean" in out and "Q8_0" in out and "Q2_K" in out and "PPL ratio" in out
    records = read_jsonl(results)
    metrics = {(r.level, r.metric) for r in records}
    for level in ("Q8_0", "Q2_K"):
        for metric in ("kld_mean", "kld_median", "kld_p99", "top1_agreement", "ppl", "ppl_ratio", "file_bytes",
                       "bits_per_weight"):
            assert (level, metric) in metrics
    assert all(r.benchmark == "fidelity" and r.model == MODEL and r.machine for r in records)
    kld = next(r for r in records if r.metric == "kld_mean" and r.level == "Q2_K")
    assert kld.n == 4 * 127 and kld.stat == "mean" and kld.spread > 0 and kld.unit == "nat"
    code, out, _ = _run(capsys, "fidelity", str(f16), str(levels["Q8_0"]), "-c", "128", "--chunks", "2", "-t", "2",
                        "--results", str(results), "--json")
    data = json.loads(out)
    assert data["windows"] == 2 and data["levels"][0]["level"] == "Q8_0"


def test_bad_inputs(f16, levels, tmp_path, capsys):
    def error(*argv: str) -> str:
        code, _, err = _run(capsys, "fidelity", *argv, "--results", str(tmp_path / "r.jsonl"))
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        return lines[0]

    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model")
    assert "not a GGUF" in error(str(f16), str(junk))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(levels["Q8_0"].read_bytes()[:-1000])
    assert "truncated" in error(str(f16), str(cut))
    imatrix = tmp_path / "imatrix.gguf"
    make_imatrix(f16, imatrix, chunk_size=64, max_chunks=1, n_threads=2)
    assert "of type 'imatrix', not a model" in error(str(f16), str(imatrix))
    binary = tmp_path / "held.txt"
    binary.write_bytes(b"\x00\x01\x02 binary")
    assert "not text" in error(str(f16), str(levels["Q8_0"]), "--text", str(binary))
    assert "no such text file" in error(str(f16), str(levels["Q8_0"]), "--text", str(tmp_path / "none.txt"))
    one = tmp_path / "one.txt"
    one.write_text("a")
    assert "too short" in error(str(f16), str(levels["Q8_0"]), "--text", str(one))
    assert not (tmp_path / "r.jsonl").exists()
