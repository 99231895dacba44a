"""``radlite <verb>``: the one command-line entry point.

Each verb parses its flags here and calls a library function; a ``UserError`` from
anywhere below ends in one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from . import __version__
from .errors import UserError

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _bytes_progress(description: str) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err, transient=False, disable=not err.is_terminal,
    )


def _parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in units else ""
    try:
        return int(float(t[: len(t) - len(unit)]) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M)") from None


# ------------------------------------------------------------------ synth


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth.models import checkpoint_bytes, get_spec, is_current, write_checkpoint

    specs = [get_spec(name) for name in args.models]
    outdir = Path(args.output)
    if args.adapter:
        return _synth_adapters(specs, outdir, args)
    for spec in specs:
        target = outdir / spec.name
        if not args.force and is_current(target, spec, seed=args.seed, shard_bytes=args.shard_size):
            err.print(f"{target}: up to date (seed {args.seed}), skipped")
            continue
        total = checkpoint_bytes(spec, seed=args.seed)
        with _bytes_progress(spec.name) as bar:
            task = bar.add_task(f"synth {spec.name}", total=total)
            write_checkpoint(spec, target, seed=args.seed, shard_bytes=args.shard_size,
                             progress=lambda n: bar.advance(task, n))
        err.print(f"{target}: {spec.arch} checkpoint, {total / 1e9:.3f} GB of bf16 weights")
    return 0


def _synth_adapters(specs, outdir: Path, args: argparse.Namespace) -> int:
    from .synth.adapters import adapter_plan, write_adapter
    from .synth.models import vocab_size_of

    for spec in specs:
        vocab = vocab_size_of(spec, seed=args.seed)
        target = outdir / f"{spec.name}-lora-r{args.rank}"
        total = sum(4 * (a[0] * a[1] + b[0] * b[1]) for _, a, b in adapter_plan(spec, vocab, rank=args.rank))
        with _bytes_progress(spec.name) as bar:
            task = bar.add_task(f"adapter {spec.name}", total=total)
            write_adapter(spec, vocab, target, rank=args.rank, alpha=args.alpha, use_rslora=args.rslora,
                          seed=args.seed, progress=lambda n: bar.advance(task, n))
        err.print(f"{target}: LoRA r={args.rank} alpha={args.alpha:g} on the 7 projections, {total / 1e6:.1f} MB")
    return 0


# ---------------------------------------------------------------- convert


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert.hf_to_gguf import convert_checkpoint

    with _bytes_progress("convert") as bar:
        task = bar.add_task(f"convert → {args.outtype}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = convert_checkpoint(Path(args.checkpoint), Path(args.output), outtype=args.outtype,
                                    n_threads=args.threads, name=args.name, progress=progress, force=args.force,
                                    adapter=Path(args.adapter) if args.adapter else None)
    if args.json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        for note in result.notes:
            err.print(f"note: {note}")
        types = ", ".join(f"{k} {v}" for k, v in sorted(result.types.items()))
        if result.skipped:
            err.print(f"{result.path}: up to date with its inputs (manifest), kept; --force to redo")
        out.print(f"{result.path}: {result.arch} {result.level}, {result.n_tensors} tensors ({types}), "
                  f"{result.bytes / 1e9:.3f} GB in {result.seconds:.1f} s")
    return 0


# ------------------------------------------------------------ LoRA merge


def cmd_merge(args: argparse.Namespace) -> int:
    from .convert.merge import merge_checkpoint

    with _bytes_progress("merge") as bar:
        task = bar.add_task("merge", total=None)
        result = merge_checkpoint(Path(args.base), Path(args.adapter), Path(args.output), dtype=args.dtype,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    if args.json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        out.print(f"{result.path}: {result.n_merged} LoRA pairs merged, {result.n_replaced} modules replaced, "
                  f"{result.bytes / 1e9:.3f} GB in {result.seconds:.1f} s")
    return 0


def cmd_export_lora(args: argparse.Namespace) -> int:
    from .convert.lora_gguf import export_lora

    result = export_lora(Path(args.adapter), Path(args.base), Path(args.output), outtype=args.outtype)
    if args.json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        folded = f", {result.rescaled} with their scale folded into B" if result.rescaled else ""
        out.print(f"{result.path}: GGUF LoRA, {result.n_pairs} pairs (alpha {result.alpha:g}{folded}), "
                  f"{result.bytes / 1e6:.1f} MB")
    return 0


# ------------------------------------------------------- tasks and eval


def cmd_data(args: argparse.Namespace) -> int:
    from .tasks import loaders
    from .tasks.samples import write_jsonl
    from .tasks.synthetic import make_suite

    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)
    if args.data_verb == "synth":
        samples = make_suite(args.n, seed=args.seed)
        name = "synthetic"
    else:
        samples = loaders.load(args.format, Path(args.file), split=args.split, mapping=args.map)
        name = f"{args.format}-{Path(args.file).stem}"
    by_split: dict[str, list] = {}
    for s in samples:
        by_split.setdefault(s.split, []).append(s)
    for split, items in sorted(by_split.items()):
        path = outdir / f"{name}.{split}.jsonl"
        write_jsonl(path, items)
        err.print(f"{path}: {len(items)} samples")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    from .evaluation import EvalSettings, evaluate, group_summaries
    from .tasks.samples import read_dir

    samples = read_dir(Path(args.data))
    settings = EvalSettings(mode=args.mode, grammar=args.grammar, few_shot=args.few_shot, n=args.n, seed=args.seed)
    summaries = []
    for model in args.models:
        if not Path(model).is_file():
            raise UserError(f"{model}: no such model file")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]:.2f} samples/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=err, disable=not err.is_terminal) as bar:
            task = bar.add_task(f"eval {Path(model).name}", total=None, rate=0.0)
            t0, first = [None], [0]

            def progress(done: int, total: int) -> None:
                import time as _time

                if t0[0] is None:
                    t0[0], first[0] = _time.perf_counter(), done
                elapsed = _time.perf_counter() - t0[0]
                bar.update(task, completed=done, total=total, rate=(done - first[0]) / elapsed if elapsed else 0.0)

            summary = evaluate(Path(model), samples, Path(args.output), tasks=args.tasks, settings=settings,
                               n_threads=args.threads, n_parallel=args.parallel, n_ctx=args.ctx_size,
                               repack=bool(args.repack), progress=progress)
        summaries.append(summary)
    if args.json:
        out.print_json(json.dumps(summaries, default=str))
        return 0
    table = Table(title=f"RadLite tasks ({settings.mode}, grammar {'on' if settings.grammar else 'off'}, "
                        f"{settings.few_shot}-shot)")
    table.add_column("task")
    table.add_column("metric")
    for s in summaries:
        table.add_column(s["model"], justify="right")
    for task_name, by_model in group_summaries(summaries).items():
        metric = summaries[0]["tasks"][task_name]["metric"]
        cells = []
        for s in summaries:
            e = s["tasks"][task_name]
            cells.append(f"{e['value']:.3f} [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}] n={e['n']}")
        table.add_row(task_name, metric, *cells)
    out.print(table)
    out.print(f"per-sample records and summaries in {args.output}/")
    return 0


# ---------------------------------------------------------------- inspect


def summary_table(summary) -> Table:
    table = Table(title=f"{summary.path.name}: {summary.arch}")
    for col in ("type", "tensors", "params", "MiB", "share"):
        table.add_column(col, justify="right" if col != "type" else "left")
    total = sum(t["bytes"] for t in summary.by_type.values()) or 1
    for name, row in sorted(summary.by_type.items(), key=lambda kv: -kv[1]["bytes"]):
        table.add_row(name, str(row["tensors"]), f"{row['params']:,}", f"{row['bytes'] / 2**20:.2f}",
                      f"{100 * row['bytes'] / total:.1f}%")
    return table


def cmd_inspect(args: argparse.Namespace) -> int:
    from .convert.inspect_gguf import summarize

    summary = summarize(Path(args.file))
    if args.json:
        out.print_json(json.dumps(summary.to_dict(), default=str))
        return 0
    md = summary.metadata
    out.print(f"[bold]{summary.path}[/bold]")
    out.print(f"architecture {summary.arch} · name {md.get('general.name')} · size label {md.get('general.size_label')}"
              f" · file type {md.get('general.file_type')}")
    out.print(f"{summary.n_tensors} tensors · {summary.n_params:,} parameters · {summary.file_bytes / 2**30:.3f} GiB"
              f" · {summary.bits_per_weight:.2f} bits/weight")
    meta = Table(title="metadata", show_header=False)
    for key in sorted(md):
        value = md[key]
        if key == "tokenizer.chat_template":
            value = f"<{len(str(value))} characters>"
        meta.add_row(key, str(value))
    out.print(meta)
    out.print(summary_table(summary))
    return 0


# --- issue 4: quantize/imatrix/fidelity ---


def _count_progress() -> Progress:
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False, disable=not err.is_terminal)


def _print_table(table: Table) -> None:
    # a pipe gets rich's default 80 columns, which would cut the figures short
    (out if out.is_terminal else Console(soft_wrap=True, width=160)).print(table)


def cmd_quantize(args: argparse.Namespace) -> int:
    from .convert.quantize import quantize_ladder

    with _bytes_progress("quantize") as bar:
        task = bar.add_task("quantize", total=None)
        results = quantize_ladder(
            Path(args.model), args.levels, Path(args.output), imatrix=args.imatrix, n_threads=args.threads,
            name=args.name, force=args.force,
            on_level=lambda level, path: bar.update(task, description=f"quantize → {level.name}", completed=0),
            on_bytes=lambda n: bar.update(task, completed=n),
            on_imatrix=lambda n: bar.update(task, description=f"imatrix auto: {n} chunks"),
        )
    if args.json:
        out.print_json(json.dumps([r.to_dict() for r in results]))
        return 0
    table = Table(title=f"{args.model} → {args.output}")
    for col in ("level", "file", "GB", "GiB", "bits/w", "seconds", ""):
        table.add_column(col, justify="left" if col in ("level", "file", "") else "right")
    for r in results:
        table.add_row(r.level, r.path.name, f"{r.bytes / 1e9:.3f}", f"{r.bytes / 2**30:.3f}", f"{r.bits_per_weight:.2f}",
                      f"{r.seconds:.1f}", "kept" if r.skipped else "made")
    _print_table(table)
    return 0


def cmd_imatrix(args: argparse.Namespace) -> int:
    from .convert.imatrix import make_imatrix

    with _count_progress() as bar:
        task = bar.add_task("imatrix chunks", total=args.chunks)
        result = make_imatrix(Path(args.model), Path(args.output), calib=Path(args.calib) if args.calib else None,
                              chunk_size=args.chunk, max_chunks=args.chunks, n_threads=args.threads, force=args.force,
                              progress=lambda n: bar.update(task, completed=n))
    if args.json:
        out.print_json(json.dumps(result.to_dict()))
        return 0
    if result.skipped:
        err.print(f"{result.path}: up to date with its inputs (manifest), kept; --force to redo")
    out.print(f"{result.path}: importance matrix of {result.n_entries} weights from {result.n_tokens} tokens "
              f"({result.chunk_count} chunks of {result.chunk_size}) of {', '.join(result.datasets)} "
              f"in {result.seconds:.1f} s")
    return 0


def cmd_fidelity(args: argparse.Namespace) -> int:
    from .bench.fidelity import fidelity_table, measure_fidelity, to_results
    from .convert.quantize import model_name
    from .results import append_jsonl

    with _count_progress() as bar:
        task = bar.add_task("fidelity windows", total=args.chunks)
        rows, facts = measure_fidelity(Path(args.reference), [Path(c) for c in args.levels],
                                       text=Path(args.text) if args.text else None, ctx=args.ctx,
                                       max_windows=args.chunks, n_threads=args.threads,
                                       progress=lambda windows, positions: bar.update(task, completed=windows))
    records = to_results(rows, facts, model=model_name(Path(args.reference)))
    append_jsonl(Path(args.results), records)
    if args.json:
        out.print_json(json.dumps({**facts, "levels": [r.to_dict() for r in rows]}))
    else:
        _print_table(fidelity_table(rows, facts))
        err.print(f"{len(records)} records appended to {args.results}")
    return 0


# --- end issue 4 ---


# --- issue 6: bench/report ---


def _repack_list(text: str) -> tuple[bool, ...]:
    from .bench.grid import parse_list

    values = parse_list(text, what="--repack")
    if not set(values) <= {0, 1}:
        raise UserError(f"--repack: {text!r}: each value is 0 or 1")
    return tuple(bool(v) for v in values)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import formats
    from .bench.dashboard import Dashboard, ProgressLines
    from .bench.grid import GridSpec, default_threads, parse_list, run_grid, task_requests
    from .bench.roofline import model_bytes
    from .fileio import atomic_path
    from .machine import one_line
    from .results import append_jsonl

    models = [Path(m) for m in args.models]
    for path in models:  # a typo must not cost the time of making the synthetic models first
        model_bytes(path)
    if args.levels and not args.synthetic:
        raise UserError("--levels goes with --synthetic (the levels of the synthetic models to make)")
    if args.synthetic:
        from .bench.synthetic import ensure_models

        if not args.levels:
            raise UserError("--synthetic needs --levels, e.g. --levels q4_k_m,q8_0")
        models += ensure_models(args.synthetic.split(","), args.levels.split(","), Path(args.models_dir),
                                say=lambda s: err.print(s, markup=False, highlight=False))
    spec = GridSpec(
        models=tuple(models),
        threads=parse_list(args.threads, what="-t", minimum=1) if args.threads else default_threads(),
        n_prompt=parse_list(args.n_prompt, what="-p"), n_gen=parse_list(args.n_gen, what="-n"),
        depth=parse_list(args.depth, what="-d"), reps=args.reps, requests=task_requests(args.tasks),
        n_batch=args.batch_size, n_ubatch=args.ubatch_size, flash_attn=bool(args.flash_attn),
        repack=_repack_list(args.repack), load=not args.no_load, rss=not args.no_rss, warmup=not args.no_warmup,
    )
    if args.tui:
        with Dashboard(err, one_line()) as dashboard:
            results = run_grid(spec, on_event=dashboard)
    else:
        results = run_grid(spec, on_event=ProgressLines(err, one_line()))
    if args.results:
        append_jsonl(Path(args.results), results)
        err.print(f"{len(results)} records appended to {args.results}", markup=False, highlight=False)
    text = formats.render(results, "json" if args.json else args.output_format)
    if args.file:
        with atomic_path(Path(args.file)) as tmp:
            tmp.write_text(text)
    else:
        out.print(text, markup=False, highlight=False, end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .bench.report import make_report

    result = make_report([Path(p) for p in args.results], Path(args.output),
                         formats_wanted=[f.strip() for f in args.formats.split(",") if f.strip()], run=args.run)
    if args.json:
        out.print_json(json.dumps(result.to_dict()))
    else:
        out.print(f"{result.n_records} records of {len(result.runs)} run(s) → "
                  + ", ".join(str(f) for f in result.files), markup=False, highlight=False)
    return 0


# --- end issue 6 ---


# ------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.output), n_threads=args.threads, console=out)


# ------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import engine
    from .convert.hf_to_gguf import conversion_outtypes
    from .synth.models import SPECS

    p = _Parser(prog="radlite", description="RadLite Edge: radiology LMs from checkpoint to the edge")
    p.add_argument("--version", action="version", version=f"radlite-edge {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    s = sub.add_parser("synth", help="write the embedded default models (tiny, or full-size random weights)")
    s.add_argument("models", nargs="*", default=["tiny-qwen2", "tiny-qwen3"], metavar="MODEL",
                   help=f"one or more of {', '.join(SPECS)} (default: the two tiny ones)")
    s.add_argument("-o", "--output", default="models", help="directory to write MODEL/ folders into (default: models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shard-size", type=_parse_size, default=None, help="split weights into shards of this size (4G)")
    s.add_argument("--force", action="store_true", help="rewrite even if an identical checkpoint is there")
    s.add_argument("--adapter", action="store_true",
                   help="write a random peft LoRA adapter for each MODEL instead (to DIR/MODEL-lora-rR)")
    s.add_argument("--rank", type=int, default=64, help="adapter rank (default 64, as RadLite)")
    s.add_argument("--alpha", type=float, default=128.0, help="adapter lora_alpha (default 128, as RadLite)")
    s.add_argument("--rslora", action="store_true", help="mark the adapter use_rslora (scale alpha/sqrt(r))")
    s.set_defaults(func=cmd_synth)

    c = sub.add_parser("convert", help="convert an HF safetensors checkpoint to GGUF")
    c.add_argument("checkpoint", help="HF checkpoint directory (config.json, tokenizer.json, *.safetensors)")
    c.add_argument("-o", "--output", required=True, help="output FILE.gguf")
    c.add_argument("--outtype", default="f16", choices=conversion_outtypes(), type=str.lower)
    c.add_argument("-t", "--threads", type=int, default=os.cpu_count(), help="quantizer threads")
    c.add_argument("--name", help="general.name in the GGUF (default: the checkpoint folder's name)")
    c.add_argument("--adapter", help="peft LoRA adapter folder to merge while converting (no merged copy on disk)")
    c.add_argument("--force", action="store_true", help="convert even if the output is up to date")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=cmd_convert)

    m = sub.add_parser("merge", help="merge a peft LoRA adapter into its base checkpoint (no torch needed)")
    m.add_argument("--base", required=True, help="base HF checkpoint directory")
    m.add_argument("--adapter", required=True, help="peft adapter directory (adapter_config.json + safetensors)")
    m.add_argument("-o", "--output", required=True, help="merged checkpoint directory to write")
    m.add_argument("--dtype", choices=["f32", "f16", "bf16"], help="stored dtype (default: the base's)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_merge)

    x = sub.add_parser("export-lora", help="write a peft LoRA adapter as a GGUF LoRA for llama.cpp")
    x.add_argument("adapter", help="peft adapter directory")
    x.add_argument("--base", required=True, help="the base HF checkpoint it was trained on")
    x.add_argument("-o", "--output", required=True, help="output adapter.gguf")
    x.add_argument("--outtype", default="f32", choices=["f32", "f16", "bf16", "q8_0"], type=str.lower)
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_export_lora)

    dt = sub.add_parser("data", help="task data: the synthetic suite, or public datasets in their own formats")
    dsub = dt.add_subparsers(dest="data_verb", required=True, metavar="VERB")
    ds = dsub.add_parser("synth", help="write the deterministic synthetic suite of the 9 tasks")
    ds.add_argument("--n", type=int, default=500, help="test samples per task (train: n/4, at least 16)")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("-o", "--output", required=True, help="directory for the JSONL files")
    ds.set_defaults(func=cmd_data)
    dl = dsub.add_parser("load", help="convert a public dataset file to task samples")
    dl.add_argument("format", choices=["radnli", "radgraph", "mimic-cxr", "openi", "chexpert", "jsonl", "csv"])
    dl.add_argument("file")
    dl.add_argument("--split", default="test")
    dl.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                    help="generic jsonl/csv: task=NAME, input=COL, reference=COL, id=COL (repeatable)")
    dl.add_argument("-o", "--output", required=True)
    dl.set_defaults(func=cmd_data)

    ev = sub.add_parser("eval", help="evaluate GGUF models on the 9 tasks (resumable, per-sample records)")
    ev.add_argument("models", nargs="+", metavar="MODEL.gguf")
    ev.add_argument("--tasks", default="all", help="comma-separated task names, or all")
    ev.add_argument("--n", type=int, default=None, help="samples per task (default: all test samples)")
    ev.add_argument("--few-shot", type=int, default=0, metavar="K", help="K examples from the train split")
    ev.add_argument("--data", required=True, help="directory of sample JSONL files (radlite data synth -o DIR)")
    ev.add_argument("-o", "--output", default="results", help="directory for records and summaries")
    ev.add_argument("--mode", choices=["fast", "naive"], default="fast",
                    help="fast: shared prefix once, parallel sequences; naive: one Llama call per sample")
    ev.add_argument("--grammar", action=argparse.BooleanOptionalAction, default=True,
                    help="constrain label tasks to their label set (default on)")
    ev.add_argument("-t", "--threads", type=int, default=None)
    ev.add_argument("--parallel", type=int, default=engine.DEFAULT_PARALLEL,
                    help=f"sequences decoded together in fast mode, 1 to {engine.MAX_STEP_ROWS} "
                         f"(default {engine.DEFAULT_PARALLEL})")
    ev.add_argument("--repack", type=int, choices=[0, 1], default=int(engine.DEFAULT_REPACK),
                    help="llama.cpp's CPU weight repacking (default 0: the fast path then equals the naive path "
                         "token for token; 1: faster long generations on some CPUs, outputs may fork at near-ties)")
    ev.add_argument("-c", "--ctx-size", type=int, default=4096)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)

    i = sub.add_parser("inspect", help="show a GGUF file's architecture, metadata and tensor types")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    # --- issue 4: quantize/imatrix/fidelity ---
    from .levels import LEVELS

    q = sub.add_parser("quantize", help="make quantization levels from an F16/BF16 GGUF with llama.cpp's quantizer")
    q.add_argument("model", help="F16, BF16 or F32 GGUF (from radlite convert)")
    q.add_argument("--levels", required=True,
                   help=f"comma-separated, e.g. q8_0,q6_k,q5_k_m,q4_k_m,q3_k_m,q2_k; any of "
                        f"{', '.join(lv.name.lower() for lv in LEVELS)}")
    q.add_argument("--imatrix", help="importance matrix GGUF (radlite imatrix), or 'auto' to compute one on the "
                                     "embedded radiology text (needed by iq3_xxs, iq2_xs)")
    q.add_argument("-t", "--threads", type=int, default=os.cpu_count(), help="quantizer threads")
    q.add_argument("-o", "--output", required=True, help="directory for NAME-LEVEL.gguf files")
    q.add_argument("--name", help="NAME in the output file names (default: the input's, less its level)")
    q.add_argument("--force", action="store_true", help="quantize even if an output is up to date")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(func=cmd_quantize)

    im = sub.add_parser("imatrix", help="importance matrix on radiology calibration text, for the quantizer")
    im.add_argument("model", help="model GGUF (F16/BF16/F32), or an HF checkpoint folder (converted to F16 first)")
    im.add_argument("--calib", help="calibration text file (default: the embedded synthetic radiology reports)")
    im.add_argument("-o", "--output", required=True, help="output imatrix.gguf")
    im.add_argument("--chunk", type=int, default=512, help="tokens per chunk, each from an empty cache (default 512)")
    im.add_argument("--chunks", type=int, default=64, help="at most this many chunks (default 64)")
    im.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    im.add_argument("--force", action="store_true", help="recompute even if the output is up to date")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_imatrix)

    f = sub.add_parser("fidelity", help="KL divergence, top-1 agreement and perplexity of levels against F16")
    f.add_argument("reference", help="the F16 (or BF16/F32) GGUF")
    f.add_argument("levels", nargs="+", metavar="LEVEL.gguf", help="quantized GGUF files of the same model")
    f.add_argument("--text", help="held-out text file (default: embedded synthetic radiology reports, held out)")
    f.add_argument("-c", "--ctx", type=int, default=512, help="tokens per window, each from an empty cache")
    f.add_argument("--chunks", type=int, default=None, help="at most this many windows (default: the whole text)")
    f.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    f.add_argument("--results", default="results/bench.jsonl", help="results JSONL to append to")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fidelity)
    # --- end issue 4 ---

    # --- issue 6: bench/report ---
    b = sub.add_parser("bench", help="tok/s, load time, memory and thread scaling against the memory roofline")
    b.add_argument("models", nargs="*", metavar="MODEL.gguf", help="GGUF files to measure")
    b.add_argument("-t", "--threads", help="thread counts, e.g. 1,2,4 (default: 1, 2, 4, … up to every CPU)")
    b.add_argument("-p", "--n-prompt", default="512", help="prompt lengths for pp tests (0: none; default 512)")
    b.add_argument("-n", "--n-gen", default="128", help="generation lengths for tg tests (0: none; default 128)")
    b.add_argument("-d", "--depth", default="0", help="tokens already in the KV cache before each test (default 0)")
    b.add_argument("-r", "--reps", type=int, default=5, help="repetitions per test (default 5)")
    b.add_argument("-b", "--batch-size", type=int, default=2048, help="logical batch (default 2048, as llama-bench)")
    b.add_argument("-ub", "--ubatch-size", type=int, default=512, help="physical batch (default 512)")
    b.add_argument("-fa", "--flash-attn", type=int, choices=[0, 1], default=0,
                   help="flash attention (default 0, llama-cpp-python's default)")
    b.add_argument("--repack", default="1",
                   help="llama.cpp's CPU weight repacking, as llama-bench --repack: 1, 0 or 1,0 for both side by "
                        "side (default 1, llama.cpp's default; 0 saves the repacked copy's memory)")
    b.add_argument("--tasks", default="all",
                   help="time one RadLite request per task: all, none, or names (default all)")
    b.add_argument("--synthetic", help="also measure full-size random models: qwen2.5-3b, qwen3-4b (comma list)")
    b.add_argument("--levels", help="levels of the --synthetic models, e.g. q4_k_m,q8_0 (made once, cached)")
    b.add_argument("--models-dir", default="models", help="cache of the --synthetic models (default: models)")
    b.add_argument("--no-load", action="store_true", help="skip the cold/warm load times")
    b.add_argument("--no-rss", action="store_true", help="skip the peak-RSS probe (a process of its own)")
    b.add_argument("--no-warmup", action="store_true", help="skip the warm-up run before each test")
    b.add_argument("--tui", action="store_true", help="a live dashboard while it runs (else plain progress lines)")
    b.add_argument("-o", "--output-format", choices=["md", "csv", "json", "jsonl"], default="md",
                   help="what to print on stdout at the end (default md)")
    b.add_argument("--file", help="write that output to FILE instead of stdout")
    b.add_argument("--json", action="store_true", help="same as -o json")
    b.add_argument("--results", default="results/bench.jsonl", help="results JSONL to append to ('' for none)")
    b.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="render bench results as Markdown, CSV and PNG plots")
    rp.add_argument("results", nargs="*", default=["results/bench.jsonl"], help="results JSONL files")
    rp.add_argument("-o", "--output", default="runs/report", help="directory to write into (default runs/report)")
    rp.add_argument("--formats", default="md,csv,png", help="any of md,csv,png (png needs the [report] extra)")
    rp.add_argument("--run", default="all", help="all (latest figure of each kind), latest, or a run id")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)
    # --- end issue 6 ---

    d = sub.add_parser("demo", help="the main job on the embedded default: synth → convert → inspect → generate")
    d.add_argument("-o", "--output", default="runs/demo")
    d.add_argument("-t", "--threads", type=int, default=min(4, os.cpu_count() or 1))
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as e:
        err.print(f"radlite {args.verb}: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("interrupted; no partial output was kept", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
