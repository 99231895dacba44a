"""Verbs that make and read model files: synth, convert, merge, export-lora, inspect."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from ..convert.gguf_to_hf import IMPORT_DTYPES
from ..convert.hf_to_gguf import conversion_outtypes
from ..convert.lora_gguf import EXPORT_TYPES
from ..convert.merge import MERGE_DTYPES
from ..lora_recipe import RADLITE_LORA
from ..synth.models import DEFAULT_MODELS, SPECS
from . import values
from ..fileio import FOLDER, INTO, claim_output
from .render import bytes_progress, err, out, parse_size, plain, print_json, print_result


def cmd_synth(args: argparse.Namespace) -> int:
    from ..synth.models import checkpoint_bytes, get_spec, is_current, write_checkpoint

    specs = [get_spec(name) for name in args.models]
    outdir = claim_output(args.output, step="synth", kind=INTO)
    if args.adapter:
        made = _synth_adapters(specs, outdir, args)
        targets = []
    else:
        made = []
        targets = [claim_output(outdir / spec.name, step="synth", kind=FOLDER) for spec in specs]
    for spec, target in zip(specs, targets):
        total = checkpoint_bytes(spec, seed=args.seed)
        kept = not args.force and is_current(target, spec, seed=args.seed, shard_bytes=args.shard_size)
        if kept:
            plain(err, f"{target}: up to date (seed {args.seed}), kept; --force to rewrite")
        else:
            with bytes_progress() as bar:
                task = bar.add_task(f"synth {spec.name}", total=total)
                write_checkpoint(spec, target, seed=args.seed, shard_bytes=args.shard_size,
                                 progress=lambda n: bar.advance(task, n))
        made.append({"path": str(target), "model": spec.name, "arch": spec.arch, "bytes": total, "skipped": kept,
                     "text": f"{target}: {spec.arch} checkpoint, {total / 1e9:.3f} GB of bf16 weights"})
    if args.json:
        print_json([{k: v for k, v in m.items() if k != "text"} for m in made])
    else:
        for m in made:
            plain(out, m["text"])
    return 0


def _synth_adapters(specs, outdir: Path, args: argparse.Namespace) -> list[dict]:
    from ..synth.adapters import adapter_bytes, is_synth_adapter, write_adapter
    from ..synth.models import vocab_size_of

    targets = [claim_output(outdir / f"{spec.name}-lora-r{args.rank}", step="synth", kind=FOLDER,
                            owned=is_synth_adapter) for spec in specs]
    made = []
    for spec, target in zip(specs, targets):
        vocab = vocab_size_of(spec, seed=args.seed)
        total = adapter_bytes(spec, vocab, rank=args.rank)
        with bytes_progress() as bar:
            task = bar.add_task(f"adapter {spec.name}", total=total)
            write_adapter(spec, vocab, target, rank=args.rank, alpha=args.alpha, use_rslora=args.rslora,
                          seed=args.seed, progress=lambda n: bar.advance(task, n))
        made.append({"path": str(target), "model": spec.name, "rank": args.rank, "alpha": args.alpha,
                     "bytes": total, "skipped": False,
                     "text": f"{target}: LoRA r={args.rank} alpha={args.alpha:g} on the "
                             f"{len(RADLITE_LORA.target_modules)} projections, {total / 1e6:.1f} MB"})
    return made


def cmd_convert(args: argparse.Namespace) -> int:
    from ..convert.hf_to_gguf import convert_checkpoint

    with bytes_progress() as bar:
        task = bar.add_task(f"convert → {args.outtype}", total=None)
        result = convert_checkpoint(Path(args.checkpoint), Path(args.output), outtype=args.outtype,
                                    n_threads=args.threads, name=args.name, force=args.force,
                                    adapter=Path(args.adapter) if args.adapter else None,
                                    progress=lambda done, total: bar.update(task, completed=done, total=total))
    for note in [] if args.json else result.notes:
        err.print(f"note: {note}")
    types = ", ".join(f"{k} {v}" for k, v in sorted(result.types.items()))
    return print_result(args, result, f"{result.path}: {result.arch} {result.level}, {result.n_tensors} tensors "
                                      f"({types}), {result.bytes / 1e9:.3f} GB in {result.seconds:.1f} s")


def cmd_merge(args: argparse.Namespace) -> int:
    from ..convert.merge import merge_checkpoint

    with bytes_progress() as bar:
        task = bar.add_task("merge", total=None)
        result = merge_checkpoint(Path(args.base), Path(args.adapter), Path(args.output), dtype=args.dtype,
                                  force=args.force,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    return print_result(args, result, f"{result.path}: {result.n_merged} LoRA pairs merged, {result.n_replaced} "
                                      f"modules replaced, {result.bytes / 1e9:.3f} GB in {result.seconds:.1f} s")


def cmd_export_lora(args: argparse.Namespace) -> int:
    from ..convert.lora_gguf import export_lora

    result = export_lora(Path(args.adapter), Path(args.base), Path(args.output), outtype=args.outtype,
                         force=args.force)
    folded = f", {result.rescaled} with their scale folded into B" if result.rescaled else ""
    return print_result(args, result, f"{result.path}: GGUF LoRA, {result.n_pairs} pairs (alpha {result.alpha:g}"
                                      f"{folded}), {result.bytes / 1e6:.1f} MB")


def cmd_import(args: argparse.Namespace) -> int:
    from ..convert.gguf_to_hf import import_gguf

    with bytes_progress() as bar:
        task = bar.add_task("import", total=None)
        result = import_gguf(Path(args.model), Path(args.output), dtype=args.dtype, force=args.force,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    return print_result(args, result, f"{result.path}: {result.arch} checkpoint, {result.n_tensors} tensors, "
                                      f"{result.n_params:,} parameters, {result.bytes / 1e9:.3f} GB in "
                                      f"{result.seconds:.1f} s")


def tensor_types_table(summary) -> Table:
    table = Table(title=f"{summary.path.name}: {summary.arch}")
    for col in ("type", "tensors", "params", "MiB", "share"):
        table.add_column(col, justify="right" if col != "type" else "left")
    total = sum(t["bytes"] for t in summary.by_type.values()) or 1
    for name, row in sorted(summary.by_type.items(), key=lambda kv: -kv[1]["bytes"]):
        table.add_row(name, str(row["tensors"]), f"{row['params']:,}", f"{row['bytes'] / 2**20:.2f}",
                      f"{100 * row['bytes'] / total:.1f}%")
    return table


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..convert.inspect_gguf import summarize

    summary = summarize(Path(args.file))
    if args.json:
        print_json(summary.to_dict())
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
    out.print(tensor_types_table(summary))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("synth", help="write the embedded default models (tiny, or full-size random weights)")
    s.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), metavar="MODEL",
                   help=f"one or more of {', '.join(SPECS)} (default: {' and '.join(DEFAULT_MODELS)})")
    s.add_argument("-o", "--output", default="models", help="directory to write MODEL/ folders into (default: models)")
    s.add_argument("--seed", type=values.seed, default=0)
    s.add_argument("--shard-size", type=parse_size, default=None, help="split weights into shards of this size (4G)")
    s.add_argument("--force", action="store_true", help="rewrite even if an identical checkpoint is there")
    s.add_argument("--adapter", action="store_true",
                   help="write a random peft LoRA adapter for each MODEL instead (to DIR/MODEL-lora-rR)")
    s.add_argument("--rank", type=values.rank, default=RADLITE_LORA.r,
                   help=f"adapter rank (default {RADLITE_LORA.r}, as RadLite)")
    s.add_argument("--alpha", type=values.alpha, default=RADLITE_LORA.alpha,
                   help=f"adapter lora_alpha (default {RADLITE_LORA.alpha:g}, as RadLite)")
    s.add_argument("--rslora", action="store_true", help="mark the adapter use_rslora (scale alpha/sqrt(r))")
    s.add_argument("--json", action="store_true", help="print what was written as JSON")
    s.set_defaults(func=cmd_synth)

    c = sub.add_parser("convert", help="convert an HF safetensors checkpoint to GGUF")
    c.add_argument("checkpoint", help="HF checkpoint directory (config.json, tokenizer.json, *.safetensors)")
    c.add_argument("-o", "--output", required=True, help="output FILE.gguf")
    c.add_argument("--outtype", default="f16", choices=conversion_outtypes(), type=str.lower)
    c.add_argument("-t", "--threads", type=values.threads, default=os.cpu_count(), help="quantizer threads")
    c.add_argument("--name", help="general.name in the GGUF (default: the checkpoint folder's name)")
    c.add_argument("--adapter", help="peft LoRA adapter folder to merge while converting (no merged copy on disk)")
    c.add_argument("--force", action="store_true", help="convert even if the output is up to date")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=cmd_convert)

    m = sub.add_parser("merge", help="merge a peft LoRA adapter into its base checkpoint (no torch needed)")
    m.add_argument("--base", required=True, help="base HF checkpoint directory")
    m.add_argument("--adapter", required=True, help="peft adapter directory (adapter_config.json + safetensors)")
    m.add_argument("-o", "--output", required=True, help="merged checkpoint directory to write")
    m.add_argument("--dtype", choices=MERGE_DTYPES, type=str.lower, help="stored dtype (default: the base's)")
    m.add_argument("--force", action="store_true", help="merge even if the output is up to date")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_merge)

    x = sub.add_parser("export-lora", help="write a peft LoRA adapter as a GGUF LoRA for llama.cpp")
    x.add_argument("adapter", help="peft adapter directory")
    x.add_argument("--base", required=True, help="the base HF checkpoint it was trained on")
    x.add_argument("-o", "--output", required=True, help="output adapter.gguf")
    x.add_argument("--outtype", default=EXPORT_TYPES[0], choices=EXPORT_TYPES, type=str.lower)
    x.add_argument("--force", action="store_true", help="export even if the output is up to date")
    x.add_argument("--json", action="store_true")
    x.set_defaults(func=cmd_export_lora)

    im = sub.add_parser("import", help="turn a GGUF model back into an HF checkpoint (to fine-tune any GGUF)")
    im.add_argument("model", help="model GGUF (any level: it is dequantized)")
    im.add_argument("-o", "--output", required=True, help="checkpoint folder to write")
    im.add_argument("--dtype", choices=IMPORT_DTYPES, default=IMPORT_DTYPES[0], type=str.lower,
                    help=f"stored dtype (default {IMPORT_DTYPES[0]})")
    im.add_argument("--force", action="store_true", help="import even if the output is up to date")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_import)

    i = sub.add_parser("inspect", help="show a GGUF file's architecture, metadata and tensor types")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)
