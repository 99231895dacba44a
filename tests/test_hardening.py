"""Issue 11: an input is never destroyed, a result is never stale, every bad value is one line.

Each defect found by trying ~250 bad inputs has its test here: the command, its exit code
(2, or 130 for an interrupt), its one-line message, the inputs byte for byte unchanged and
no debris left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from radlite_edge.cli import main
from radlite_edge.eval_records import EvalSettings
from radlite_edge.evaluation import evaluate
from radlite_edge.locks import locked_append
from radlite_edge.tasks.samples import read_dir, write_jsonl
from radlite_edge.tasks.synthetic import make_suite

RADLITE = [sys.executable, "-m", "radlite_edge.cli"]


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line(code: int, err: str, *needles: str, expect: int = 2) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == expect, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _digest(path: Path) -> str:
    if path.is_dir():
        return hashlib.sha256(b"".join(_digest(p).encode() + p.name.encode() for p in sorted(path.iterdir()))).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data(root: Path, *, seed: int = 0, n: int = 4) -> Path:
    d = root / f"data-{seed}-{n}"
    d.mkdir(parents=True, exist_ok=True)
    suite = make_suite(n, seed=seed, n_train=4)
    write_jsonl(d / "s.test.jsonl", [s for s in suite if s.split == "test"])
    write_jsonl(d / "s.train.jsonl", [s for s in suite if s.split == "train"])
    return d


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def q8(tiny_gguf):
    return tiny_gguf("tiny-qwen2", "q8_0")


# ----------------------------------------------------------- silent wrong results


def test_eval_keys_records_on_the_model_not_its_file_name(tmp_path, tiny_gguf):
    data = _data(tmp_path)
    samples = read_dir(data)
    a, b = tmp_path / "a" / "model.gguf", tmp_path / "b" / "model.gguf"
    a.parent.mkdir()
    b.parent.mkdir()
    shutil.copy(tiny_gguf("tiny-qwen2", "q8_0"), a)
    shutil.copy(tiny_gguf("tiny-qwen3", "q8_0"), b)
    out = tmp_path / "out"
    first = evaluate(a, samples, out, tasks="n_staging", settings=EvalSettings(n=3), n_parallel=3)
    second = evaluate(b, samples, out, tasks="n_staging", settings=EvalSettings(n=3), n_parallel=3)
    assert first.model_id.digest != second.model_id.digest
    recs = _records(out / "model.samples.jsonl")
    assert len(recs) == 6  # the second model ran its own samples, none reused
    assert {r["model_id"]["digest"] for r in recs} == {first.model_id.digest, second.model_id.digest}


def test_eval_reuses_a_record_only_for_the_same_sample_content(tmp_path, q8):
    out = tmp_path / "out"
    base = ["eval", q8, "--tasks", "m_staging", "-o", out, "--parallel", "4"]
    assert main([str(a) for a in base + ["--data", _data(tmp_path, seed=0), "--n", "2"]]) == 0
    assert main([str(a) for a in base + ["--data", _data(tmp_path, seed=2), "--n", "2"]]) == 0
    recs = _records(out / f"{q8.stem}.samples.jsonl")
    assert len(recs) == 4  # new seed, new samples under the same ids: run again, not reused
    assert main([str(a) for a in base + ["--data", _data(tmp_path, seed=2), "--n", "4"]]) == 0
    assert len(_records(out / f"{q8.stem}.samples.jsonl")) == 6  # raising --n ran only the two new samples


def test_a_cut_off_last_record_is_dropped_and_run_again(capsys, tmp_path, q8):
    data, out = _data(tmp_path), tmp_path / "out"
    argv = ["eval", q8, "--data", data, "--tasks", "n_staging", "-o", out, "--json"]
    assert _run(capsys, *argv)[0] == 0
    records = out / f"{q8.stem}.samples.jsonl"
    lines = records.read_text().splitlines(keepends=True)
    records.write_text("".join(lines[:-1]) + lines[-1][:25])  # killed mid-write
    code, stdout, err = _run(capsys, *argv)
    assert code == 0 and "cut short" in err
    recs = _records(records)
    assert len(recs) == 4 and len({r["id"] for r in recs}) == 4
    assert json.loads(stdout)[0]["tasks"]["n_staging"]["n"] == 4


def test_two_evals_into_one_output_refuse_the_second(capsys, tmp_path, q8):
    out = tmp_path / "out"
    out.mkdir()
    records = out / f"{q8.stem}.samples.jsonl"
    with locked_append(records, what="radlite eval"):  # the first run, holding its output
        code, _, err = _run(capsys, "eval", q8, "--data", _data(tmp_path), "--tasks", "n_staging", "-o", out)
        assert records.read_text() == ""  # the second wrote nothing
    _one_line(code, err, "another radlite eval")


def test_interrupted_imatrix_exits_130_and_writes_nothing(tmp_path, tiny_gguf):
    model = tiny_gguf("tiny-qwen2", "f16")
    out = tmp_path / "ladder" / "imatrix.gguf"
    before = _digest(model)
    proc = subprocess.Popen(RADLITE + ["imatrix", str(model), "-o", str(out), "--chunks", "100000", "--chunk", "64",
                                       "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # well into the chunks (a pipe gets a progress line per 10 s)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Exception ignored" not in err and "Traceback" not in err
    assert not (tmp_path / "ladder").exists()  # no file, no manifest, no temporary folder
    assert _digest(model) == before


# ---------------------------------------------------------------- inputs destroyed


def test_outputs_that_are_inputs_are_refused(capsys, tmp_path, tiny_checkpoint, tiny_gguf):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("tiny-qwen2"), ckpt)
    adapter = tmp_path / "adapter"
    assert main(["synth", "tiny-qwen2", "--adapter", "--rank", "4", "-o", str(tmp_path / "ad")]) == 0
    shutil.copytree(tmp_path / "ad" / "tiny-qwen2-lora-r4", adapter)
    model = tmp_path / "m.gguf"
    shutil.copy(tiny_gguf("tiny-qwen2", "f16"), model)
    capsys.readouterr()
    cases = [
        ("convert", ckpt, "-o", ckpt / "model.safetensors"),
        ("export-lora", adapter, "--base", ckpt, "-o", adapter / "adapter_model.safetensors"),
        ("merge", "--base", ckpt, "--adapter", adapter, "-o", ckpt / "merged"),
        ("imatrix", model, "-o", model),
        ("bench", model, "--file", model, "--tasks", "none"),
        ("bench", model, "--results", model, "--tasks", "none"),
        ("fidelity", model, model, "--results", model),
    ]
    before = {p: _digest(p) for p in (ckpt, adapter, model)}
    for argv in cases:
        code, _, err = _run(capsys, *argv)
        _one_line(code, err, "the input")
        assert {p: _digest(p) for p in before} == before, argv
    assert not (ckpt / "merged").exists()


# --------------------------------------------------------- crashes and late failures


def test_export_lora_q8_0_and_bf16_load_in_llama_cpp(tmp_path, tiny_checkpoint, tiny_gguf):
    from radlite_edge.llm import load, logits_for

    for rank in (8, 64):
        assert main(["synth", "tiny-qwen2", "--adapter", "--rank", str(rank), "-o", str(tmp_path)]) == 0
        adapter = tmp_path / f"tiny-qwen2-lora-r{rank}"
        base = tiny_gguf("tiny-qwen2", "f16")
        ids = [5, 17, 200, 33, 412, 7]
        logits = {}
        for outtype in ("f32", "q8_0", "bf16"):
            out = tmp_path / f"r{rank}-{outtype}.gguf"
            assert main(["export-lora", str(adapter), "--base", str(tiny_checkpoint("tiny-qwen2")), "-o", str(out),
                         "--outtype", outtype]) == 0
            logits[outtype] = logits_for(load(base, lora_path=str(out)), ids)
        scale = np.abs(logits["f32"]).max()
        for outtype in ("q8_0", "bf16"):  # the adapter's own rounding, nothing more
            assert np.abs(logits[outtype] - logits["f32"]).max() < 0.02 * scale, (rank, outtype)


@pytest.mark.parametrize("argv, needle", [
    (("eval", "{q8}", "--data", "{data}", "-c", "0"), "-c"),
    (("eval", "{q8}", "--data", "{data}", "-c", "16", "--tasks", "n_staging"), "context"),
    (("eval", "{q8}", "--data", "{data}", "-c", "100000"), "trained on a context of 2048"),
    (("eval", "{q8}", "--data", "{data}", "--n", "-1"), "--n"),
    (("eval", "{q8}", "--data", "{data}", "--n", "0"), "--n"),
    (("eval", "{q8}", "--data", "{data}", "--tasks", ""), "empty task list"),
    (("eval", "{q8}", "--data", "{data}", "--few-shot", "-1"), "--few-shot"),
    (("eval", "{q8}", "--data", "{data}", "-t", "0"), "threads"),
    (("eval", "{q8}", "--data", "{data}/s.test.jsonl"), "a file, not a data folder"),
    (("eval", "{q8}", "--data", "{tmp}/missing"), "no such data folder"),
    (("eval", "{tmp}", "--data", "{data}"), "a folder, not a model file"),
    (("eval", "{q8}", "--data", "{binary_dir}"), "not UTF-8"),
    (("synth", "--seed", "-1", "-o", "{tmp}/m"), "--seed"),
    (("synth", "tiny-qwen2", "--adapter", "--rank", "0", "-o", "{tmp}/m"), "--rank"),
    (("synth", "tiny-qwen2", "--adapter", "--rank", "100000", "-o", "{tmp}/m"), "--rank"),
    (("synth", "tiny-qwen2", "--adapter", "--rank", "4000", "-o", "{tmp}/m"), "give 1 to 128"),
    (("bench", "{q8}", "-t", "300"), "-t"),
    (("bench", "{q8}", "-t", "0"), "-t"),
    (("bench", "{q8}", "-ub", "0"), "-ub"),
    (("bench", "{q8}", "-p", "100000", "--tasks", "none"), "trained on a context of 2048"),
    (("convert", "{ckpt}", "-o", "{tmp}/x.gguf", "-t", "0"), "threads"),
    (("convert", "{ckpt}", "-o", "{tmp}/x.gguf", "-t", "100000"), "threads"),
    (("quantize", "{f16}", "--levels", "q8_0", "-o", "{tmp}/l", "-t", "-3"), "threads"),
    (("imatrix", "{f16}", "-o", "{tmp}/i.gguf", "--chunks", "0"), "--chunks"),
    (("imatrix", "{f16}", "-o", "{tmp}/i.gguf", "--chunk", "100000"), "trained on a context of 2048"),
    (("data", "synth", "--n", "0", "-o", "{tmp}/d"), "--n"),
    (("data", "synth", "--n", "-1", "-o", "{tmp}/d"), "--n"),
    (("data", "synth", "-o", "{data}/s.test.jsonl"), "not a directory"),
    (("data", "load", "radnli", "{binary}", "-o", "{tmp}/d"), "not UTF-8"),
    (("data", "load", "radnli", "{data}", "-o", "{tmp}/d"), ""),
    (("fidelity", "{f16}", "{q8}", "--results", "{tmp}"), "is a folder"),
    (("fidelity", "{f16}", "{q8}", "--results", ""), "empty path"),
    (("fidelity", "{f16}", "{q8}", "-c", "100000"), "-c"),
])
def test_bad_values_are_one_line_and_leave_nothing(capsys, tmp_path, tiny_checkpoint, tiny_gguf, q8, argv, needle):
    data = _data(tmp_path)
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00\x01garbage\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "x.jsonl").write_bytes(b"\xff\xfe bad\n")
    names = dict(q8=q8, f16=tiny_gguf("tiny-qwen2", "f16"), ckpt=tiny_checkpoint("tiny-qwen2"), data=data,
                 tmp=tmp_path, binary=tmp_path / "binary", binary_dir=tmp_path / "bin")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    inputs = {p: _digest(p) for p in (q8, names["f16"])}
    code, _, err = _run(capsys, *[a.format(**names) for a in argv], *(["-o", str(tmp_path / "out")]
                                                                     if argv[0] == "eval" else []))
    _one_line(code, err, needle)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no debris
    assert {p: _digest(p) for p in inputs} == inputs


def test_a_model_llama_cpp_cannot_load_leaves_no_empty_records(capsys, tmp_path, alien_gguf):
    bad = alien_gguf
    code, _, err = _run(capsys, "eval", bad, "--data", _data(tmp_path), "--tasks", "n_staging", "-o", tmp_path / "out")
    _one_line(code, err, "alien.gguf")
    assert not (tmp_path / "out").exists()


def test_unwritable_outputs_fail_before_any_work(capsys, tmp_path, q8):
    blocked = tmp_path / "file"
    blocked.write_text("a file where a folder would go")
    for argv in (("data", "synth", "-o", blocked / "d"),
                 ("eval", q8, "--data", _data(tmp_path), "-o", blocked / "out"),
                 ("fidelity", q8, q8, "--results", blocked / "r.jsonl"),
                 ("bench", q8, "--results", blocked / "r.jsonl", "--tasks", "none"),
                 ("demo", "-o", blocked / "demo")):
        code, _, err = _run(capsys, *argv)
        _one_line(code, err, "not a directory")


def test_eval_interrupt_says_what_was_kept(tmp_path, q8):
    # enough samples that the run cannot finish between its first record and the signal (40 once
    # did, on a loaded machine: the whole run takes well under a second)
    data, out = _data(tmp_path, n=200), tmp_path / "out"
    proc = subprocess.Popen(RADLITE + ["eval", str(q8), "--data", str(data), "-o", str(out), "--tasks",
                                       "impression_generation", "--parallel", "1", "--no-grammar"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = out / f"{q8.stem}.samples.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not records.exists() or not records.read_text().strip()):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"rc {proc.returncode}, {len(records.read_text().splitlines())} records; {err[-2000:]}"
    assert "resumes" in err and "no partial output" not in err


# ---------------------------------------------------------------- messages and habits


def test_report_names_the_line_of_a_bad_record(capsys, tmp_path, q8):
    results = tmp_path / "r.jsonl"
    assert main(["bench", str(q8), "-t", "1", "-p", "0", "-n", "4", "-r", "1", "--tasks", "none", "--no-rss",
                 "--no-load", "--results", str(results)]) == 0
    good = results.read_text().splitlines()
    results.write_text("\n".join(good[:2] + ["{not json"] + good[2:]) + "\n")
    capsys.readouterr()
    code, _, err = _run(capsys, "report", results, "-o", tmp_path / "rep")
    _one_line(code, err, "r.jsonl", "line 3")


def test_the_eval_table_of_two_models_fits_80_columns_and_keeps_every_value(tmp_path, tiny_gguf):
    from rich.console import Console

    from radlite_edge.cli.render import eval_table

    data = _data(tmp_path)
    samples = read_dir(data)
    summaries = [evaluate(tiny_gguf(name, "q8_0"), samples, tmp_path / "out", settings=EvalSettings(n=2),
                          n_parallel=2) for name in ("tiny-qwen2", "tiny-qwen3")]
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    console.print(eval_table(summaries, title="t"))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for s in summaries:
        for entry in s.tasks.values():
            assert f"{entry.value:.3f} {entry.ci95[0]:.2f}–{entry.ci95[1]:.2f}" in text
    assert "…" not in "".join(line for line in text.splitlines() if "0." in line)


def test_fidelity_refuses_levels_of_another_model(capsys, tmp_path, tiny_gguf):
    code, _, err = _run(capsys, "fidelity", tiny_gguf("tiny-qwen2", "f16"), tiny_gguf("tiny-qwen3", "q8_0"),
                        "--results", tmp_path / "r.jsonl")
    _one_line(code, err, "tiny-qwen3", "same model")
    assert not (tmp_path / "r.jsonl").exists()


def test_fidelity_over_a_ladder_glob_skips_its_imatrix_with_a_note(capsys, tmp_path, tiny_gguf):
    f16 = tiny_gguf("tiny-qwen2", "f16")
    ladder = tmp_path / "ladder"
    assert main(["quantize", str(f16), "--levels", "q8_0", "--imatrix", "auto", "-o", str(ladder)]) == 0
    files = sorted(ladder.glob("*.gguf"))
    assert any("imatrix" in f.name for f in files)  # what `ladder/*.gguf` gives a shell
    capsys.readouterr()
    results = tmp_path / "r.jsonl"
    code, _, err = _run(capsys, "fidelity", f16, *files, "--chunks", "2", "-c", "128", "--results", results)
    assert code == 0 and "not a model; skipped" in err
    from radlite_edge.results import read_jsonl

    records = read_jsonl(results)
    assert {r.level for r in records} == {"Q8_0"}
    assert all(r.value >= 0 for r in records if r.metric.startswith("kld"))  # rounding never makes a KLD negative
    assert all(r.model_id.digest and r.params.reference_id.digest for r in records)
