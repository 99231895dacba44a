"""Verbs of the quantization ladder: quantize, imatrix, fidelity."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.table import Table

from ..bench.fidelity import DEFAULT_CTX as FIDELITY_CTX
from ..convert.imatrix import DEFAULT_CHUNK, DEFAULT_CHUNKS
from ..levels import LEVELS
from ..results import DEFAULT_RESULTS
from . import values
from .render import bytes_progress, count_progress, err, plain, print_json, print_result, print_table


def cmd_quantize(args: argparse.Namespace) -> int:
    from ..convert.quantize import quantize_ladder
    from ..fileio import INTO, claim_output

    given = [] if args.imatrix is None or args.imatrix.lower() == "auto" else [args.imatrix]
    claim_output(args.output, [args.model, *given], step="quantize", kind=INTO)

    with bytes_progress() as bar:
        task = bar.add_task("quantize", total=None)
        results = quantize_ladder(
            Path(args.model), args.levels, Path(args.output), imatrix=args.imatrix, n_threads=args.threads,
            name=args.name, force=args.force,
            on_level=lambda level, path: bar.update(task, description=f"quantize → {level.name}", completed=0),
            on_bytes=lambda n: bar.update(task, completed=n),
            on_imatrix=lambda n: bar.update(task, description=f"imatrix auto: {n} chunks"),
        )
    if args.json:
        print_json([r.to_dict() for r in results])
        return 0
    table = Table(title=f"{args.model} → {args.output}")
    for col in ("level", "file", "GB", "GiB", "bits/w", "seconds", ""):
        table.add_column(col, justify="left" if col in ("level", "file", "") else "right")
    for r in results:
        table.add_row(r.level, r.path.name, f"{r.bytes / 1e9:.3f}", f"{r.bytes / 2**30:.3f}", f"{r.bits_per_weight:.2f}",
                      f"{r.seconds:.1f}", "kept" if r.skipped else "made")
    print_table(table)
    return 0


def cmd_imatrix(args: argparse.Namespace) -> int:
    from ..convert.imatrix import make_imatrix

    with count_progress() as bar:
        task = bar.add_task("imatrix chunks", total=args.chunks)
        result = make_imatrix(Path(args.model), Path(args.output), calib=Path(args.calib) if args.calib else None,
                              chunk_size=args.chunk, max_chunks=args.chunks, n_threads=args.threads, force=args.force,
                              progress=lambda n: bar.update(task, completed=n))
    return print_result(args, result, f"{result.path}: importance matrix of {result.n_entries} weights from "
                                      f"{result.n_tokens} tokens ({result.chunk_count} chunks of {result.chunk_size}) "
                                      f"of {', '.join(result.datasets)} in {result.seconds:.1f} s")


def cmd_fidelity(args: argparse.Namespace) -> int:
    from ..bench.fidelity import fidelity_table, measure_fidelity, to_results
    from ..errors import UserError
    from ..fileio import claim_output
    from ..gguf_file import gguf_type
    from ..identity import identify_model
    from ..results import append_jsonl, is_results_file

    levels, skipped = [], []
    for path in map(Path, args.levels):  # a shell glob over a ladder folder also finds its imatrix
        kind = gguf_type(path)
        (levels if kind == "model" else skipped).append(f"{path}: a GGUF of type {kind!r}, not a model" if kind != "model"
                                                        else path)
    if not levels:
        raise UserError(skipped[0])
    for note in skipped:
        plain(err, f"note: {note}; skipped")
    results = claim_output(args.results, [Path(args.reference), *levels], step="fidelity", flag="--results",
                           owned=is_results_file)
    with count_progress() as bar:
        task = bar.add_task("fidelity windows", total=args.chunks)
        rows, facts = measure_fidelity(Path(args.reference), levels,
                                       text=Path(args.text) if args.text else None, ctx=args.ctx,
                                       max_windows=args.chunks, n_threads=args.threads,
                                       progress=lambda windows, positions: bar.update(task, completed=windows))
    records = to_results(rows, facts, reference=identify_model(Path(args.reference)))
    append_jsonl(results, records)
    if args.json:
        print_json({**facts, "levels": [r.to_dict() for r in rows]})
    else:
        print_table(fidelity_table(rows, facts))
        plain(err, f"{len(records)} records appended to {args.results}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser("quantize", help="make quantization levels from an F16/BF16 GGUF with llama.cpp's quantizer")
    q.add_argument("model", help="F16, BF16 or F32 GGUF (from radlite convert)")
    q.add_argument("--levels", required=True,
                   help=f"comma-separated, e.g. q8_0,q6_k,q5_k_m,q4_k_m,q3_k_m,q2_k; any of "
                        f"{', '.join(lv.name.lower() for lv in LEVELS)}")
    q.add_argument("--imatrix", help="importance matrix GGUF (radlite imatrix), or 'auto' to compute one on the "
                                     "embedded radiology text (needed by "
                                     f"{', '.join(lv.name.lower() for lv in LEVELS if lv.needs_imatrix)})")
    q.add_argument("-t", "--threads", type=values.threads, default=os.cpu_count(), help="quantizer threads")
    q.add_argument("-o", "--output", required=True, help="directory for NAME-LEVEL.gguf files")
    q.add_argument("--name", help="NAME in the output file names (default: the input's, less its level)")
    q.add_argument("--force", action="store_true", help="quantize even if an output is up to date")
    q.add_argument("--json", action="store_true", help="print the results as JSON")
    q.set_defaults(func=cmd_quantize)

    im = sub.add_parser("imatrix", help="importance matrix on radiology calibration text, for the quantizer")
    im.add_argument("model", help="model GGUF (F16/BF16/F32), or an HF checkpoint folder (converted to F16 first)")
    im.add_argument("--calib", help="calibration text file (default: the embedded synthetic radiology reports)")
    im.add_argument("-o", "--output", required=True, help="output imatrix.gguf")
    im.add_argument("-c", "--ctx", "--chunk", dest="chunk", type=values.tokens, default=DEFAULT_CHUNK,
                    help=f"tokens per chunk, each from an empty cache (default {DEFAULT_CHUNK})")
    im.add_argument("--chunks", type=values.count, default=DEFAULT_CHUNKS,
                    help=f"at most this many chunks (default {DEFAULT_CHUNKS})")
    im.add_argument("-t", "--threads", type=values.threads, default=os.cpu_count())
    im.add_argument("--force", action="store_true", help="recompute even if the output is up to date")
    im.add_argument("--json", action="store_true")
    im.set_defaults(func=cmd_imatrix)

    f = sub.add_parser("fidelity", help="KL divergence, top-1 agreement and perplexity of levels against F16")
    f.add_argument("reference", help="the F16 (or BF16/F32) GGUF")
    f.add_argument("levels", nargs="+", metavar="LEVEL.gguf", help="quantized GGUF files of the same model")
    f.add_argument("--text", help="held-out text file (default: embedded synthetic radiology reports, held out)")
    f.add_argument("-c", "--ctx", type=values.tokens, default=FIDELITY_CTX,
                   help=f"tokens per window, each from an empty cache (default {FIDELITY_CTX})")
    f.add_argument("--chunks", type=values.count, default=None, help="at most this many windows (default: the whole text)")
    f.add_argument("-t", "--threads", type=values.threads, default=os.cpu_count())
    f.add_argument("--results", default=str(DEFAULT_RESULTS), help=f"results JSONL to append to (default {DEFAULT_RESULTS})")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fidelity)
