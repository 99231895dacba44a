"""radlite bench on the tiny models: the grid, its records, every printer, the dashboard, the report.

One real grid runs once for the module (two models, two thread counts, two depths, a task
request); the tests read what it produced. No figure is asserted: timings are benchmarks.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import pytest
from rich.console import Console

from radlite_edge.bench import formats
from radlite_edge.bench.dashboard import Dashboard, DashboardState, ProgressLines, apply, render
from radlite_edge.bench.grid import GridSpec, default_threads, parse_list, plan_cells, run_grid, task_requests
from radlite_edge.bench.report import load_records, make_report
from radlite_edge.errors import UserError
from radlite_edge.tasks import TASKS
from radlite_edge.results import append_jsonl, read_jsonl

REPS = 3


@pytest.fixture(scope="module")
def grid(tiny_gguf):
    spec = GridSpec(models=(tiny_gguf("tiny-qwen2", "q8_0"), tiny_gguf("tiny-qwen3", "f16")), threads=(1, 2),
                    n_prompt=(32,), n_gen=(8,), depth=(0, 16), reps=REPS, requests=task_requests("n_staging"))
    events = []
    results = run_grid(spec, on_event=events.append)
    return spec, results, events


def _records_of(results, cell):
    return [r for r in results if r.benchmark == cell.name and r.params.threads == cell.threads
            and r.params.file == cell.model.name]


def test_grid_has_every_cell(grid):
    spec, results, _ = grid
    cells = plan_cells(spec)
    # per model: load, memory, then per thread count 2 depths x (pp, tg) and one request
    assert len(cells) == 2 * (2 + 2 * (2 * 2 + 1))
    names = {c.name for c in cells}
    assert names == {"load", "memory", "pp32", "tg8", "pp32@d16", "tg8@d16", "request:n_staging"}
    metrics_of = {"load": {"load_cold_s", "load_warm_s"}, "memory": {"peak_rss_bytes", "kv_cache_bytes"},
                  "pp": {"tok_s"}, "tg": {"tok_s"}, "request": {"ttft_s", "total_s"}}
    for cell in cells:
        got = _records_of(results, cell)
        assert {r.metric for r in got} == metrics_of[cell.test], cell
        assert len(got) == len(metrics_of[cell.test]), cell
    bandwidth = [r for r in results if r.benchmark == "bandwidth"]
    assert sorted((r.params.file, r.params.threads) for r in bandwidth) == sorted(
        (m.name, t) for m in spec.models for t in spec.threads)
    assert len(results) == len(bandwidth) + sum(len(metrics_of[c.test]) for c in cells)


def test_order_loads_each_model_once(grid):
    spec, _, events = grid
    models = [e.model.path for e in events if e.kind == "model"]
    assert models == list(spec.models)
    cells = [e.cell for e in events if e.kind == "cell"]
    assert cells == plan_cells(spec)
    first_of = [cells.index(next(c for c in cells if c.model == m)) for m in spec.models]
    assert first_of == sorted(first_of)
    assert all(c.model == spec.models[0] for c in cells[: first_of[1]])


def test_repetitions_keep_samples_and_spread(grid):
    _, results, _ = grid
    timed = [r for r in results if r.metric in ("tok_s", "load_cold_s", "load_warm_s", "ttft_s", "total_s")]
    assert timed
    for r in timed:
        assert r.n == REPS and len(r.samples) == REPS, r.benchmark
        assert r.stat == "mean" and math.isclose(r.value, sum(r.samples) / REPS)
        assert r.spread is not None and r.spread > 0 and len(set(r.samples)) > 1, (r.benchmark, r.samples)


def test_tg_records_carry_the_roofline(grid):
    _, results, _ = grid
    tg = [r for r in results if r.params.test == "tg"]
    assert len(tg) == 8
    for r in tg:
        p = r.params
        assert p.bandwidth_gbps > 0 and p.bytes_per_token > 0
        probes = [b for b in results if b.benchmark == "bandwidth" and b.params.file == p.file
                  and b.params.repack == p.repack and b.params.threads <= p.threads]
        assert probes and p.bandwidth_gbps == max(max(b.samples) for b in probes)  # the best rate at <= t threads
        assert math.isclose(p.ceiling_tok_s, p.bandwidth_gbps * 1e9 / p.bytes_per_token)
        assert math.isclose(p.roofline_fraction, r.value / p.ceiling_tok_s)
        share = p.other_cpu_share  # recorded; unknown (None) when the test was too short to tell
        assert share is None or 0 <= share <= 1
    deep = [r for r in tg if r.params.n_depth == 16]
    shallow = {(r.model, r.params.threads): r for r in tg if r.params.n_depth == 0}
    for r in deep:  # the KV read grows with depth
        assert r.params.bytes_per_token > shallow[(r.model, r.params.threads)].params.bytes_per_token


def test_load_memory_and_request_records(grid):
    _, results, _ = grid
    by = {(r.model, r.metric): r for r in results}
    for model in ("tiny-qwen2", "tiny-qwen3"):
        cold = by[(model, "load_cold_s")]
        assert "posix_fadvise" in cold.params.cold_cache
        assert by[(model, "peak_rss_bytes")].value > 10 << 20  # Python and llama.cpp at least
        assert by[(model, "kv_cache_bytes")].value > 0
        request = by[(model, "total_s")]
        assert request.params.max_tokens == TASKS["n_staging"].max_tokens and request.params.prompt_tokens > 20
        assert by[(model, "ttft_s")].value <= request.value


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_every_output_format_parses_back(grid, fmt):
    _, results, _ = grid
    text = formats.render(results, fmt)
    if fmt == "jsonl":
        assert formats.from_jsonl(text) == results
    elif fmt == "json":
        assert formats.from_json(text) == results
    elif fmt == "csv":
        rows = formats.from_csv(text)
        assert len(rows) == len(results)
        for row, r in zip(rows, results):
            assert list(row) == list(formats.COLUMNS)
            assert (row["model"], row["level"], row["test"], row["metric"]) == (r.model, r.level, r.benchmark, r.metric)
            assert float(row["value"]) == r.value
            samples = [float(x) for x in row["samples"].split(";")] if row["samples"] else []
            assert samples == pytest.approx(r.samples or [], rel=1e-5)
    else:
        rows = formats.parse_markdown_table(text)
        assert len(rows) == len(results)
        for row, r in zip(rows, results):
            assert (row["model"], row["level"]) == (r.model, r.level)
            assert row["threads"] == str(r.params.threads)
            value = float(row["value"].split(" ± ")[0])
            expected = r.value / 2**30 if r.unit == "B" else r.value
            assert value == pytest.approx(expected, rel=6e-3)
        assert "## Thread scaling" in text and "## Roofline" in text
        assert "llama.cpp uses" in text


def test_scaling_rows_name_the_best_thread_count(grid):
    _, results, _ = grid
    series = formats.scaling_rows(results)
    assert len(series) == 8  # 2 models x (pp, tg) x 2 depths
    for model, level, test, steps, best in series:
        assert [t for t, *_ in steps] == [1, 2]
        assert steps[0][2] is None and steps[1][2] == pytest.approx(steps[1][1] / steps[0][1])
        assert steps[1][3] == pytest.approx(steps[1][2] / 2)
        assert best == max(steps, key=lambda s: s[1])[0]


def _twin(results, folder="/ladder/generic"):
    """The first model's records again, as if measured on another file of the same model and level."""
    first = [r for r in results if r.model_id and r.model_id.path == results[0].model_id.path]
    other_id = dataclasses.replace(first[0].model_id, digest="sha256:another-file",
                                   path=str(Path(folder) / Path(first[0].model_id.path).name))
    return first, [dataclasses.replace(r, model_id=other_id) for r in first]


