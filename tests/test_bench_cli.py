"""``radlite bench`` and ``radlite report`` from the command line: outputs, synthetic models, errors."""

from __future__ import annotations

import numpy as np
import pytest

from radlite_edge.bench import formats
from radlite_edge.cli import main
from radlite_edge.results import read_jsonl

QUICK = ("-t", "1", "-p", "16", "-n", "4", "-r", "2", "--tasks", "none", "--no-rss")


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_jsonl_on_stdout_equals_the_appended_records(capsys, tmp_path, tiny_gguf):
    results = tmp_path / "bench.jsonl"
    code, out, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen2", "q8_0")), *QUICK, "-o", "jsonl",
                          "--results", str(results))
    assert code == 0, err
    printed = formats.from_jsonl(out)
    assert printed == read_jsonl(results)
    assert {r.benchmark for r in printed} == {"bandwidth", "load", "pp16", "tg4"}
    assert err.splitlines()[0].startswith("machine: ")


@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_each_format_on_stdout(capsys, tmp_path, tiny_gguf, fmt):
    code, out, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen3", "q8_0")), *QUICK, "--no-load", "-o", fmt,
                          "--results", "")
    assert code == 0, err
    n = 3  # bandwidth, pp16, tg4
    if fmt == "md":
        assert len(formats.parse_markdown_table(out)) == n
    elif fmt == "csv":
        assert len(formats.from_csv(out)) == n
    else:
        assert len(formats.from_json(out)) == n
    assert not (tmp_path / "results").exists()


def test_tui_and_file_output(capsys, tmp_path, tiny_gguf):
    target = tmp_path / "out.md"
    code, out, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen2", "q8_0")), *QUICK, "--tui", "--file",
                          str(target), "--results", "")
    assert code == 0, err
    assert out == ""
    assert len(formats.parse_markdown_table(target.read_text())) == 5  # bandwidth, 2 loads, pp, tg
    assert "radlite bench" in err and "tg4" in err  # the dashboard's last frame


def test_synthetic_models_are_made_once(capsys, tmp_path):
    models = tmp_path / "models"
    argv = ("bench", "--synthetic", "tiny-qwen2", "--levels", "q8_0,q4_k_m", "--models-dir", str(models), *QUICK,
            "--no-load", "--results", str(tmp_path / "r.jsonl"))
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    made = sorted(p.name for p in models.glob("*.gguf"))
    assert made == ["tiny-qwen2-Q4_K_M.gguf", "tiny-qwen2-Q8_0.gguf"]  # the F16 intermediate is gone
    assert {(r.model, r.level) for r in read_jsonl(tmp_path / "r.jsonl")} == {("tiny-qwen2", "Q8_0"),
                                                                             ("tiny-qwen2", "Q4_K_M")}
    stamps = {p: p.stat().st_mtime_ns for p in models.glob("*.gguf")}
    code, _, err = _run(capsys, *argv)
    assert code == 0, err
    assert {p: p.stat().st_mtime_ns for p in models.glob("*.gguf")} == stamps
    assert "converting" not in err and "quantizing" not in err


def test_report_command(capsys, tmp_path, tiny_gguf):
    results = tmp_path / "r.jsonl"
    code, _, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen2", "q8_0")), *QUICK, "-t", "1,2", "-o", "csv",
                        "--results", str(results))
    assert code == 0, err
    code, out, err = _run(capsys, "report", str(results), "-o", str(tmp_path / "rep"), "--json")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "report.csv", "report.md", "tok_s_vs_size.png", "tok_s_vs_threads.png"]
    code, out, err = _run(capsys, "report", str(results), "-o", str(tmp_path / "rep2"), "--formats", "md")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "rep2").iterdir()] == ["report.md"]


# ------------------------------------------------------------------ errors


def test_missing_model(capsys, tmp_path):
    code, _, err = _run(capsys, "bench", str(tmp_path / "nope.gguf"), "--results", str(tmp_path / "r.jsonl"))
    _one_line_error(code, err, "nope.gguf", "no such file")
    assert not (tmp_path / "r.jsonl").exists()


def test_not_a_gguf(capsys, tmp_path, tiny_gguf):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all" * 100)
    # the good file first: nothing is measured before every file is checked
    code, _, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen2", "q8_0")), str(bad), "--results",
                        str(tmp_path / "r.jsonl"))
    _one_line_error(code, err, "bad.gguf", "not a GGUF")
    assert not (tmp_path / "r.jsonl").exists()


