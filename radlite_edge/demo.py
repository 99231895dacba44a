"""``radlite demo``: the whole pipeline on the fine-tuned embedded default, resumable.

SmolLM2-135M-Instruct (the GGUF set up by ``make smollm2``) → ``radlite import`` → merge-on-convert
with the shipped adapter → F16 GGUF → a ladder with the radiology importance matrix → fidelity,
strict evaluation of the nine tasks per level on a reduced n, decode speed and peak RSS, one
request's latency per task (``radlite tradeoff``) → decode speed against threads → the trade-off
report and the recommendation for a 4 GB device → the assistant answering one report per task
through the recommended routes. Every step keeps its output and is skipped when up to date, so a
second run only prints the summary.

``--shape qwen2.5-3b`` runs the speed and memory half at full size on random weights (the
accuracy of random weights means nothing, so none is measured).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.table import Table

from .errors import UserError
from .fileio import atomic_path, make_dir

DEMO_LEVELS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q3_K_M", "Q2_K")
DEMO_N = 20  # test samples per task: enough to see the trade-off's shape, stated beside every score
DEMO_DEVICE = "pi5-4g"
DEMO_FIDELITY_WINDOWS = 8
DEMO_IMATRIX_CHUNKS = 16  # 8k tokens of radiology text: a demo's calibration (radlite imatrix takes 64)
DEMO_LATENCY_SAMPLES = 1
ADAPTER = Path("adapters/smollm2-135m-radlite")  # the shipped adapter, in the source tree
SHAPE_LEVELS = ("Q8_0", "Q4_K_M", "Q2_K")


@dataclass
class DemoResult:
    run: Path
    table: dict
    report: list[Path]
    threads: dict[str, float]  # threads -> tg tok/s of the recommended level
    answers: list[dict]
    seconds: float


def _step(console: Console, text: str) -> None:
    console.print(f"[bold]›[/bold] {text}", highlight=False)


def _fine_tuned_f16(run: Path, *, n_threads: int, say: Callable[[str], None]) -> Path:
    from .convert.gguf_to_hf import import_gguf
    from .convert.hf_to_gguf import convert_checkpoint
    from .embedded import smollm2

    base = smollm2()
    if not (ADAPTER / "adapter_config.json").is_file():
        raise UserError(f"{ADAPTER}: the shipped adapter is not here; run the demo from the source tree")
    say(f"import {base.name} → {run / 'smollm2-135m'}")
    ckpt = import_gguf(base, run / "smollm2-135m", dtype="f32").path
    out = run / "smollm2-135m-radlite-F16.gguf"
    say(f"merge {ADAPTER} while converting → {out.name}")
    convert_checkpoint(ckpt, out, outtype="f16", n_threads=n_threads, adapter=ADAPTER, name="smollm2-135m-radlite")
    return out


def _thread_scaling(path: Path, run: Path, *, max_threads: int) -> dict[str, float]:
    """tg tok/s at 1..all threads of one file, cached beside the run keyed on the file's digest."""
    import dataclasses

    from .bench.tradeoff import SweepSpec
    from .bench.tradeoff_measure import measure_speed
    from .identity import identify_model

    cache = run / "threads.json"
    digest = identify_model(path).digest
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("digest") == digest and len(data.get("tok_s", {})) == max_threads:
            return data["tok_s"]
    spec = SweepSpec(tasks=(), n=1)
    rates = {str(t): measure_speed(path, dataclasses.replace(spec, threads=t))["tg_tok_s"]
             for t in range(1, max_threads + 1)}
    with atomic_path(cache) as tmp:
        tmp.write_text(json.dumps({"digest": digest, "file": path.name, "tok_s": rates}, indent=1))
    return rates


def example_requests() -> list[tuple[str, str]]:
    """One report per task, tagged as the published router reads them: from the generalization
    split, in wording the adapter never trained on."""
    from .tasks.labels import TASK_NAMES
    from .tasks.synthetic import GENERALIZATION, make_task_samples

    return [(t, f"[TASK: {t}]\n{make_task_samples(t, 1, seed=7, split=GENERALIZATION)[0].input}") for t in TASK_NAMES]