def test_two_files_of_one_model_and_level_are_two_series(grid, tmp_path):
    # a ladder holds e.g. ladder/radiology/m-Q2_K.gguf and ladder/generic/m-Q2_K.gguf: their thread
    # steps must not be chained into one series, and the tables must tell them apart
    _, results, _ = grid
    first, twin = _twin(results)
    series = formats.scaling_rows(results + twin)
    assert len(series) == 8 + 4  # the twin's (pp, tg) x 2 depths on their own
    assert all([t for t, *_ in steps] == [1, 2] for *_, steps, _best in series)
    labels = {row["model"] for row in formats.rows(results + twin)}
    assert f"{first[0].model} (generic/)" in labels and f"{first[0].model} ({Path(first[0].model_id.path).parent.name}/)" in labels
    assert {row["model"] for row in formats.rows(results)} == {r.model for r in results}  # one file each: plain names
    # radlite report keeps both files' latest figures, and its thread plot draws them apart
    jsonl = tmp_path / "bench.jsonl"
    append_jsonl(jsonl, results + twin)
    assert len(load_records([jsonl])) == len(results) + len(twin)
    # two folders of one name: the labels reach up a folder
    _, far = _twin(results, folder=f"/elsewhere/{Path(first[0].model_id.path).parent.name}")
    labels = {row["model"] for row in formats.rows(results + far)}
    assert len({lbl for lbl in labels if lbl.startswith(first[0].model)}) == 2


