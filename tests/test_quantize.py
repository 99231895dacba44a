"""``radlite quantize``: every level through llama.cpp's quantizer, refusals, resumability,
and agreement with the gguf-library path of ``radlite convert`` for the legacy levels."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from benchmarks.llama_cpp_ref import find_tool
from radlite_edge.cli import main
from radlite_edge.convert.imatrix import ImatrixData, make_imatrix, read_imatrix, write_imatrix
from radlite_edge.convert.inspect_gguf import summarize
from radlite_edge.convert.quantize import model_name, quantize_ladder
from radlite_edge.levels import LEVELS, get_level
from radlite_edge.llm import last_logits, load

MODEL = "tiny-qwen3"  # untied output, soft next-token distributions (see test_fidelity.py)
FLOAT_TYPES = {QT.F32, QT.F16, QT.BF16}


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _leftovers(directory) -> list[str]:
    """Any GGUF, manifest or temporary file: a refused run must leave none."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def f16(tiny_gguf):
    return tiny_gguf(MODEL, "f16")


@pytest.fixture(scope="module")
def imatrix_file(f16, tmp_path_factory):
    out = tmp_path_factory.mktemp("imatrix") / f"{MODEL}-imatrix.gguf"
    make_imatrix(f16, out, chunk_size=128, max_chunks=16, n_threads=2)
    return out


@pytest.fixture(scope="module")
def ladder(f16, imatrix_file, tmp_path_factory):
    """Every level of the table: the IQ levels with the importance matrix, the others without."""
    outdir = tmp_path_factory.mktemp("ladder")
    plain = [lv.name for lv in LEVELS if not lv.needs_imatrix]
    iq = [lv.name for lv in LEVELS if lv.needs_imatrix]
    results = quantize_ladder(f16, plain, outdir, n_threads=2)
    results += quantize_ladder(f16, iq, outdir, imatrix=imatrix_file, n_threads=2)
    return {r.level: r for r in results}


@pytest.mark.parametrize("level", [lv.name for lv in LEVELS])
def test_every_level_is_made_loads_and_generates(level, ladder):
    result = ladder[level]
    lv = get_level(level)
    reader = gguf.GGUFReader(result.path)
    assert int(reader.fields["general.file_type"].contents()) == int(lv.ftype)
    weights = [t for t in reader.tensors if t.name.startswith("blk.") and len(t.shape) == 2]
    if lv.name in ("F32", "F16", "BF16"):
        assert {t.tensor_type for t in weights} == {lv.tensor_type}
    else:  # really quantized: no 2-D weight of a block left in a float type
        assert not {t.tensor_type for t in weights} & FLOAT_TYPES, {t.name: t.tensor_type.name for t in weights}
    assert result.bits_per_weight == pytest.approx(summarize(result.path).bits_per_weight)

    llm = load(result.path, n_ctx=128, n_threads=2)
    try:
        prompt = llm.tokenize(b"Impression: BI-RADS 4A. Spiculated mass", add_bos=False)
        generated = []
        for token in llm.generate(prompt, temp=0.0):
            generated.append(token)
            if len(generated) == 8:
                break
        assert len(generated) == 8 and all(0 <= t < llm.n_vocab() for t in generated)
    finally:
        llm.close()


def test_sizes_fall_with_the_level(ladder):
    by_bits = [ladder[name].bits_per_weight for name in ("F16", "Q8_0", "Q6_K", "Q4_K_M", "Q3_K_S", "Q2_K", "IQ2_XS")]
    assert by_bits == sorted(by_bits, reverse=True)


def test_manifest_records_inputs_and_figures(ladder, f16):
    result = ladder["Q4_K_M"]
    m = json.loads(result.path.with_name(result.path.name + ".manifest.json").read_text())
    assert m["step"] == "quantize" and m["params"] == {"level": "Q4_K_M", "imatrix_sha256": None}
    r = m["result"]
    assert r["source_sha256"] == hashlib.sha256(f16.read_bytes()).hexdigest()
    assert r["bytes"] == result.path.stat().st_size
    assert r["bits_per_weight"] == pytest.approx(summarize(result.path).bits_per_weight)
    assert r["seconds"] > 0
    iq = json.loads(ladder["IQ2_XS"].path.with_name(ladder["IQ2_XS"].path.name + ".manifest.json").read_text())
    assert iq["result"]["imatrix_sha256"] is not None


