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

    i = sub.add_parser("inspect", help="show a GGUF file's architecture, metadata and tensor types")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

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
