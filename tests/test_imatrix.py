"""``radlite imatrix``: llama.cpp's eval callback against torch forward hooks, llama.cpp's
imatrix file format, and what the matrix does to the quantized model."""

from __future__ import annotations

import json
import subprocess

import gguf
import numpy as np
import pytest

from radlite_edge.bench.fidelity import measure_fidelity
from benchmarks.llama_cpp_ref import find_tool
from radlite_edge.cli import main
from radlite_edge.convert.imatrix import (CALIBRATION_SEED, calibration_pieces, compute_imatrix, make_imatrix,
                                         read_imatrix)
from radlite_edge.convert.quantize import quantize_ladder
from radlite_edge.llm import load
from radlite_edge.synth.corpus import radiology_corpus
from radlite_edge.token_windows import token_windows

CHUNK, N_CHUNKS = 128, 6


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _torch_imatrix(checkpoint, arch: str, windows: list[list[int]]):
    """The reference: x² summed per input column by forward pre-hooks on every block Linear."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    tmap = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch.upper()), model.config.num_hidden_layers)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def pre(module, args):
            x = args[0].detach().to(torch.float64).reshape(-1, args[0].shape[-1])
            sums[name] = sums.get(name, 0) + (x * x).sum(0).numpy()
            counts[name] = counts.get(name, 0) + x.shape[0]
        return pre

    for hf_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in hf_name:
            module.register_forward_pre_hook(hook(tmap.get_name(hf_name) + ".weight"))
    with torch.no_grad():
        for window in windows:
            model(torch.tensor([window]))
    return sums, counts


@pytest.mark.parametrize("name,arch", [("tiny-qwen2", "qwen2"), ("tiny-qwen3", "qwen3")])
def test_matches_torch_forward_hooks(name, arch, tiny_checkpoint, tiny_gguf):
    """llama.cpp's activations (F32 GGUF, eval callback) against transformers' on the same tokens."""
    model = tiny_gguf(name, "f32")
    pieces, dataset = calibration_pieces(None)
    data = compute_imatrix(model, pieces, chunk_size=CHUNK, max_chunks=N_CHUNKS, n_threads=2, dataset=dataset)

    vocab = load(model, n_ctx=CHUNK, vocab_only=True)
    pieces, _ = calibration_pieces(None)
    windows = list(token_windows(lambda s: vocab.tokenize(s.encode(), add_bos=False, special=False), pieces, CHUNK,
                                 max_windows=N_CHUNKS))
    vocab.close()
    assert len(windows) == N_CHUNKS == data.chunk_count
    sums, counts = _torch_imatrix(tiny_checkpoint(name), arch, windows)

    assert sorted(data.sums) == sorted(sums) and len(sums) == 14  # 7 matrices x 2 blocks
    assert data.counts == counts == {n: CHUNK * N_CHUNKS for n in sums}
    for weight, reference in sums.items():
        # attention runs with an F16 KV cache in llama.cpp: a few 1e-4 apart
        np.testing.assert_allclose(data.sums[weight], reference, rtol=2e-3, err_msg=weight)
    # not trivially uniform: the columns really differ in importance
    assert max(np.std(s / counts[n]) / np.mean(s / counts[n]) for n, s in sums.items()) > 0.2


@pytest.fixture(scope="module")
def f16(tiny_gguf):
    return tiny_gguf("tiny-qwen3", "f16")


@pytest.fixture(scope="module")
def imatrix_file(f16, tmp_path_factory):
    out = tmp_path_factory.mktemp("im") / "tiny-qwen3-imatrix.gguf"
    make_imatrix(f16, out, chunk_size=256, max_chunks=32, n_threads=2)
    return out


def test_file_is_llama_cpp_imatrix_format(imatrix_file, f16):
    """What tools/imatrix/imatrix.cpp writes and common/imatrix-loader.cpp reads."""
    reader = gguf.GGUFReader(imatrix_file)
    f = reader.fields
    assert f["general.type"].contents() == "imatrix"
    assert f["imatrix.chunk_size"].types == [gguf.GGUFValueType.UINT32] and f["imatrix.chunk_size"].contents() == 256
    assert f["imatrix.chunk_count"].types == [gguf.GGUFValueType.UINT32] and f["imatrix.chunk_count"].contents() == 32
    assert f["imatrix.datasets"].types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.STRING]
    assert "radiology" in f["imatrix.datasets"].contents()[0]
    names = [t.name for t in reader.tensors]
    assert names == [n for w in sorted(n.removesuffix(".in_sum2") for n in names if n.endswith(".in_sum2"))
                     for n in (w + ".in_sum2", w + ".counts")]
    model = {t.name: t for t in gguf.GGUFReader(f16).tensors}
    for t in reader.tensors:
        assert t.tensor_type == gguf.GGMLQuantizationType.F32
        weight = t.name.rsplit(".", 1)[0]
        if t.name.endswith(".in_sum2"):  # ne = [columns] (one matrix)
            assert [int(d) for d in t.shape] == [int(model[weight].shape[0])]
        else:
            assert [int(d) for d in t.shape] == [1] and float(t.data[0]) == 256 * 32
    data = read_imatrix(imatrix_file)
    means = data.means()
    some = next(iter(data.sums))
    np.testing.assert_allclose(means[some], data.sums[some] / data.counts[some], rtol=1e-6)


def test_checkpoint_and_its_gguf_give_the_same_matrix(tiny_checkpoint, f16, tmp_path, capsys):
    code, _, err = _run(capsys, "imatrix", str(tiny_checkpoint("tiny-qwen3")), "-o", str(tmp_path / "a.gguf"),
                        "--chunk", "64", "--chunks", "3", "-t", "2")
    assert code == 0, err
    code, _, err = _run(capsys, "imatrix", str(f16), "-o", str(tmp_path / "b.gguf"), "--chunk", "64", "--chunks", "3",
                        "-t", "2")
    assert code == 0, err
    a, b = read_imatrix(tmp_path / "a.gguf"), read_imatrix(tmp_path / "b.gguf")
    assert a.sums.keys() == b.sums.keys() and a.counts == b.counts
    for name in a.sums:
        np.testing.assert_array_equal(a.sums[name], b.sums[name])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temporary F16 is gone


def test_user_calibration_text_and_resume(f16, tmp_path, capsys):
    calib = tmp_path / "calib.txt"
    calib.write_text("Impression: no acute cardiopulmonary abnormality. Stable 4 mm nodule.\n" * 80)
    out = tmp_path / "im.gguf"
    code, stdout, err = _run(capsys, "imatrix", str(f16), "--calib", str(calib), "-o", str(out), "--chunk", "64",
                             "-t", "2", "--json")
    assert code == 0, err
    first = json.loads(stdout)
    assert first["datasets"] == [str(calib)] and first["chunk_count"] >= 2 and not first["skipped"]
    code, stdout, _ = _run(capsys, "imatrix", str(f16), "--calib", str(calib), "-o", str(out), "--chunk", "64",
                           "-t", "2", "--json")
    assert json.loads(stdout)["skipped"]
    calib.write_text(calib.read_text() + "Impression: new 12 mm spiculated mass.\n" * 40)
    code, stdout, _ = _run(capsys, "imatrix", str(f16), "--calib", str(calib), "-o", str(out), "--chunk", "64",
                           "-t", "2", "--json")
    assert not json.loads(stdout)["skipped"]


@pytest.mark.parametrize("content,needle", [
    (b"", "shorter than one chunk"),
    (b"Impression: normal.\n", "shorter than one chunk"),
    (b"\xff\xfe\x00binary\x00", "not UTF-8 text"),
])
def test_bad_calibration_text(content, needle, f16, tmp_path, capsys):
    calib = tmp_path / "calib.txt"
    calib.write_bytes(content)
    out = tmp_path / "im.gguf"
    code, _, err = _run(capsys, "imatrix", str(f16), "--calib", str(calib), "-o", str(out), "--chunk", "64")
    _one_line_error(code, err, needle)
    assert not [p for p in tmp_path.iterdir() if p.name != "calib.txt"]


def test_bad_model(tmp_path, capsys):
    code, _, err = _run(capsys, "imatrix", str(tmp_path / "none.gguf"), "-o", str(tmp_path / "im.gguf"))
    _one_line_error(code, err, "no such model")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGML" + b"\0" * 64)
    code, _, err = _run(capsys, "imatrix", str(junk), "-o", str(tmp_path / "im.gguf"))
    _one_line_error(code, err, "not a GGUF")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.gguf"]


@pytest.fixture(scope="module")
def low_levels(f16, imatrix_file, tmp_path_factory):
    """Q2_K and Q3_K_S with and without the radiology importance matrix."""
    root = tmp_path_factory.mktemp("low")
    plain = {r.level: r.path for r in quantize_ladder(f16, "q2_k,q3_k_s", root / "plain", n_threads=2)}
    imat = {r.level: r.path for r in quantize_ladder(f16, "q2_k,q3_k_s", root / "imatrix", imatrix=imatrix_file,
                                                      n_threads=2)}
    return plain, imat


@pytest.mark.parametrize("level", ["Q2_K", "Q3_K_S"])
def test_imatrix_changes_the_bytes(level, low_levels):
    plain, imat = low_levels
    a = {t.name: t for t in gguf.GGUFReader(plain[level]).tensors}
    b = {t.name: t for t in gguf.GGUFReader(imat[level]).tensors}
    blocks = [n for n in a if n.startswith("blk.") and len(a[n].shape) == 2]
    assert all(a[n].tensor_type == b[n].tensor_type for n in blocks)  # same types, other roundings
    changed = [n for n in blocks if not np.array_equal(np.asarray(a[n].data), np.asarray(b[n].data))]
    assert changed == blocks


def test_imatrix_lowers_kld_on_held_out_radiology_text(f16, low_levels):
    """Measured on held-out synthetic reports (seed 2; the matrix saw seed 1)."""
    plain, imat = low_levels
    order = ["Q2_K", "Q3_K_S"]
    rows, facts = measure_fidelity(f16, [plain[lv] for lv in order] + [imat[lv] for lv in order], ctx=128,
                                   max_windows=24, n_threads=2)
    assert facts["positions"] == 24 * 127
    kld = {(r.path.parent.name, r.level): r.kld_mean for r in rows}
    for level in order:
        assert kld[("imatrix", level)] < kld[("plain", level)], kld
    # and not by a hair: a few per cent at least on this model
    assert kld[("imatrix", "Q2_K")] < 0.97 * kld[("plain", "Q2_K")], kld


LLAMA_IMATRIX = find_tool("llama-imatrix")


@pytest.mark.skipif(LLAMA_IMATRIX is None, reason="llama.cpp's llama-imatrix is not built (make llama-quantize)")
@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_matches_llama_imatrix(name, tiny_gguf, tmp_path, capsys):
    """llama.cpp's own tool on the same text and chunks: same entries, counts, chunks, sums."""
    model = tiny_gguf(name, "f16")
    calib = tmp_path / "calib.txt"  # under one piece of text, so both tokenize it whole
    calib.write_text("\n".join(radiology_corpus(40, seed=CALIBRATION_SEED)) + "\n")
    theirs = tmp_path / "theirs.gguf"
    proc = subprocess.run([str(LLAMA_IMATRIX), "-m", str(model), "-f", str(calib), "-o", str(theirs), "-c", "128",
                           "-b", "128", "-ub", "128", "-t", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code, _, err = _run(capsys, "imatrix", str(model), "--calib", str(calib), "-o", str(tmp_path / "ours.gguf"),
                        "--chunk", "128", "-t", "2")
    assert code == 0, err
    a, b = read_imatrix(theirs), read_imatrix(tmp_path / "ours.gguf")
    assert (a.chunk_size, a.chunk_count, a.datasets) == (b.chunk_size, b.chunk_count, b.datasets) == \
        (128, a.chunk_count, [str(calib)])
    assert a.chunk_count >= 8
    assert a.counts == b.counts and sorted(a.sums) == sorted(b.sums)
    for weight in a.sums:  # llama-imatrix adds up in float32, we in float64
        np.testing.assert_allclose(b.sums[weight], a.sums[weight], rtol=1e-4, err_msg=weight)