def _answers(routes_path: Path, run: Path, *, n_threads: int) -> list[dict]:
    from .assistant import Assistant
    from .routes import load_routes

    out = run / "answers.jsonl"
    key = json.dumps([routes_path.read_text(), example_requests()])
    if out.is_file():
        lines = out.read_text().splitlines()
        if lines and json.loads(lines[0]).get("key") == key:
            return [json.loads(x) for x in lines[1:]]
    answers = []
    with Assistant(load_routes(routes_path), n_threads=n_threads) as assistant:
        for task, text in example_requests():
            a = assistant.answer(text)
            answers.append({"asked": task, "task": a.task, "level": a.route.level, "text": a.text,
                            "fields": a.fields, "tokens": a.tokens, "seconds": a.seconds})
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(json.dumps(x) for x in [{"key": key}, *answers]) + "\n")
    return answers


def run_demo(run: Path, *, n_threads: int, console: Console, n: int = DEMO_N,
             levels: Sequence[str] = DEMO_LEVELS, shape: str | None = None,
             on_cell: Callable[[int, int, str], None] | None = None) -> DemoResult:
    from .bench.tradeoff import SweepSpec, run_sweep
    from .bench.tradeoff_analysis import DEVICES, Budget, load_table, recommend, routes_for
    from .bench.tradeoff_report import write_report
    from .routes import save_routes
    from .tasks.labels import TASK_NAMES
    from .tasks.samples import read_dir, write_jsonl
    from .tasks.synthetic import make_suite

    t0 = time.perf_counter()
    run = Path(run)
    make_dir(run)
    say = lambda s: _step(console, s)  # noqa: E731
    if shape:
        return _shape_demo(run, shape, n_threads=n_threads, console=console, t0=t0, on_cell=on_cell)
    f16 = _fine_tuned_f16(run, n_threads=n_threads, say=say)
    data = run / "data"
    if not (data / f"synthetic-{n}.test.jsonl").is_file():
        make_dir(data)
        with atomic_path(data / f"synthetic-{n}.test.jsonl") as tmp:
            write_jsonl(tmp, [s for s in make_suite(n, seed=0, n_generalization=0, n_val=0, n_train=0)])
    samples = read_dir(data)
    say(f"trade-off sweep: {', '.join(levels)} (radiology imatrix) × 9 tasks × n={n}, strict scoring")
    spec = SweepSpec(tasks=tuple(TASK_NAMES), n=n, levels=tuple(levels), imatrix=("radiology",),
                     decodings=("strict",), threads=n_threads, fidelity_windows=DEMO_FIDELITY_WINDOWS,
                     imatrix_chunks=DEMO_IMATRIX_CHUNKS, latency_samples=DEMO_LATENCY_SAMPLES)
    run_sweep([f16], run / "tradeoff", spec, samples, on_cell=on_cell)
    table = load_table(run / "tradeoff")
    report = write_report(table, run / "tradeoff" / "report")
    device = DEVICES[DEMO_DEVICE]
    rec = recommend(table, Budget(ram_bytes=device.budget_bytes, decoding="strict"))
    routes_path = run / "routes.json"
    save_routes(routes_for(rec), routes_path)
    chosen = max((p.row for p in rec.picks if p.row), key=lambda r: r["bytes"])
    say(f"decode speed against threads on {Path(chosen['path']).name}")
    threads = _thread_scaling(Path(chosen["path"]), run, max_threads=n_threads)
    say("the assistant: one report per task through the recommended routes")
    answers = _answers(routes_path, run, n_threads=n_threads)
    return DemoResult(run, table, report, threads, answers, time.perf_counter() - t0)