def test_the_quantizer_records_the_imatrix_as_llama_quantize_does(ladder, imatrix_file):
    fields = gguf.GGUFReader(ladder["IQ3_XXS"].path).fields
    assert fields["quantize.imatrix.file"].contents() == str(imatrix_file)
    assert fields["quantize.imatrix.entries_count"].contents() == len(read_imatrix(imatrix_file).sums)
    assert fields["quantize.imatrix.chunks_count"].contents() == 16
    assert "quantize.imatrix.file" not in gguf.GGUFReader(ladder["Q4_K_M"].path).fields


def test_up_to_date_outputs_are_kept(f16, tmp_path, imatrix_file):
    first = quantize_ladder(f16, "q8_0,q4_0", tmp_path, n_threads=2)
    stamps = [r.path.stat().st_mtime_ns for r in first]
    again = quantize_ladder(f16, "q8_0,q4_0", tmp_path, n_threads=2)
    assert [r.skipped for r in again] == [True, True]
    assert [r.path.stat().st_mtime_ns for r in again] == stamps
    assert again[0].bytes == first[0].bytes and again[0].source_sha256 == first[0].source_sha256
    # another importance matrix is another input: the level is made again
    redone = quantize_ladder(f16, "q4_0", tmp_path, imatrix=imatrix_file, n_threads=2)
    assert not redone[0].skipped
    assert not quantize_ladder(f16, "q8_0", tmp_path, n_threads=2, force=True)[0].skipped


def test_output_names_and_no_temporaries(ladder, f16):
    outdir = ladder["Q8_0"].path.parent
    assert model_name(f16) == MODEL
    assert {p.name for p in outdir.glob("*.gguf")} == {f"{MODEL}-{lv.name}.gguf" for lv in LEVELS}
    assert not [p for p in outdir.iterdir() if ".part" in p.name]


def test_auto_imatrix_is_computed_and_kept(f16, tmp_path, capsys):
    code, out, err = _run(capsys, "quantize", str(f16), "--levels", "iq2_xs", "--imatrix", "auto",
                          "-o", str(tmp_path), "-t", "2", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made[0]["level"] == "IQ2_XS" and made[0]["imatrix"] == f"{MODEL}-imatrix.gguf"
    assert read_imatrix(tmp_path / f"{MODEL}-imatrix.gguf").chunk_count > 0


# ------------------------------------------------------------------ refusals


def test_level_needing_an_imatrix_is_refused_without_one(f16, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "q8_0,iq3_xxs,iq2_xs", "-o", str(out))
    _assert_one_line_error(code, err, "IQ3_XXS, IQ2_XS", "importance matrix", "--imatrix")
    assert _leftovers(out) == []  # refused before Q8_0 was made


def test_not_a_gguf(tmp_path, capsys):
    bad = tmp_path / "model.gguf"
    bad.write_text("this is not a model\n")
    code, _, err = _run(capsys, "quantize", str(bad), "--levels", "q8_0", "-o", str(tmp_path / "out"))
    _assert_one_line_error(code, err, str(bad), "not a GGUF")
    assert _leftovers(tmp_path / "out") == []


def test_truncated_gguf(f16, tmp_path, capsys):
    cut = tmp_path / "cut-F16.gguf"
    cut.write_bytes(f16.read_bytes()[:-4096])
    code, _, err = _run(capsys, "quantize", str(cut), "--levels", "q4_k_m", "-o", str(tmp_path / "out"))
    _assert_one_line_error(code, err, str(cut), "truncated")
    assert _leftovers(tmp_path / "out") == []


def test_already_quantized_input(ladder, tmp_path, capsys):
    code, _, err = _run(capsys, "quantize", str(ladder["Q4_K_M"].path), "--levels", "q8_0", "-o", str(tmp_path))
    _assert_one_line_error(code, err, "already quantized (Q4_K_M)", "F16")
    code, _, err = _run(capsys, "quantize", str(ladder["Q8_0"].path), "--levels", "q2_k", "-o", str(tmp_path))
    _assert_one_line_error(code, err, "already quantized (Q8_0)")
    assert _leftovers(tmp_path) == []


def test_unknown_level(f16, tmp_path, capsys):
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "q8_0,q4_k_x", "-o", str(tmp_path / "out"))
    _assert_one_line_error(code, err, "q4_k_x", "q4_k_m")
    assert _leftovers(tmp_path / "out") == []