def test_dashboard_renders_without_a_terminal(grid):
    _, _, events = grid
    state = DashboardState(machine="test machine")
    console = Console(record=True, width=140, file=io.StringIO(), force_terminal=False)
    for event in events:
        apply(state, event)
        console.print(render(state))  # every intermediate state renders
    text = console.export_text()
    assert "tiny-qwen2" in text and "tiny-qwen3" in text and "tg8" in text and "of the memory ceiling" in text
    assert f"cell {len(plan_cells(grid[0]))}/{len(plan_cells(grid[0]))}" in text


def test_live_dashboard_and_plain_lines_during_a_run(tiny_gguf):
    spec = GridSpec(models=(tiny_gguf("tiny-qwen2", "q8_0"),), threads=(1,), n_prompt=(8,), n_gen=(4,), reps=2,
                    rss=False)
    console = Console(record=True, width=140, file=io.StringIO(), force_terminal=False)
    with Dashboard(console, "test machine") as dashboard:
        results = run_grid(spec, on_event=dashboard)
    assert dashboard.state.finished
    assert dashboard.state.results == [r for r in results if r.benchmark != "bandwidth"]  # those are notes
    assert "tg4" in console.export_text()
    plain = Console(record=True, width=200, file=io.StringIO(), force_terminal=False)
    run_grid(spec, on_event=ProgressLines(plain, "test machine"))
    lines = plain.export_text().splitlines()
    assert lines[0] == "machine: test machine"
    n = len(plan_cells(spec))
    assert any(line.startswith(f"[{n}/{n}]") and "tg4" in line for line in lines)


def test_report_writes_markdown_csv_and_plots(grid, tmp_path):
    _, results, _ = grid
    jsonl = tmp_path / "bench.jsonl"
    append_jsonl(jsonl, results)
    assert read_jsonl(jsonl) == results
    made = make_report([jsonl], tmp_path / "report")
    names = sorted(p.name for p in made.files)
    assert names == ["report.csv", "report.md", "tok_s_vs_size.png", "tok_s_vs_threads.png"]
    for p in made.files:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(formats.parse_markdown_table((tmp_path / "report" / "report.md").read_text())) == len(results)
    assert len(formats.from_csv((tmp_path / "report" / "report.csv").read_text())) == len(results)


def test_report_keeps_the_latest_figure(grid, tmp_path):
    _, results, _ = grid
    jsonl = tmp_path / "bench.jsonl"
    append_jsonl(jsonl, results)
    append_jsonl(jsonl, results)  # the same figures measured again
    assert len(load_records([jsonl])) == len(results)
    assert len(load_records([jsonl], run="latest")) == len(results)
    with pytest.raises(UserError, match="no bench records"):
        load_records([jsonl], run="nonexistent")


def test_parse_list_and_default_threads():
    assert parse_list("1,2,4", what="-t") == (1, 2, 4)
    assert parse_list("1-8+3", what="-t") == (1, 4, 7)
    assert parse_list("0", what="-d") == (0,)
    for bad in ("a,b", "", "1,x"):
        with pytest.raises(UserError):
            parse_list(bad, what="-t")
    with pytest.raises(UserError, match="below 1"):
        parse_list("0,1", what="-t", minimum=1)
    threads = default_threads()
    assert threads[0] == 1 and list(threads) == sorted(set(threads))


def test_task_requests_follow_the_registry():
    from radlite_edge.tasks import TASKS

    requests = task_requests("all")
    assert [r.task for r in requests] == list(TASKS)
    for r in requests:
        assert r.max_tokens == TASKS[r.task].max_tokens
        assert f"[TASK: {r.task}]" in r.messages[-1]["content"]
    assert task_requests("none") == ()
    with pytest.raises(UserError):
        task_requests("no_such_task")


def test_plan_takes_each_repack_setting_as_a_load_of_its_own(tmp_path):
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    spec = GridSpec(models=(a, b), threads=(1, 2), n_prompt=(8,), n_gen=(4,), repack=(True, False))
    cells = plan_cells(spec)
    one = plan_cells(GridSpec(models=(a, b), threads=(1, 2), n_prompt=(8,), n_gen=(4,)))
    assert len(cells) == 2 * len(one)
    # model, then setting: each (model, setting) block is contiguous, so each is loaded once
    blocks = [(c.model, c.repack) for c in cells]
    assert blocks == sorted(blocks, key=lambda k: ([a, b].index(k[0]), not k[1]))
    assert [c for c in cells if c.repack] == one
