"""An input is never destroyed, a result is never stale, every bad value is one line.

Each defect found by trying bad and hostile inputs as a new user would has its test here: the
command, its exit code (2, or 130 for an interrupt), its one-line message, the inputs byte for
byte unchanged and no debris left behind; and every verb that writes is driven with an output
that is, lies inside or holds one of its inputs.
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
        return hashlib.sha256(b"".join(_digest(p).encode() + os.fsencode(p.name) for p in sorted(path.iterdir()))).hexdigest()
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


# ------------------------------------------------------------ the output policy, verb by verb


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _refused(capsys, root: Path, argv, *needles: str, inputs=(), expect: int = 2) -> str:
    """``argv`` ends in one line on stderr and ``expect``; ``inputs`` byte for byte and ``root``'s
    tree as they were (no partial output, no temporary file, no lock, no empty folder)."""
    tree, before = _tree(root), {p: _digest(p) for p in inputs}
    code, _, err = _run(capsys, *argv)
    line = _one_line(code, err, *needles, expect=expect)
    assert _tree(root) == tree, f"debris after {argv}: {sorted(set(_tree(root)) ^ set(tree))}"
    assert {p: _digest(p) for p in inputs} == before, argv
    return line


TABLE_ROW = {"model": "m", "level": "Q8_0", "imatrix": "none", "key": "m/none/Q8_0", "reference": "m/none/Q8_0",
             "bytes": 1000, "peak_rss_bytes": 10 ** 8, "tg_tok_s": 50.0,
             "tasks": {"m_staging": {"strict": {"value": 0.9, "ci95": [0.8, 1.0], "n": 10, "metric": "acc",
                                                "floor": 0.3}}}}


@pytest.fixture
def ws(tmp_path, tiny_checkpoint, tiny_gguf):
    """A workspace of inputs, each in a folder of its own: a checkpoint, an adapter, an F16 and a Q8_0
    GGUF, task data, a batch of requests with a routes file, a tradeoff run and a results file."""
    from radlite_edge.routes import save_routes, uniform_routes
    from radlite_edge.synth.adapters import write_adapter
    from radlite_edge.synth.models import SPECS, vocab_size_of

    root = tmp_path / "ws"
    shutil.copytree(tiny_checkpoint("tiny-qwen2"), root / "c" / "ckpt")
    spec = SPECS["tiny-qwen2"]
    write_adapter(spec, vocab_size_of(spec), root / "a" / "adapter", rank=4, alpha=8)
    (root / "m").mkdir()
    shutil.copy(tiny_gguf("tiny-qwen2", "f16"), root / "m" / "f16.gguf")
    (root / "q").mkdir()
    shutil.copy(tiny_gguf("tiny-qwen2", "q8_0"), root / "q" / "q8.gguf")
    (root / "d").mkdir()
    shutil.move(_data(root), root / "d" / "data")
    (root / "b").mkdir()
    (root / "b" / "X.jsonl").write_text(json.dumps({"report": "CT: liver lesions.", "task": "m_staging"}) + "\n")
    save_routes(uniform_routes(root / "q" / "q8.gguf"), root / "b" / "routes.json")
    (root / "run" / "ladder").mkdir(parents=True)
    table = {"format": "radlite-tradeoff/1", "spec": {"tasks": ["m_staging"]}, "runtime_rss_bytes": 10 ** 7,
             "rows": [{**TABLE_ROW, "path": str(root / "q" / "q8.gguf")}]}
    (root / "run" / "tradeoff.json").write_text(json.dumps(table))
    (root / "run" / "cells.jsonl").write_text(json.dumps({"cell": "file", "key": "k"}) + "\n")
    (root / "r").mkdir()
    (root / "r" / "results.jsonl").write_text("")
    (root / "t").mkdir()
    (root / "t" / "calib.txt").write_text("Chest CT: no acute findings. " * 200)
    (root / "l").mkdir()
    (root / "l" / "radnli.jsonl").write_text(json.dumps({"pair_id": 1, "sentence1": "a", "sentence2": "b",
                                                         "gold_label": "neutral"}) + "\n")
    return root


# Every verb that writes, with the input that its output is set against: the output is that input,
# lies inside it, or holds it (the input's own folder).
WRITERS = {
    "import": (("import", "{m}/f16.gguf", "-o", "{out}"), "{m}/f16.gguf"),
    "merge": (("merge", "--base", "{c}/ckpt", "--adapter", "{a}/adapter", "-o", "{out}"), "{c}/ckpt"),
    "convert": (("convert", "{c}/ckpt", "-o", "{out}"), "{c}/ckpt"),
    "convert --adapter": (("convert", "{c}/ckpt", "--adapter", "{a}/adapter", "-o", "{out}"), "{a}/adapter"),
    "export-lora": (("export-lora", "{a}/adapter", "--base", "{c}/ckpt", "-o", "{out}"), "{a}/adapter"),
    "quantize": (("quantize", "{m}/f16.gguf", "--levels", "q8_0", "-o", "{out}"), "{m}/f16.gguf"),
    "imatrix": (("imatrix", "{m}/f16.gguf", "-o", "{out}"), "{m}/f16.gguf"),
    "imatrix --calib": (("imatrix", "{m}/f16.gguf", "--calib", "{t}/calib.txt", "-o", "{out}"), "{t}/calib.txt"),
    "data load": (("data", "load", "radnli", "{l}/radnli.jsonl", "-o", "{out}"), "{l}/radnli.jsonl"),
    "eval": (("eval", "{q}/q8.gguf", "--data", "{d}/data", "-o", "{out}"), "{d}/data"),
    "eval (model)": (("eval", "{q}/q8.gguf", "--data", "{d}/data", "-o", "{out}"), "{q}/q8.gguf"),
    "tradeoff": (("tradeoff", "{m}/f16.gguf", "--data", "{d}/data", "-o", "{out}"), "{d}/data"),
    "tradeoff (model)": (("tradeoff", "{m}/f16.gguf", "--data", "{d}/data", "-o", "{out}"), "{m}/f16.gguf"),
    "recommend": (("recommend", "{run}", "--ram", "4G", "--routes-out", "{out}"), "{run}/tradeoff.json"),
    "recommend (ladder)": (("recommend", "{run}", "--ram", "4G", "--routes-out", "{out}"), "{run}/ladder"),
    "recommend (model)": (("recommend", "{run}", "--ram", "4G", "--routes-out", "{out}"), "{q}/q8.gguf"),
    "run --batch": (("run", "--routes", "{b}/routes.json", "--batch", "{b}/X.jsonl", "-o", "{out}"), "{b}/X.jsonl"),
    "run --batch (model)": (("run", "--routes", "{b}/routes.json", "--batch", "{b}/X.jsonl", "-o", "{out}"),
                            "{q}/q8.gguf"),
    "bench --file": (("bench", "{q}/q8.gguf", "--tasks", "none", "--results", "", "--file", "{out}"), "{q}/q8.gguf"),
    "bench --results": (("bench", "{q}/q8.gguf", "--tasks", "none", "--results", "{out}"), "{q}/q8.gguf"),
    "fidelity": (("fidelity", "{m}/f16.gguf", "{q}/q8.gguf", "--results", "{out}"), "{q}/q8.gguf"),
    "report": (("report", "{r}/results.jsonl", "-o", "{out}"), "{r}/results.jsonl"),
}


def _places(ws: Path) -> dict[str, str]:
    return {k: str(ws / k) for k in ("m", "c", "a", "q", "d", "b", "r", "t", "l")} | {"run": str(ws / "run")}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_refuses_an_output_that_is_in_or_holds_an_input(capsys, ws, writer):
    argv, source = WRITERS[writer]
    places = _places(ws)
    source = Path(source.format(**places))
    cases = {"is": source, "inside": source / "out", "holds": source.parent}
    for case, out in cases.items():
        line = _refused(capsys, ws, [a.format(out=out, **places) for a in argv], inputs=[ws])
        assert str(out) in line and ("input" in line or "is a folder" in line), (writer, case, line)


def test_import_and_merge_keep_a_folder_they_did_not_make(capsys, ws):
    """Data loss: an existing folder of other files was deleted by the rename into place."""
    mine = ws / "v"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    _refused(capsys, ws, ["import", ws / "m" / "f16.gguf", "-o", mine], "v", "not made by radlite import",
             inputs=[ws])
    _refused(capsys, ws, ["merge", "--base", ws / "c" / "ckpt", "--adapter", ws / "a" / "adapter", "-o", mine],
             "not made by radlite merge", inputs=[ws])
    # its own earlier output is replaced, and nothing of the swap is left beside it
    out = ws / "imported"
    for force in ([], ["--force"]):
        assert _run(capsys, "import", ws / "m" / "f16.gguf", "-o", out, *force)[0] == 0
    assert sorted(p.name for p in ws.iterdir() if p.name.startswith((".imported", "imported"))) == \
        ["imported", "imported.manifest.json"]
    # a folder of someone else's is kept even by the library call that checks nothing first
    from radlite_edge.fileio import atomic_dir

    with pytest.raises(Exception, match="not made by radlite import"):
        with atomic_dir(mine, step="import") as tmp:
            (tmp / "model.safetensors").write_text("new")
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_recommend_never_writes_over_what_it_reads(capsys, ws):
    run, model = ws / "run", ws / "q" / "q8.gguf"
    for out in (run / "tradeoff.json", run / "cells.jsonl", model, run / "ladder" / "routes.json"):
        _refused(capsys, ws, ["recommend", run, "--ram", "4G", "--routes-out", out], str(out), "the input",
                 inputs=[ws])
    _refused(capsys, ws, ["recommend", run, "--ram", "4G", "--routes-out", ws / "b" / "X.jsonl"],
             "not an earlier output of radlite recommend", inputs=[ws])
    # beside the table is fine, and so is a second run over its own routes file
    for _ in range(2):
        assert _run(capsys, "recommend", run, "--ram", "4G", "--routes-out", run / "routes.json")[0] == 0
    assert json.loads((run / "routes.json").read_text())["format"] == "radlite-routes/1"


def test_run_batch_never_writes_over_its_requests_or_the_models(capsys, ws):
    batch, routes = ws / "b" / "X.jsonl", ws / "b" / "routes.json"
    for out in (batch, routes, ws / "q" / "q8.gguf"):
        _refused(capsys, ws, ["run", "--routes", routes, "--batch", batch, "-o", out], "would overwrite the input",
                 inputs=[ws])
    other = ws / "b" / "notes.jsonl"
    other.write_text('{"mine": 1}\n')
    _refused(capsys, ws, ["run", "--routes", routes, "--batch", batch, "-o", other], "not an earlier output",
             inputs=[ws])
    _refused(capsys, ws, ["run", "--routes", routes, "--batch", batch, "-o", "/dev/null"], "not a regular file",
             inputs=[ws])


def test_outputs_inside_input_folders_are_refused(capsys, ws):
    """eval or tradeoff into the data folder made it unreadable ("not a sample record") for every run after."""
    data, model, f16 = ws / "d" / "data", ws / "q" / "q8.gguf", ws / "m" / "f16.gguf"
    for argv in (["eval", model, "--data", data, "-o", data],
                 ["eval", model, "--data", data, "-o", data / "results"],
                 ["tradeoff", f16, "--data", data, "-o", data],
                 ["tradeoff", ws / "m", "-o", ws / "m"],
                 ["tradeoff", ws / "m", "-o", ws / "m" / "run"]):
        _refused(capsys, ws, argv, "the input", inputs=[ws])


def test_adapter_alpha_is_bounded_and_non_finite_adapters_are_refused(capsys, ws):
    from safetensors.numpy import load_file, save_file

    for alpha in ("inf", "nan", "-5", "0"):
        _refused(capsys, ws, ["synth", "tiny-qwen2", "--adapter", "--rank", "4", "--alpha", alpha, "-o", ws / "x"],
                 "--alpha", inputs=[ws])
    inf_alpha = ws / "inf-alpha"
    shutil.copytree(ws / "a" / "adapter", inf_alpha)
    config = json.loads((inf_alpha / "adapter_config.json").read_text())
    (inf_alpha / "adapter_config.json").write_text(json.dumps({**config, "lora_alpha": float("inf")}))
    nan_weight = ws / "nan-weight"
    shutil.copytree(ws / "a" / "adapter", nan_weight)
    tensors = load_file(nan_weight / "adapter_model.safetensors")
    first = sorted(tensors)[0]
    tensors[first][0, 0] = np.nan
    save_file(tensors, nan_weight / "adapter_model.safetensors", metadata={"format": "pt"})
    ckpt = ws / "c" / "ckpt"
    for adapter, needle in ((inf_alpha, "lora_alpha inf"), (nan_weight, "non-finite")):
        for argv in (["merge", "--base", ckpt, "--adapter", adapter, "-o", ws / "merged"],
                     ["convert", ckpt, "--adapter", adapter, "-o", ws / "x.gguf"],
                     ["export-lora", adapter, "--base", ckpt, "-o", ws / "x.gguf"]):
            _refused(capsys, ws, argv, needle, inputs=[ws])


def test_tradeoff_without_a_reference_or_a_model_is_refused_before_any_work(capsys, ws):
    """It did all the work, then crashed in matplotlib; an empty ladder folder left an empty run folder."""
    ladder = ws / "ladder"
    ladder.mkdir()
    shutil.copy(ws / "q" / "q8.gguf", ladder / "m-Q8_0.gguf")
    _refused(capsys, ws, ["tradeoff", ladder, "-o", ws / "out"], "no F16", inputs=[ws])
    _refused(capsys, ws, ["tradeoff", ws / "q" / "q8.gguf", "-o", ws / "out"], "no F16", inputs=[ws])
    (ladder / "m-Q8_0.gguf").unlink()
    _refused(capsys, ws, ["tradeoff", ladder, "-o", ws / "out"], "no model GGUF", inputs=[ws])


def test_eval_on_data_without_a_test_split_is_one_line(capsys, ws):
    only_train = ws / "train-only"
    only_train.mkdir()
    shutil.copy(ws / "d" / "data" / "s.train.jsonl", only_train)
    model = ws / "q" / "q8.gguf"
    _refused(capsys, ws, ["eval", model, "--data", only_train, "-o", ws / "out"], "no test", "--splits train",
             inputs=[ws])
    _refused(capsys, ws, ["eval", model, "--data", only_train, "-o", ws / "out", "--splits", "val"], "no val",
             inputs=[ws])


def test_import_into_a_file_or_the_current_folder_is_refused_before_the_work(capsys, ws, monkeypatch):
    afile = ws / "afile"
    afile.write_text("mine")
    _refused(capsys, ws, ["import", ws / "m" / "f16.gguf", "-o", afile], "is a file", inputs=[ws])
    monkeypatch.chdir(ws / "b")
    for here in (".", "..", "./"):
        _refused(capsys, ws, ["import", ws / "m" / "f16.gguf", "-o", here], "give a folder name", inputs=[ws])


def test_recommend_bench_that_cannot_be_read_is_one_line(capsys, ws):
    binary = ws / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    bad = ws / "bad.jsonl"
    bad.write_text("{not json\n")
    for bench, needle in ((ws / "missing.jsonl", "no such file"), (binary, "not UTF-8"), (ws / "b", "folder"),
                          (bad, "line 1")):
        _refused(capsys, ws, ["recommend", ws / "run", "--ram", "4G", "--bench", bench], "--bench", needle,
                 inputs=[ws])


def test_symlink_loops_are_one_line(capsys, ws):
    loop = ws.parent / "loop"  # beside the workspace, whose every file the check reads
    loop.symlink_to(loop.name)
    for argv in (["convert", loop, "-o", ws / "x.gguf"],
                 ["quantize", ws / "m" / "f16.gguf", "--levels", "q8_0", "-o", loop],
                 ["import", loop, "-o", ws / "x"],
                 ["eval", loop, "--data", ws / "d" / "data", "-o", ws / "x"]):
        _refused(capsys, ws, argv, "loop", inputs=[ws])
    from radlite_edge.errors import UserError
    from radlite_edge.fileio import claim_output

    with pytest.raises(UserError, match="loops back"):  # the library's callers are covered as well
        claim_output(loop / "x.gguf", step="convert")


def test_file_names_that_are_not_utf8_are_one_line(capsys, ws):
    odd = os.fsdecode(b"m\xff.gguf")
    shutil.copy(ws / "m" / "f16.gguf", ws / odd)
    out = os.fsdecode(b"out\xff")
    for argv in (["quantize", ws / odd, "--levels", "q8_0", "-o", ws / "l"],
                 ["quantize", ws / "m" / "f16.gguf", "--levels", "q8_0", "-o", ws / out],
                 ["convert", ws / "c" / "ckpt", "-o", ws / (out + ".gguf")],
                 ["import", ws / odd, "-o", ws / "x"],
                 ["tradeoff", ws / odd, "-o", ws / "run2"],
                 ["tradeoff", ws / "m" / "f16.gguf", "-o", ws / out]):
        line = _refused(capsys, ws, argv, "not UTF-8", inputs=[ws])
        assert "\\xff" in line
    ladder = ws / "ladder"  # a name found in a folder, not given
    ladder.mkdir()
    shutil.copy(ws / "m" / "f16.gguf", ladder / "m-F16.gguf")
    shutil.copy(ws / "q" / "q8.gguf", ladder / os.fsdecode(b"m\xff-Q8_0.gguf"))
    _refused(capsys, ws, ["tradeoff", ladder, "-o", ws / "run2"], "not UTF-8", inputs=[ws])


def test_run_and_recommend_numbers_are_bounded(capsys, ws):
    run = ["run", "--routes", ws / "b" / "routes.json", "--batch", ws / "b" / "X.jsonl", "-o", ws / "a.jsonl"]
    _refused(capsys, ws, [*run, "-c", "200000"], "-c 200000", "trained on a context of 2048", inputs=[ws])
    for t in ("-1", "0", "nan", "inf"):
        _refused(capsys, ws, [*run, "--timeout", t], "--timeout", inputs=[ws])
    for v in ("-5", "nan", "0"):
        _refused(capsys, ws, ["recommend", ws / "run", "--ram", "4G", "--min-tok-s", v], "--min-tok-s", inputs=[ws])
    _refused(capsys, ws, ["recommend", ws / "run", "--ram", "4G", "--max-latency", "nan"], "--max-latency",
             inputs=[ws])


def test_run_checks_its_report_before_the_routes(capsys, ws):
    """An empty report printed the routes line first: two lines on stderr."""
    for report in ("", "   "):
        _refused(capsys, ws, ["run", report], "an empty report", inputs=[ws])
        _refused(capsys, ws, ["run", "--routes", ws / "missing.json", report], "an empty report", inputs=[ws])


def test_a_read_only_base_folder_keeps_the_default_lora_in_the_cache(tmp_path, monkeypatch):
    """A kiosk's base lies in a read-only image: the adapter's GGUF LoRA goes to the user's cache,
    never to a message about an output nobody gave."""
    from radlite_edge.cli import assistant as cli_assistant
    from radlite_edge.errors import UserError

    base = tmp_path / "image" / "base.gguf"
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    read_only = {base.parent}
    monkeypatch.setattr(cli_assistant, "_writable", lambda folder: folder not in read_only)
    assert cli_assistant._lora_home(base) == cache / "radlite-edge" / cli_assistant.LORA_FILE
    read_only.add(cache / "radlite-edge")
    with pytest.raises(UserError, match="read-only: set XDG_CACHE_HOME to a writable folder, or give --routes"):
        cli_assistant._lora_home(base)
    read_only.clear()
    assert cli_assistant._lora_home(base) == base.parent / cli_assistant.LORA_FILE


def test_a_killed_runs_leftovers_go_with_the_next_run(capsys, ws, tmp_path):
    """A SIGKILLed import left a .part folder as large as the model that no run removed; a second
    eval appended a second copy of every figure to results.jsonl."""
    from radlite_edge.fileio import hold, release

    out = ws / "imported"
    stale = ws / ".imported.abcdefgh.part"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    aside = ws / ".imported.zyxwvuts.old.part"
    aside.mkdir()
    live = ws / ".imported.livelive.part"
    live.mkdir()
    other = ws / ".imported2.abcdefgh.part"  # another output's: not ours to sweep
    other.write_text("x")
    held = hold(live)  # a run still writing it
    try:
        assert _run(capsys, "import", ws / "m" / "f16.gguf", "-o", out)[0] == 0
    finally:
        release(held)
    assert not stale.exists() and not aside.exists() and live.exists() and other.exists()
    live.rmdir()
    other.unlink()
    # the rerun of an up-to-date output sweeps too
    stale.mkdir()
    assert _run(capsys, "import", ws / "m" / "f16.gguf", "-o", out)[0] == 0
    assert not stale.exists()
    results = tmp_path / "res"
    argv = ["eval", ws / "q" / "q8.gguf", "--data", ws / "d" / "data", "--tasks", "m_staging", "-o", results, "--json"]
    assert _run(capsys, *argv)[0] == 0
    first = (results / "results.jsonl").read_text().splitlines()
    assert _run(capsys, *argv)[0] == 0
    again = (results / "results.jsonl").read_text().splitlines()
    assert len(again) == len(first) == 1 and json.loads(again[0])["value"] == json.loads(first[0])["value"]


def test_messages_say_what_is_wrong(capsys, ws):
    adapter = ws / "a" / "adapter"
    _refused(capsys, ws, ["merge", "--base", ws / "c" / "ckpt", "--adapter", adapter / "adapter_config.json", "-o",
                          ws / "x"], "is a file: give the adapter's folder", inputs=[ws])
    _refused(capsys, ws, ["merge", "--base", ws / "c" / "ckpt", "--adapter", ws / "nowhere", "-o", ws / "x"],
             "adapter folder", "does not exist", inputs=[ws])
    _refused(capsys, ws, ["imatrix", ws / "m" / "f16.gguf", "--calib", ws / "t", "-o", ws / "i.gguf"],
             "--calib", "is a folder", inputs=[ws])


@pytest.mark.parametrize("verb", ["import", "merge", "tradeoff", "run"])
def test_one_run_at_a_time_per_output(capsys, ws, verb):
    """Two runs into one output both did all the work and mixed their files."""
    from radlite_edge.locks import output_lock

    out = ws / ("answers.jsonl" if verb == "run" else "out")
    argv = {"import": ["import", ws / "m" / "f16.gguf", "-o", out],
            "merge": ["merge", "--base", ws / "c" / "ckpt", "--adapter", ws / "a" / "adapter", "-o", out],
            "tradeoff": ["tradeoff", ws / "m" / "f16.gguf", "--data", ws / "d" / "data", "-o", out],
            "run": ["run", "--routes", ws / "b" / "routes.json", "--batch", ws / "b" / "X.jsonl", "-o", out]}[verb]
    with output_lock(out, what=f"radlite {verb}"):  # the first run, holding its output
        tree = _tree(ws)
        code, _, err = _run(capsys, *argv)
        _one_line(code, err, "another radlite", "is writing it now")
        assert _tree(ws) == tree
    assert _tree(ws) == [p for p in tree if ".out.lock" not in p and ".answers.jsonl.lock" not in p]