def _shape_demo(run: Path, shape: str, *, n_threads: int, console: Console, t0: float,
                on_cell: Callable[[int, int, str], None] | None) -> DemoResult:
    """Full-size random weights: size, tg tok/s and peak RSS per level, nothing scored."""
    from .bench.synthetic import ensure_models
    from .bench.tradeoff import SweepSpec
    from .bench.tradeoff_measure import measure_file, measure_speed
    from .identity import identify_model

    _step(console, f"{shape} with random weights at {', '.join(SHAPE_LEVELS)} (made once, cached in {run})")
    paths = ensure_models([shape], list(SHAPE_LEVELS), run / "models", n_threads=n_threads,
                          say=lambda s: _step(console, s))
    rows = []
    for i, path in enumerate(paths):
        if on_cell:
            on_cell(i, len(paths), path.name)
        level = identify_model(path).level
        rows.append({"level": level, "path": str(path), **measure_file(path),
                     **measure_speed(path, SweepSpec(tasks=(), n=1, threads=n_threads))})
    table = {"shape": shape, "rows": rows}
    with atomic_path(run / "shape.json") as tmp:
        tmp.write_text(json.dumps(table, indent=1))
    return DemoResult(run, table, [run / "shape.json"], {}, [], time.perf_counter() - t0)


# ------------------------------------------------------------------ the terminal summary


def summary_tables(result: DemoResult) -> list[Table]:
    from .bench.tradeoff_analysis import DEVICES, Budget, fmt_bytes, recommend, value

    if "shape" in result.table:
        t = Table(title=f"{result.table['shape']}, random weights: size, speed and memory per level")
        for col in ("level", "GiB", "bits/w", "tg tok/s", "peak RSS"):
            t.add_column(col, justify="left" if col == "level" else "right")
        for r in result.table["rows"]:
            t.add_row(r["level"], f"{r['bytes'] / 2**30:.2f}", f"{r['bits_per_weight']:.2f}", f"{r['tg_tok_s']:.1f}",
                      fmt_bytes(r["peak_rss_bytes"]))
        return [t]
    table = result.table
    rows = sorted(table["rows"], key=lambda r: -r["bytes"])
    n = table["spec"]["n"]
    scores = Table(title=f"fine-tuned SmolLM2-135M: strict scores per task and level (synthetic test split, n={n} "
                         "per task: a demo's n, wide intervals)")
    scores.add_column("task", no_wrap=True)
    scores.add_column("floor", justify="right")
    for r in rows:
        scores.add_column(r["level"], justify="right")
    for task in table["spec"]["tasks"]:
        floor = rows[0]["tasks"][task]["strict"]["floor"]
        scores.add_row(task, f"{floor:.2f}", *(f"{value(r, task):.2f}" for r in rows))
    scores.add_row("[dim]MiB · tg tok/s[/dim]", "",
                   *(f"[dim]{r['bytes'] / 2**20:.0f} · {r['tg_tok_s']:.0f}[/dim]" for r in rows))
    device = DEVICES[DEMO_DEVICE]
    rec = recommend(table, Budget(ram_bytes=device.budget_bytes, decoding="strict"))
    picks = Table(title=f"deploy on a {device.name} ({fmt_bytes(device.budget_bytes)} for the service; "
                        "within 1 point of F16 or inside its interval)")
    for col in ("task", "level", "score", "peak RSS", "answer to the example report"):
        picks.add_column(col, overflow="fold" if col.startswith("answer") else "ellipsis")
    by_task = {a["task"]: a for a in result.answers}
    for p in rec.picks:
        a = by_task.get(p.task, {})
        picks.add_row(p.task, p.row["level"] if p.row else "—", f"{value(p.row, p.task):.2f}" if p.row else "—",
                      fmt_bytes(p.row["peak_rss_bytes"]) if p.row else p.why,
                      json.dumps(a.get("fields"), ensure_ascii=False)[:70] if a else "")
    speed = Table(title="decode speed against threads")
    speed.add_column("file")
    for t in result.threads:
        speed.add_column(f"{t} thread{'s' if t != '1' else ''}", justify="right")
    speed.add_row(json.loads((result.run / "threads.json").read_text())["file"],
                  *(f"{v:.1f} tok/s" for v in result.threads.values()))
    return [scores, picks, speed]


def print_summary(result: DemoResult, console: Console) -> None:
    from .cli.render import print_table

    for t in summary_tables(result):
        print_table(t, console)  # a pipe or a log gets the whole table, not 80 columns of it
    for p in result.report:
        console.print(f"  {p}", highlight=False)
    console.print(f"demo finished in {result.seconds:.0f} s; run it again to reuse everything in {result.run}/",
                  highlight=False)


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)
