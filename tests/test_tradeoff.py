"""radlite tradeoff and recommend: the sweep's records, fronts, report and plots on a tiny model;
the recommender on a hand-made table; resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radlite_edge.bench.tradeoff import CELLS_FILE, SweepSpec, read_cells, run_sweep
from radlite_edge.bench.tradeoff_analysis import (Budget, holds, load_table, pareto_front, recommend, routes_for,
                                                  smallest_holding)
from radlite_edge.bench.tradeoff_report import write_report
from radlite_edge.cli import main
from radlite_edge.routes import load_routes, save_routes
from radlite_edge.tasks.synthetic import make_suite

TASKS = ("rads_assignment", "m_staging", "impression_generation")
LEVELS = ("F16", "Q8_0", "Q4_0", "IQ2_XS")
GiB = 2 ** 30


@pytest.fixture(scope="module")
def samples():
    return [s for s in make_suite(2, seed=0, n_generalization=0, n_val=0, n_train=0)]


@pytest.fixture(scope="module")
def sweep(tiny_gguf, samples, tmp_path_factory):
    run = tmp_path_factory.mktemp("tradeoff") / "run"
    spec = SweepSpec(tasks=TASKS, n=2, levels=LEVELS, imatrix=("radiology", "none"), threads=1,
                     fidelity_windows=1)
    result = run_sweep([tiny_gguf("tiny-qwen2", "f16")], run, spec, samples)
    return run, spec, result


def test_sweep_measures_every_cell_once(sweep):
    run, spec, result = sweep
    levels = {(v.imatrix, v.level) for v in result.variants}
    # F16 and Q8_0 (blind to importance) once; Q4_0 per imatrix source; IQ2_XS only with an importance matrix
    assert levels == {("none", "F16"), ("none", "Q8_0"), ("radiology", "Q4_0"), ("none", "Q4_0"),
                      ("radiology", "IQ2_XS")}
    cells = read_cells(run / CELLS_FILE)
    keys = [(c.cell, c.key) for c in cells]
    assert len(keys) == len(set(keys)), "a cell was recorded twice"
    table = load_table(run)
    for row in table["rows"]:
        for field in ("bytes", "bits_per_weight", "tg_tok_s", "peak_rss_bytes", "kld_mean", "top1"):
            assert row.get(field) is not None, (row["key"], field)
        assert row["peak_rss_bytes"] > row["bytes"]
        for task in TASKS:
            entry = row["tasks"][task]
            assert entry["strict"]["n"] == 2 and len(entry["strict"]["ci95"]) == 2
            assert "grammar" in entry and entry["latency_s"] > 0
            assert entry["strict"]["floor"] is not None
    f16 = next(r for r in table["rows"] if r["level"] == "F16")
    assert f16["kld_mean"] == 0.0 and f16["top1"] == 1.0
    q2 = next(r for r in table["rows"] if r["level"] == "IQ2_XS")
    assert q2["kld_mean"] > 0 and q2["bytes"] < f16["bytes"]
    # a free-text task decodes the same under the label grammar: one eval serves both columns
    assert all(r["tasks"]["impression_generation"]["grammar"] == r["tasks"]["impression_generation"]["strict"]
               for r in table["rows"])
    assert not any(c.cell == "eval:impression_generation:grammar" for c in cells)
    assert result.made == len(cells)  # a fresh run: every recorded cell made once, counted once


def test_fidelity_scored_in_one_pass_equals_each_file_alone(sweep):
    from radlite_edge.bench.fidelity import measure_fidelity
    from radlite_edge.bench.tradeoff import DEFAULT_FIDELITY_CTX

    run, spec, result = sweep
    cells = {c.variant: c for c in read_cells(run / CELLS_FILE) if c.cell == "fidelity"}
    assert len(cells) == len(result.variants) - 1  # every file but the F16 itself
    f16 = next(v for v in result.variants if v.level == "F16")
    for v in result.variants:
        if v.level != "F16" and v.level in ("Q4_0", "IQ2_XS"):
            rows, _ = measure_fidelity(f16.path, [v.path], ctx=DEFAULT_FIDELITY_CTX, max_windows=spec.fidelity_windows,
                                       n_threads=spec.threads)
            assert cells[v.key].values["kld_mean"] == pytest.approx(max(0.0, rows[0].kld_mean), rel=1e-9, abs=1e-12)
            assert cells[v.key].values["top1"] == rows[0].top1


def test_fronts_and_smallest_holding(sweep):
    run, spec, _ = sweep
    rows = load_table(run)["rows"]
    for task in TASKS:
        front = pareto_front(rows, task, x="bytes")
        assert front, task
        sizes = [r["bytes"] for r in front]
        scores = [r["tasks"][task]["strict"]["value"] for r in front]
        assert sizes == sorted(sizes) and scores == sorted(scores) and len(set(scores)) == len(scores)
        for r in rows:  # nothing off the front beats a front point on both axes
            assert not any(r["bytes"] < f["bytes"] and r["tasks"][task]["strict"]["value"] > f["tasks"][task]["strict"]["value"]
                           for f in front)
        hold = smallest_holding(rows, task, tolerance=1.0)  # everything holds at a tolerance of 100 points
        assert all(h is not None for h in hold.values())
        smallest = min(rows, key=lambda r: r["bytes"])
        assert hold[("tiny-qwen2", "radiology")]["bytes"] == smallest["bytes"]


def test_report_has_every_section_and_plot(sweep):
    run, spec, _ = sweep
    written = write_report(load_table(run), run / "report")
    names = {p.name for p in written}
    assert {"tradeoff.md", "tradeoff.csv", "accuracy_size.png", "drop_heatmap.png", "latency_fronts.png"} <= names
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    md = (run / "report" / "tradeoff.md").read_text()
    for task in TASKS:
        assert f"## {task}" in md
    for title in ("## Files", "## Recommendation per device", "Raspberry Pi 5, 4 GB", "Pareto front on size",
                  "Smallest file within"):
        assert title in md
    csv_lines = (run / "report" / "tradeoff.csv").read_text().strip().splitlines()
    assert len(csv_lines) == 1 + 5 * len(TASKS)


def test_cli_tradeoff_reruns_without_measuring(sweep, tiny_gguf, capsys):
    run, spec, result = sweep
    rc = main(["tradeoff", str(tiny_gguf("tiny-qwen2", "f16")), "-o", str(run), "--tasks", ",".join(TASKS), "--n", "2",
               "--levels", ",".join(LEVELS), "--imatrix", "radiology,none", "--fidelity-windows", "1",
               "-t", str(spec.threads), "--data", str(_data_dir(run)), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cells_made"] == 0 and out["cells_reused"] == result.made + result.reused


def test_remeasure_replaces_only_the_machine_bound_cells(sweep, tiny_gguf, capsys):
    run, spec, result = sweep
    before = read_cells(run / CELLS_FILE)
    rc = main(["tradeoff", str(tiny_gguf("tiny-qwen2", "f16")), "-o", str(run), "--tasks", "m_staging", "--n", "2",
               "--levels", ",".join(LEVELS), "--imatrix", "radiology,none", "--fidelity-windows", "1",
               "-t", str(spec.threads), "--data", str(_data_dir(run)), "--remeasure", "speed,latency", "--json"])
    assert rc == 0
    n = len(result.variants)
    assert json.loads(capsys.readouterr().out)["cells_made"] == 2 * n  # a speed and an m_staging latency per file
    after = read_cells(run / CELLS_FILE)
    new = after[len(before):]
    assert sorted({c.cell for c in new}) == ["latency:m_staging", "speed"] and len(new) == 2 * n
    table = load_table(run)  # the newest record of a cell is the one the table shows
    for row in table["rows"]:
        speed = [c for c in new if c.cell == "speed" and c.variant == row["key"]]
        assert len(speed) == 1 and row["tg_tok_s"] == speed[0].values["tg_tok_s"]
        assert row["tasks"]["m_staging"]["latency_s"] == next(
            c for c in new if c.cell == "latency:m_staging" and c.variant == row["key"]).values["latency_s"]


def _data_dir(run: Path) -> Path:
    from radlite_edge.tasks.samples import write_jsonl

    folder = run.parent / "data"
    if not folder.is_dir():
        folder.mkdir()
        write_jsonl(folder / "s.test.jsonl", [s for s in make_suite(2, seed=0, n_generalization=0, n_val=0, n_train=0)])
    return folder


# ------------------------------------------------------------------ resume after a kill


@pytest.mark.slow
def test_killed_sweep_resumes_without_duplicates(tiny_gguf, tmp_path):
    run = tmp_path / "run"
    data = _data_dir(run)
    argv = [sys.executable, "-m", "radlite_edge.cli", "tradeoff", str(tiny_gguf("tiny-qwen3", "f16")), "-o", str(run),
            "--tasks", "m_staging,radiology_nli", "--n", "2", "--levels", "F16,Q8_0,Q4_0", "--imatrix", "none",
            "--fidelity-windows", "1", "-t", "1", "--data", str(data), "--no-png", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cells = run / CELLS_FILE
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not cells.is_file() or len(cells.read_text().splitlines()) < 6):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = read_cells(cells)
    assert 6 <= len(before)
    with open(cells, "a") as f:  # a record cut mid-line by the kill
        f.write('{"variant": "tiny')
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    after = read_cells(cells)
    keys = [(c.cell, c.key) for c in after]
    assert len(keys) == len(set(keys))
    assert {(c.cell, c.key) for c in before} <= set(keys)
    assert summary["cells_reused"] >= len(before) and summary["cells_made"] == len(after) - len(before)
    assert "cut short" in done.stderr or all(line.startswith("{") and line.endswith("}")
                                              for line in cells.read_text().splitlines())
    # the summary table lists every file
    assert len(load_table(run)["rows"]) == 3


# ------------------------------------------------------------------ the recommender, on a hand-made table


A, B = "rads_assignment", "m_staging"


def _row(level: str, size_gib: float, rss_gib: float, tok_s: float, scores: dict, latency: float = 1.0, ref="m/none/F16",
         ci=0.02):
    return {"model": "m", "level": level, "imatrix": "none", "path": f"/models/m-{level}.gguf", "key": f"m/none/{level}",
            "reference": ref, "bytes": int(size_gib * GiB), "peak_rss_bytes": int(rss_gib * GiB), "tg_tok_s": tok_s,
            "kld_mean": 0.0, "top1": 1.0, "model_id": {"digest": f"sha256:{level}"},
            "tasks": {t: {"strict": {"value": v, "ci95": [v - ci, v + ci], "n": 200, "floor": 0.1, "metric": "acc"},
                          "latency_s": latency} for t, v in scores.items()}}


@pytest.fixture
def table():
    rows = [
        _row("F16", 6.0, 6.5, 3.0, {A: 0.90, B: 0.80}, latency=4.0),
        _row("Q8_0", 3.2, 3.6, 5.5, {A: 0.90, B: 0.795}, latency=2.5),
        _row("Q4_K_M", 1.9, 2.3, 8.0, {A: 0.89, B: 0.70}, latency=1.5),
        _row("Q2_K", 1.2, 1.6, 11.0, {A: 0.60, B: 0.50}, latency=1.0),
    ]
    return {"format": "radlite-tradeoff/1", "spec": {"tasks": [A, B]}, "rows": rows, "runtime_rss_bytes": GiB // 4}


def test_recommend_picks_the_best_that_fits(table):
    rec = recommend(table, Budget(ram_bytes=4 * GiB, decoding="strict"))
    picks = {p.task: p.row["level"] for p in rec.picks}
    assert picks == {A: "Q8_0", B: "Q8_0"}  # F16 does not fit 4 GiB; Q8_0 is within a point on both
    assert rec.fits_together and rec.together_bytes == int(3.6 * GiB)
    rec = recommend(table, Budget(ram_bytes=3 * GiB, decoding="strict"))
    assert {p.task: (p.row["level"] if p.row else None) for p in rec.picks} == {A: "Q4_K_M", B: None}
    assert "within 1 points of its F16" in rec.picks[1].why
    loose = recommend(table, Budget(ram_bytes=3 * GiB, max_drop=0.2, decoding="strict"))
    assert loose.picks[1].row["level"] == "Q4_K_M"
    assert loose.picks[1].why.endswith("-10.0 pts vs F16")  # a loss reads negative, as the report's column


def test_recommend_signs_a_gain_over_f16_positive(table):
    table["rows"][1]["tasks"][B]["strict"]["value"] = 0.85
    rec = recommend(table, Budget(ram_bytes=4 * GiB, decoding="strict"))
    assert rec.picks[1].row["level"] == "Q8_0" and rec.picks[1].why.endswith("+5.0 pts vs F16")


def test_recommend_says_when_f16_does_not_beat_the_floor(table):
    rec = recommend(table, Budget(ram_bytes=16 * GiB, decoding="strict"))
    assert not any("floor" in p.why for p in rec.picks)  # F16's intervals sit above the floor (0.1)
    table["rows"][0]["tasks"][B]["strict"].update(floor=0.79, floor_name="majority")  # F16 0.80 [0.78, 0.82]
    rec = recommend(table, Budget(ram_bytes=16 * GiB, decoding="strict"))
    assert "floor" not in rec.picks[0].why
    assert rec.picks[1].why.endswith("F16 is not above its floor (majority 79.0): not learned, the pick is noise")


def test_recommend_speed_latency_and_holding(table):
    rec = recommend(table, Budget(ram_bytes=16 * GiB, min_tok_s=6.0, max_drop=0.5, decoding="strict"))
    assert {p.task: p.row["level"] for p in rec.picks} == {A: "Q4_K_M", B: "Q4_K_M"}
    rec = recommend(table, Budget(ram_bytes=16 * GiB, max_latency_s=1.2, max_drop=0.5, decoding="strict"))
    assert {p.task: p.row["level"] for p in rec.picks} == {A: "Q2_K", B: "Q2_K"}
    rows = table["rows"]
    assert holds(rows, rows[1], B, 0.0)  # 0.795 is inside F16's interval [0.78, 0.82]
    assert holds(rows, rows[2], A, 0.0)  # 0.89: inside [0.88, 0.92]
    assert not holds(rows, rows[3], A, 0.29) and holds(rows, rows[3], A, 0.30)


def test_recommend_budget_nothing_fits(table, tmp_path, capsys):
    rec = recommend(table, Budget(ram_bytes=GiB))
    assert all(p.row is None for p in rec.picks)
    assert rec.picks[0].why == "nothing fits: the smallest file needs 1.60 GiB of RAM, the budget is 1.00 GiB"
    (tmp_path / "tradeoff.json").write_text(json.dumps(table))
    assert main(["recommend", str(tmp_path), "--ram", "1G"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing in" in err[0] and "1.60 GiB" in err[0]


def test_recommend_writes_routes_the_assistant_loads(table, tmp_path, capsys):
    (tmp_path / "tradeoff.json").write_text(json.dumps(table))
    routes = tmp_path / "routes.json"
    assert main(["recommend", str(tmp_path), "--device", "pi5-8g", "--routes-out", str(routes), "--json"]) == 0
    picks = json.loads(capsys.readouterr().out)["picks"]
    loaded = load_routes(routes, check_files=False)
    assert {t: str(r.model) for t, r in loaded.routes.items()} == {p["task"]: p["file"] for p in picks}
    # the table has strict scores only: ranked on strict, and the routes decode as ranked
    assert {r.decoding for r in loaded.routes.values()} == {"strict"}
    # the same as routes_for, saved by the library
    save_routes(routes_for(recommend(table, Budget(ram_bytes=7 * GiB, decoding="strict"))), tmp_path / "again.json")
    assert load_routes(tmp_path / "again.json", check_files=False).routes.keys() == loaded.routes.keys()


@pytest.mark.parametrize("argv, message", [
    (["recommend", "{tmp}"], "no sweep table here"),
    (["recommend", "{tmp}/t.json", "--ram", "4G", "--device", "pi5-4g"], "not both"),
    (["recommend", "{tmp}/t.json"], "give the device's budget"),
    (["tradeoff", "{tmp}/missing.gguf", "-o", "{tmp}/run"], "no such model file"),
])
def test_bad_input_one_line(argv, message, table, tmp_path, capsys):
    (tmp_path / "t.json").write_text(json.dumps(table))
    rc = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag, value", [("--levels", "q4_k_x"), ("--imatrix", "medical"), ("--tolerance", "2"),
                                         ("--remeasure", "fidelity")])
def test_bad_sweep_values(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["tradeoff", "m.gguf", "-o", str(tmp_path / "run"), flag, value])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


def test_report_only_measures_nothing_and_shows_the_gaps(sweep, tiny_gguf, samples):
    import dataclasses

    run, spec, result = sweep
    before = (run / CELLS_FILE).read_text()
    wider = dataclasses.replace(spec, tasks=TASKS + ("n_staging",))
    partial = run_sweep([tiny_gguf("tiny-qwen2", "f16")], run, wider, samples, measure=False)
    assert (run / CELLS_FILE).read_text() == before
    assert partial.made == 0 and partial.missing == 3 * len(partial.variants)  # strict, grammar, latency each
    table = load_table(run)
    assert all(r["tasks"]["n_staging"] == {} for r in table["rows"])
    assert any("not measured yet" in n for n in table["notes"])
    md = (write_report(table, run / "partial") and (run / "partial" / "tradeoff.md").read_text())
    assert "## n_staging" in md and "| — |" in md
    run_sweep([tiny_gguf("tiny-qwen2", "f16")], run, spec, samples)  # the table of the full run again
