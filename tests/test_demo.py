"""`radlite demo` (what `make demo` runs): the whole pipeline on the fine-tuned embedded default,
on its smallest settings; every artifact and every summary section, then a second run that
reuses everything."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from radlite_edge.demo import print_summary, run_demo
from radlite_edge.embedded import find_smollm2
from radlite_edge.tasks.labels import TASK_NAMES

NEEDS_SMOLLM2 = pytest.mark.skipif(find_smollm2() is None, reason="the SmolLM2 base GGUF is not set up (make smollm2)")
LEVELS = ("F16", "Q8_0", "Q4_K_M")


@NEEDS_SMOLLM2
@pytest.mark.slow
def test_demo_end_to_end_then_reused(tmp_path):
    run = tmp_path / "demo"
    console = Console(record=True, width=220, force_terminal=True)  # recorded as a terminal shows it
    result = run_demo(run, n_threads=2, console=console, n=1, levels=LEVELS)
    print_summary(result, console)
    text = console.export_text()

    assert (run / "smollm2-135m" / "config.json").is_file()
    assert (run / "smollm2-135m-radlite-F16.gguf").is_file()
    tr = run / "tradeoff"
    for name in ("cells.jsonl", "tradeoff.json", "report/tradeoff.md", "report/tradeoff.csv",
                 "report/accuracy_size.png", "report/drop_heatmap.png", "report/latency_fronts.png"):
        assert (tr / name).is_file(), name
    table = json.loads((tr / "tradeoff.json").read_text())
    assert sorted(r["level"] for r in table["rows"]) == sorted(LEVELS)
    assert all(set(r["tasks"]) == set(TASK_NAMES) for r in table["rows"])
    md = (tr / "report" / "tradeoff.md").read_text()
    assert all(f"## {t}" in md for t in TASK_NAMES) and "## Recommendation per device" in md

    routes = json.loads((run / "routes.json").read_text())["routes"]
    assert set(routes) == set(TASK_NAMES)
    answers = [json.loads(x) for x in (run / "answers.jsonl").read_text().splitlines()[1:]]
    assert [a["task"] for a in answers] == list(TASK_NAMES)  # each tagged request routed to its task
    assert all(a["text"] and a["fields"] is not None for a in answers)
    assert set(result.threads) == {"1", "2"} and min(result.threads.values()) > 0

    for title in ("strict scores per task and level", "deploy on a Raspberry Pi 5, 4 GB", "decode speed against threads",
                  "tradeoff.md", "accuracy_size.png"):
        assert title in text, title

    cells = (tr / "cells.jsonl").read_text()
    answers_mtime = (run / "answers.jsonl").stat().st_mtime_ns
    again = run_demo(run, n_threads=2, console=Console(record=True, width=220), n=1, levels=LEVELS)
    assert (tr / "cells.jsonl").read_text() == cells, "the second run measured something again"
    assert (run / "answers.jsonl").stat().st_mtime_ns == answers_mtime
    assert again.seconds < result.seconds


def test_shape_demo_measures_size_speed_and_memory(tmp_path):
    """The --shape half on the tiny shape (the CLI offers the full-size ones: same code, GBs of random weights)."""
    console = Console(record=True, width=160, force_terminal=True)
    result = run_demo(tmp_path / "shape", n_threads=1, console=console, shape="tiny-qwen2")
    print_summary(result, console)
    rows = json.loads((tmp_path / "shape" / "shape.json").read_text())["rows"]
    assert [r["level"] for r in rows] == ["Q8_0", "Q4_K_M", "Q2_K"]
    assert all(r["tg_tok_s"] > 0 and r["peak_rss_bytes"] > r["bytes"] for r in rows)
    assert rows[0]["bits_per_weight"] > rows[1]["bits_per_weight"] > rows[2]["bits_per_weight"]
    text = console.export_text()
    assert "random weights" in text and "peak RSS" in text and "Q2_K" in text