def test_truncated_gguf(capsys, tmp_path, tiny_gguf):
    data = tiny_gguf("tiny-qwen2", "q8_0").read_bytes()
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, "bench", str(bad), "--results", str(tmp_path / "r.jsonl"))
    _one_line_error(code, err, "cut.gguf", "truncated")


def test_gguf_llama_cpp_cannot_load(capsys, tmp_path, alien_gguf):
    bad = alien_gguf
    code, _, err = _run(capsys, "bench", str(bad), "--results", str(tmp_path / "r.jsonl"))
    _one_line_error(code, err, "alien.gguf", "unknown model architecture")
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize("argv, needle", [
    (("--levels", "q4_k_m"), "--synthetic"),
    (("--synthetic", "tiny-qwen2"), "--levels"),
    (("--synthetic", "gpt-5", "--levels", "q8_0"), "gpt-5"),
    (("--synthetic", "tiny-qwen2", "--levels", "q9_9"), "q9_9"),
    (("--synthetic", "tiny-qwen2", "--levels", "iq2_xs"), "importance matrix"),
    (("-t", "one,two"), "-t"),
    (("-r", "0"), "repetition"),
    (("--tasks", "no_such_task"), "no_such_task"),
])
def test_option_mistakes(capsys, tmp_path, tiny_gguf, argv, needle):
    code, _, err = _run(capsys, "bench", str(tiny_gguf("tiny-qwen2", "q8_0")), *argv, "--models-dir",
                        str(tmp_path / "m"), "--results", str(tmp_path / "r.jsonl"))
    _one_line_error(code, err, needle)
    assert not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").glob("*.gguf"))


def test_report_errors(capsys, tmp_path):
    code, _, err = _run(capsys, "report", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "rep"))
    _one_line_error(code, err, "none.jsonl", "no such results file")
    (tmp_path / "junk.jsonl").write_text("{not json\n")
    code, _, err = _run(capsys, "report", str(tmp_path / "junk.jsonl"), "-o", str(tmp_path / "rep"))
    _one_line_error(code, err, "junk.jsonl")
    (tmp_path / "other.jsonl").write_text("")
    code, _, err = _run(capsys, "report", str(tmp_path / "other.jsonl"), "-o", str(tmp_path / "rep"))
    _one_line_error(code, err, "no bench records")
    code, _, err = _run(capsys, "report", str(tmp_path / "other.jsonl"), "--formats", "pdf")
    _one_line_error(code, err, "pdf")


def test_repack_off_is_recorded_and_its_own_series(capsys, tmp_path, tiny_gguf):
    results = tmp_path / "bench.jsonl"
    model = str(tiny_gguf("tiny-qwen2", "q8_0"))
    code, _, err = _run(capsys, "bench", model, *QUICK, "--no-load", "--repack", "1,0", "--results", str(results))
    assert code == 0, err
    records = [r for r in read_jsonl(results) if r.params.test == "tg"]
    assert [r.params.repack for r in records] == [True, False]  # both in one run, side by side
    assert len({r.params.run for r in records}) == 1
    assert [row["level"] for row in formats.rows(records)] == ["Q8_0", "Q8_0 (no repack)"]
    code, _, err = _run(capsys, "bench", model, *QUICK, "--repack", "2", "--results", str(results))
    _one_line_error(code, err, "--repack", "0 or 1")


def test_decode_shape_times_every_shape_and_refuses_too_many_streams(capsys, tiny_gguf):
    from benchmarks import decode_shape

    model = str(tiny_gguf("tiny-qwen2", "q8_0"))
    assert decode_shape.main([model, "-t", "1", "--rows", "1,9", "--streams", "1,3", "-r", "2"]) == 0
    out = capsys.readouterr().out
    shapes = [line.split("│")[1:4] for line in out.splitlines() if line.count("│") == 7]
    assert [[c.strip() for c in s] for s in shapes] == [["1", "1", "1"], ["1", "9", "9"], ["3", "1", "3"],
                                                       ["3", "9", "27"]]
    # an engine whose n_ctx caps llama.cpp's batch below the rows of one call (3 x 64): split, not aborted
    engine = decode_shape.Engine(model, n_ctx=128)
    times = decode_shape.measure(engine, 40, 3, 3, np.random.default_rng(0))
    engine.close()
    assert len(times) == 3 and all(t > 0 for t in times)
    for bad in (["--streams", "8"], ["--rows", "0"], ["--rows", "x"]):
        with pytest.raises(SystemExit) as exc:
            decode_shape.main([model, *bad])
        assert exc.value.code == 2
