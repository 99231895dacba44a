"""Verbs of the accuracy trade-off: tradeoff (the sweep and its report) and recommend."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from . import values
from .render import count_progress, err, out, parse_size, plain, print_json, print_table

DEFAULT_SWEEP_N = 200


def _fraction(text: str) -> float:
    try:
        v = float(text.strip().removesuffix("%")) / (100 if text.strip().endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a fraction: {text!r} (e.g. 0.01 or 1%)") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 0 to 1 (or 0% to 100%)")
    return v


def _samples(args: argparse.Namespace, run: Path):
    """The task data: --data, else the synthetic suite, written once into the run folder."""
    from ..fileio import atomic_path, make_dir
    from ..tasks.samples import read_dir, write_jsonl
    from ..tasks.synthetic import make_suite

    if args.data:
        return read_dir(Path(args.data))
    folder = run / "data"
    if not any(folder.glob("*.jsonl")):
        make_dir(folder)
        samples = make_suite(args.n, seed=args.seed, n_generalization=0, n_val=0, n_train=0)
        with atomic_path(folder / "synthetic.test.jsonl") as tmp:
            write_jsonl(tmp, [s for s in samples if s.split == "test"])
    return read_dir(folder)


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from ..bench.tradeoff import check_inputs
    from ..bench.tradeoff_report import claim_report
    from ..fileio import INTO, claim_output, output_dir
    from ..locks import output_lock

    check_inputs(map(Path, args.models))
    run = claim_output(args.output, [*args.models, *([args.data] if args.data else [])], step="tradeoff", kind=INTO)
    claim_report(run / "report", png=not args.no_png)
    with output_lock(run, what="radlite tradeoff"), output_dir(run):
        return _tradeoff(args, run)


def _tradeoff(args: argparse.Namespace, run: Path) -> int:
    from ..bench.tradeoff import SweepSpec, run_sweep
    from ..bench.tradeoff_analysis import load_table
    from ..bench.tradeoff_report import write_report
    from ..tasks import select_tasks

    tasks = tuple(t.name for t in select_tasks(args.tasks))
    spec = SweepSpec(tasks=tasks, n=args.n, levels=args.levels, imatrix=args.imatrix, threads=args.threads,
                     imatrix_levels=args.imatrix_levels,
                     seed=args.seed, fidelity_windows=args.fidelity_windows,
                     decodings=("strict",) if args.strict_only else ("strict", "grammar"))
    args.interrupt_note = f"finished cells are kept in {run}/cells.jsonl; run the same command to go on"
    samples = _samples(args, run)
    with count_progress() as bar:
        task = bar.add_task("tradeoff: planning the ladder", total=None)
        result = run_sweep(args.models, run, spec, samples,
                           on_note=lambda s: plain(err, f"note: {s}"),
                           on_step=lambda s: bar.update(task, description=f"tradeoff: {s}"),
                           on_cell=lambda i, n, what: bar.update(task, completed=i, total=n,
                                                                 description=f"tradeoff: {what}"),
                           measure=not args.report_only, remeasure=args.remeasure)
    table = load_table(run)
    written = write_report(table, run / "report", tolerance=args.tolerance, png=not args.no_png)
    if args.json:
        print_json({"run": str(run), "cells_made": result.made, "cells_reused": result.reused,
                    "cells_missing": result.missing,
                    "seconds": result.seconds, "report": [str(p) for p in written]})
        return 0
    plain(out, f"{run}: {len(result.variants)} files, {result.made} cells measured, {result.reused} reused, "
               f"{result.seconds / 60:.1f} min" + (f"; {result.missing} not measured yet" if result.missing else ""))
    for p in written:
        plain(out, f"  {p}")
    return 0


def _budget(args: argparse.Namespace, table: dict):
    from ..bench.tradeoff_analysis import DEVICES, Budget, complete_decoding
    from ..errors import UserError

    if args.device and args.ram:
        raise UserError("give --ram or --device, not both")
    if not args.device and not args.ram:
        raise UserError(f"give the device's budget: --ram SIZE, or --device {{{','.join(DEVICES)}}}")
    ram = DEVICES[args.device].budget_bytes if args.device else args.ram
    return Budget(ram_bytes=ram, min_tok_s=args.min_tok_s, max_latency_s=args.max_latency, max_drop=args.max_drop,
                  decoding=args.decoding or complete_decoding(table))


def _bench_records(path: Path) -> list:
    """A ``radlite bench`` results file for --bench, every failure to read it one line."""
    from ..errors import UserError
    from ..results import read_jsonl

    if not path.is_file():
        raise UserError(f"--bench {path}: no such file" + (" (it is a folder)" if path.is_dir() else "") +
                        ": give a radlite bench results JSONL")
    try:
        return read_jsonl(path)
    except UnicodeDecodeError:
        raise UserError(f"--bench {path}: not UTF-8 text: give a radlite bench results JSONL") from None
    except ValueError as e:
        raise UserError(f"--bench {path}: {e}") from None
    except OSError as e:
        raise UserError(f"--bench {path}: cannot read it ({e.strerror})") from None


def _recommend_inputs(args: argparse.Namespace, table: dict) -> list[Path]:
    """What recommend reads or routes to: the sweep's table and what the run made (cells, ladder,
    data, records, report), --bench, and every file of the table. A routes file beside the table
    (RUN/routes.json) is fine; one written over or into any of these would spoil it."""
    from ..bench.tradeoff import CELLS_FILE, TABLE_FILE

    run = Path(args.run)
    made = [run / name for name in (TABLE_FILE, CELLS_FILE, "ladder", "data", "eval", "report")] if run.is_dir() \
        else [run]
    bench = [Path(args.bench)] if args.bench else []
    return made + bench + [Path(r["path"]) for r in table["rows"] if r.get("path")]


def cmd_recommend(args: argparse.Namespace) -> int:
    from ..bench.tradeoff_analysis import fmt_bytes, load_table, recommend, routes_for, value
    from ..errors import UserError
    from ..fileio import FILE, claim_output
    from ..routes import is_routes_file

    table = load_table(Path(args.run))
    budget = _budget(args, table)
    routes_out = claim_output(args.routes_out, _recommend_inputs(args, table), step="recommend", kind=FILE,
                              flag="--routes-out", owned=is_routes_file) if args.routes_out is not None else None
    if args.bench:
        from ..bench.tradeoff_analysis import apply_bench

        changed = apply_bench(table, _bench_records(Path(args.bench)))
        plain(err, f"note: {changed} file(s) take their tg tok/s from {args.bench}")
    rec = recommend(table, budget)
    if all(p.row is None for p in rec.picks):
        raise UserError(f"nothing in {args.run} fits this budget: {rec.picks[0].why}")
    if routes_out:
        from ..routes import save_routes

        save_routes(routes_for(rec), routes_out, owned=is_routes_file)
    if args.json:
        print_json({"budget": vars(budget), "together_bytes": rec.together_bytes, "fits_together": rec.fits_together,
                    "notes": rec.notes, "picks": [{"task": p.task, "file": p.row["path"] if p.row else None,
                                                   "level": p.row["level"] if p.row else None,
                                                   "score": value(p.row, p.task, budget.decoding) if p.row else None,
                                                   "why": p.why} for p in rec.picks]})
        return 0
    t = Table(title=f"deploy for {fmt_bytes(budget.ram_bytes)} ({budget.decoding} decoding, drop ≤ "
                    f"{100 * budget.max_drop:g} pts)")
    for col in ("task", "file", "score", "peak RSS", "tok/s", "latency s", "why"):
        t.add_column(col, justify="right" if col in ("score", "peak RSS", "tok/s", "latency s") else "left")
    for p in rec.picks:
        r = p.row
        if r is None:
            t.add_row(p.task, "—", "—", "—", "—", "—", p.why)
            continue
        lat = r["tasks"][p.task].get("latency_s")
        t.add_row(p.task, f"{r['model']} {r['level']} ({r['imatrix']})", f"{100 * value(r, p.task, budget.decoding):.1f}",
                  fmt_bytes(r["peak_rss_bytes"]), f"{r.get('tg_tok_s', 0):.1f}", "—" if lat is None else f"{lat:.2f}",
                  p.why)
    t.caption = (f"loaded together: {fmt_bytes(rec.together_bytes)}, "
                 f"{'fits' if rec.fits_together else 'does NOT fit'}; " + " ".join(rec.notes))
    print_table(t)
    if routes_out:
        plain(out, f"routes written to {routes_out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..bench.tradeoff import DEFAULT_FIDELITY_WINDOWS, DEFAULT_LADDER, IMATRIX_SOURCES, REMEASURABLE
    from ..bench.tradeoff_analysis import DEFAULT_TOLERANCE, DEVICES

    t = sub.add_parser("tradeoff", help="accuracy against size, speed and memory per task across a quantization ladder")
    t.add_argument("models", nargs="+", metavar="MODEL.gguf|LADDER_DIR",
                   help="an F16 GGUF (its ladder is made), a folder of levels, or quantized GGUF files")
    t.add_argument("-o", "--output", required=True, help="run folder (resumable: a rerun skips finished cells)")
    t.add_argument("--tasks", type=values.task_list, default="all")
    t.add_argument("--n", type=values.count, default=DEFAULT_SWEEP_N,
                   help=f"test samples per task (default {DEFAULT_SWEEP_N})")
    t.add_argument("--data", help="task data folder (default: the synthetic suite, written into the run folder)")
    t.add_argument("--levels", type=values.level_list, default=DEFAULT_LADDER,
                   help=f"ladder made from an F16 input (default {','.join(DEFAULT_LADDER)})")
    t.add_argument("--imatrix", type=values.names_from(IMATRIX_SOURCES, "importance-matrix sources"), default=IMATRIX_SOURCES,
                   help=f"importance-matrix sources, each its own ladder (default {','.join(IMATRIX_SOURCES)}): "
                        "radiology = our calibration reports, generic = English prose, none")
    t.add_argument("--imatrix-levels", type=values.level_list,
                   help="compare the other sources with the first at these levels only (default: every level), "
                        "e.g. q3_k_m,q2_k")
    t.add_argument("--fidelity-windows", type=values.count, default=DEFAULT_FIDELITY_WINDOWS,
                   help=f"held-out windows of 512 tokens for KLD (default {DEFAULT_FIDELITY_WINDOWS})")
    t.add_argument("--strict-only", action="store_true", help="skip the grammar-constrained scores")
    t.add_argument("--tolerance", type=_fraction, default=DEFAULT_TOLERANCE,
                   help="a level holds a task when within this of F16 or inside F16's interval (default 0.01)")
    t.add_argument("-t", "--threads", type=values.threads, default=os.cpu_count())
    t.add_argument("--seed", type=values.seed, default=0)
    t.add_argument("--report-only", action="store_true",
                   help="measure nothing: the table and report of the cells done so far")
    t.add_argument("--remeasure", type=values.names_from(REMEASURABLE, "cells to measure again"), default=(),
                   help=f"measure these cells again though done ({','.join(REMEASURABLE)}): the machine-bound "
                        "figures, e.g. on a quiet machine after a sweep shared it; the new records replace the old")
    t.add_argument("--no-png", action="store_true", help="Markdown and CSV only (no matplotlib)")
    t.add_argument("--json", action="store_true")
    t.set_defaults(func=cmd_tradeoff)

    r = sub.add_parser("recommend", help="which model and level to deploy per task for a device budget")
    r.add_argument("run", help="a tradeoff run folder (or its tradeoff.json)")
    r.add_argument("--ram", type=parse_size, help="memory for the service, e.g. 4G")
    r.add_argument("--device", choices=sorted(DEVICES), help="a named device profile (its RAM less its OS's share)")
    r.add_argument("--min-tok-s", type=values.tok_s, help="decode at least this fast")
    r.add_argument("--max-latency", type=values.duration, help="one request within this, e.g. 2s")
    r.add_argument("--max-drop", type=_fraction, default=DEFAULT_TOLERANCE,
                   help="accuracy given up against F16, at most (default 0.01; inside F16's interval also holds)")
    r.add_argument("--decoding", choices=("grammar", "strict"),
                   help="which scores to rank on (default: grammar, the assistant's deployment mode, where the "
                        "sweep measured it for every file; else strict)")
    r.add_argument("--bench", help="radlite bench results JSONL measured on the device: its tg tok/s replace ours")
    r.add_argument("--routes-out", help="write the choice as an assistant routes file")
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=cmd_recommend)