def test_imatrix_of_another_model_sizes(f16, tiny_gguf, tmp_path, capsys):
    # tiny-qwen2's attention output takes 4 x 64 columns, tiny-qwen3's 8 x 64
    other = tmp_path / "qwen2-imatrix.gguf"
    make_imatrix(tiny_gguf("tiny-qwen2", "f16"), other, chunk_size=64, max_chunks=2, n_threads=2)
    out = tmp_path / "out"
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "q2_k", "--imatrix", str(other), "-o", str(out))
    _assert_one_line_error(code, err, str(other), "another model", "attn_output.weight", "256", "512")
    assert _leftovers(out) == []


def test_imatrix_of_another_model_names(f16, imatrix_file, tmp_path, capsys):
    data = read_imatrix(imatrix_file)
    renamed = ImatrixData({k.replace("blk.1.", "blk.7."): v for k, v in data.sums.items()},
                          {k.replace("blk.1.", "blk.7."): v for k, v in data.counts.items()},
                          data.chunk_size, data.chunk_count, data.datasets)
    other = tmp_path / "deeper-imatrix.gguf"
    write_imatrix(renamed, other, arch="qwen3")
    out = tmp_path / "out"
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "iq2_xs", "--imatrix", str(other), "-o", str(out))
    _assert_one_line_error(code, err, "another model", "blk.7.")
    assert _leftovers(out) == []
    # and a matrix that covers only part of the model
    partial = ImatrixData({k: v for k, v in data.sums.items() if k.startswith("blk.0.")},
                          data.counts, data.chunk_size, data.chunk_count, data.datasets)
    write_imatrix(partial, other, arch="qwen3")
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "q2_k", "--imatrix", str(other), "-o", str(out))
    _assert_one_line_error(code, err, "another model", "no entry for blk.1.")
    assert _leftovers(out) == []


def test_a_model_given_as_imatrix(f16, tmp_path, capsys):
    code, _, err = _run(capsys, "quantize", str(f16), "--levels", "q2_k", "--imatrix", str(f16), "-o", str(tmp_path / "o"))
    _assert_one_line_error(code, err, "not an importance matrix")


def test_quantizer_failure_leaves_nothing(tmp_path, capsys):
    """A GGUF our checks accept but llama.cpp cannot load: the temporary output is removed."""
    src = tmp_path / "odd-F16.gguf"
    w = gguf.GGUFWriter(src, arch="no-such-arch")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((32, 256), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    out = tmp_path / "out"
    code, _, err = _run(capsys, "quantize", str(src), "--levels", "q8_0", "-o", str(out))
    _assert_one_line_error(code, err, str(src), "llama.cpp could not quantize it to Q8_0")
    assert _leftovers(out) == []


def test_output_would_overwrite_the_input(f16, tmp_path, capsys):
    src = tmp_path / "model-F16.gguf"
    src.write_bytes(f16.read_bytes())
    code, _, err = _run(capsys, "quantize", str(src), "--levels", "f16", "-o", str(tmp_path))
    _assert_one_line_error(code, err, "overwrite the input")
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


# ------------------------------------------ the two paths to the legacy levels


LEGACY = [lv.name for lv in LEVELS if lv.maker == "gguf" and lv.tensor_type not in FLOAT_TYPES]


def _tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


@pytest.mark.parametrize("source", ["f32", "f16"])
@pytest.mark.parametrize("level", LEGACY)
def test_legacy_levels_agree_with_convert(level, source, tiny_gguf, tmp_path):
    """The gguf library (convert) and llama.cpp's quantizer write the same bytes for a legacy type.

    llama.cpp deliberately gives ``output.weight`` Q6_K for every legacy level but Q8_0
    (llama_tensor_get_type: "new_type != Q8_0 -> Q6_K"); convert gives it the level's
    type as llama.cpp's converter does. Every other tensor must be byte-identical, from
    an F32 source (the same float32 values) and from the F16 source (bf16 weights are
    exact in F16 except far below a block's quantization step).
    """
    converted = tiny_gguf(MODEL, level.lower())
    made = quantize_ladder(tiny_gguf(MODEL, source), [level], tmp_path, n_threads=2)[0].path
    a, b = _tensors(converted), _tensors(made)
    assert a.keys() == b.keys()
    differing_types = sorted(n for n in a if a[n].tensor_type != b[n].tensor_type)
    assert differing_types == ([] if level == "Q8_0" else ["output.weight"])
    if differing_types:
        assert b["output.weight"].tensor_type == QT.Q6_K
    same = [n for n in a if n not in differing_types]
    assert len(same) >= len(a) - 1
    for name in same:
        assert np.array_equal(np.asarray(a[name].data), np.asarray(b[name].data)), name

    # both load in llama.cpp; where every tensor is the same, so are the logits
    tokens = None
    logits = []
    for path in (converted, made):
        llm = load(path, n_ctx=64, n_threads=2)
        try:
            tokens = tokens or llm.tokenize(b"Findings: 8 mm solid nodule, right upper lobe.", add_bos=False)
            llm.eval(tokens)
            logits.append(last_logits(llm))
        finally:
            llm.close()
    assert np.isfinite(logits[0]).all() and np.isfinite(logits[1]).all()
    if not differing_types:
        assert np.array_equal(logits[0], logits[1])


@pytest.mark.skipif(os.cpu_count() == 1, reason="thread count has no effect on one CPU")
def test_thread_count_does_not_change_the_bytes(f16, tmp_path):
    one = quantize_ladder(f16, "q4_k_m", tmp_path / "t1", n_threads=1)[0].path
    two = quantize_ladder(f16, "q4_k_m", tmp_path / "t2", n_threads=2)[0].path
    assert one.read_bytes() == two.read_bytes()


# ------------------------------------------- llama.cpp's own llama-quantize

LLAMA_QUANTIZE = find_tool("llama-quantize")


@pytest.mark.skipif(LLAMA_QUANTIZE is None, reason="llama.cpp's llama-quantize is not built (make llama-quantize)")
@pytest.mark.parametrize("level,with_imatrix", [("Q8_0", False), ("Q4_K_M", False), ("Q2_K", True),
                                                ("IQ2_XS", True), ("IQ4_XS", True)])
def test_same_file_as_llama_quantize(level, with_imatrix, f16, imatrix_file, tmp_path):
    """Byte for byte what llama-quantize writes, reading our imatrix file itself where one is used."""
    ours = quantize_ladder(f16, [level], tmp_path / "ours", imatrix=imatrix_file if with_imatrix else None,
                           n_threads=2)[0].path
    theirs = tmp_path / "theirs.gguf"
    imatrix_args = ["--imatrix", str(imatrix_file)] if with_imatrix else []
    proc = subprocess.run([str(LLAMA_QUANTIZE), *imatrix_args, str(f16), str(theirs), level, "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if with_imatrix:
        assert "loaded 14 importance matrix entries" in proc.stdout + proc.stderr
    assert theirs.read_bytes() == ours.read_bytes()


def test_q8_1_activations_add_arithmetic_error_the_weights_do_not_show(ladder, f16):
    """benchmarks/fallback_types against ggml itself: Q4_0/Q5_0 pair with Q8_0 activations and
    their dot product is exact to float rounding; Q4_1/Q5_1 pair with Q8_1, whose fp16 block sum
    adds an error of its own (why the sweep's Q5_K_M, 58 % Q5_1, lost more than Q4_K_M)."""
    from benchmarks.fallback_types import measure

    err = {lv: measure(f16, Path(ladder[lv].path), rows=8) for lv in ("Q4_0", "Q4_1", "Q5_0", "Q5_1")}
    for lv in err:
        kind = lv.lower()
        assert 0 < err[lv][kind]["weights"] < 0.2, (lv, err[lv])
    assert max(err["Q4_0"]["q4_0"]["kernel"], err["Q5_0"]["q5_0"]["kernel"]) < 1e-5
    assert min(err["Q4_1"]["q4_1"]["kernel"], err["Q5_1"]["q5_1"]["kernel"]) > 1e-4
