"""The quantization ladder for the full-size Qwen2.5-3B-shaped model: size and bits per
weight per level next to the paper's Q4_K_M, and the time to make each level.

    python -m benchmarks.quantize_ladder [--checkpoint DIR] [--models DIR] [--levels q8_0,...]
        [-t 2] [-r 1] [--imatrix-chunks 8] [--with-llama-quantize [--ref-levels q8_0,q4_k_m,q2_k]]

Without ``--checkpoint`` it makes (once, cached under ``--models``) the random checkpoint
with the exact Qwen2.5-3B-Instruct shapes, converts it to F16 with ``radlite convert``,
reads the F16 file once so the page cache is warm, and times llama.cpp's quantizer
(``llama_model_quantize``, as ``radlite quantize`` calls it) per level; the IQ levels get
an importance matrix computed on the embedded radiology text, timed too. With
``--with-llama-quantize`` llama.cpp's own ``llama-quantize`` (``make llama-quantize``) makes
the same levels side by side, and the two files are compared byte for byte. Outputs are
deleted after measuring unless ``--keep``.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.bench.throughput import warm_page_cache
from radlite_edge.convert.hf_to_gguf import convert_checkpoint
from radlite_edge.convert.imatrix import make_imatrix, read_imatrix
from radlite_edge.convert.inspect_gguf import summarize
from radlite_edge.convert.quantize import llama_quantize, parse_levels
from radlite_edge.results import Result, append_jsonl

from .convert_speed import ensure_checkpoint
from .llama_cpp_ref import find_tool

LADDER = "q8_0,q6_k,q5_k_m,q5_0,q4_k_m,q4_k_s,q4_0,iq4_xs,q3_k_m,q3_k_s,q2_k,iq3_xxs,iq2_xs"
PAPER_Q4_K_M_GB = 1.8  # RadLite: Qwen2.5-3B Q4_K_M
# /work/shared/ANCHORS.md: llama-quantize from F16, 2 threads, no imatrix, same shapes: (s, GiB, bits/weight)
ANCHORS = {"Q8_0": (25.7, 3.060, 8.50), "Q6_K": (89.8, 2.364, 6.56), "Q5_K_M": (135.5, 2.072, 5.75),
           "Q4_K_M": (102.9, 1.797, 4.99), "Q4_0": (15.6, 1.698, 4.71), "Q3_K_M": (60.5, 1.481, 4.11),
           "Q2_K": (71.1, 1.187, 3.29), "IQ4_XS": (292.1, 1.633, 4.53)}


def _fmt(samples: list[float]) -> str:
    if not samples:
        return "—"
    sd = f" ± {statistics.stdev(samples):.1f}" if len(samples) > 1 else ""
    return f"{statistics.median(samples):.1f}{sd}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, help="HF checkpoint (default: the synthetic qwen2.5-3b)")
    ap.add_argument("--models", type=Path, default=Path("models"), help="cache for the synthetic checkpoint")
    ap.add_argument("--workdir", type=Path, help="F16 and level files (default: MODELS/ladder-bench)")
    ap.add_argument("--levels", default=LADDER)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--reps", type=int, default=1, help="timed runs per level (median reported)")
    ap.add_argument("--imatrix-chunks", type=int, default=8, help="512-token chunks for the IQ levels' imatrix")
    ap.add_argument("--with-llama-quantize", action="store_true", help="llama.cpp's llama-quantize side by side")
    ap.add_argument("--ref-levels", default="q8_0,q4_k_m,q2_k", help="levels llama-quantize also makes")
    ap.add_argument("--keep", action="store_true", help="keep the level files")
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True, width=160)

    levels = parse_levels(args.levels)
    ref_levels = {lv.name for lv in parse_levels(args.ref_levels)} if args.with_llama_quantize else set()
    llama_quantize_bin = find_tool("llama-quantize") if ref_levels else None
    if ref_levels and llama_quantize_bin is None:
        console.print("llama-quantize not found: run `make llama-quantize` first")
        return 2
    ckpt = args.checkpoint or ensure_checkpoint(args.models, console)
    workdir = args.workdir or args.models / "ladder-bench"
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"machine: {machine.one_line()}")
    f16 = workdir / f"{ckpt.name}-F16.gguf"
    conv = convert_checkpoint(ckpt, f16, outtype="f16", n_threads=args.threads)
    console.print(f"{f16}: F16 {'kept (up to date)' if conv.skipped else f'made in {conv.seconds:.1f} s'}, "
                  f"{conv.bytes / 2**30:.3f} GiB; read once to warm the page cache in {warm_page_cache(f16):.1f} s")

    records: list[Result] = []
    base = {"source": f16.name, "threads": args.threads, "checkpoint": str(ckpt)}
    imatrix = None
    if any(lv.needs_imatrix for lv in levels):
        path = workdir / f"{ckpt.name}-imatrix.gguf"
        made = make_imatrix(f16, path, chunk_size=512, max_chunks=args.imatrix_chunks, n_threads=args.threads)
        imatrix = (path, read_imatrix(path))
        console.print(f"{path}: imatrix of {made.n_entries} weights from {made.n_tokens} tokens "
                      f"({made.chunk_count} x 512) in {made.seconds:.1f} s{' (kept)' if made.skipped else ''}")
        if not made.skipped:
            records.append(Result(model=ckpt.name, level="F16", benchmark="imatrix", metric="wall_s",
                                  value=made.seconds, unit="s",
                                  params={**base, "chunks": made.chunk_count, "chunk_size": 512}))

    table = Table(title=f"{ckpt.name}: F16 → levels, llama.cpp's quantizer, {args.threads} threads, "
                        f"median of {args.reps} (± stdev)")
    for col in ("level", "GB", "GiB", "bits/w", "radlite s", "llama-quantize s", "same bytes",
                "ANCHORS s", "ANCHORS GiB", "ANCHORS bits/w", "load 1 min"):
        table.add_column(col, justify="left" if col == "level" else "right")
    for level in levels:
        uses_imatrix = imatrix if level.needs_imatrix else None
        out = workdir / f"{ckpt.name}-{level.name}.gguf"
        ref = workdir / f"{ckpt.name}-{level.name}.llama-quantize.gguf"
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            llama_quantize(f16, out, level, n_threads=args.threads, imatrix=uses_imatrix)
            ours.append(time.perf_counter() - t0)
            if level.name in ref_levels:
                cmd = [str(llama_quantize_bin)] + (["--imatrix", str(uses_imatrix[0])] if uses_imatrix else [])
                t0 = time.perf_counter()
                subprocess.run(cmd + [str(f16), str(ref), level.name, str(args.threads)], check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                theirs.append(time.perf_counter() - t0)
        summary = summarize(out)
        same = "—"
        if theirs:
            same = "yes" if filecmp.cmp(out, ref, shallow=False) else "NO"
            ref.unlink()
        load = os.getloadavg()[0]
        anchor = ANCHORS.get(level.name)
        table.add_row(level.name, f"{summary.file_bytes / 1e9:.3f}", f"{summary.file_bytes / 2**30:.3f}",
                      f"{summary.bits_per_weight:.2f}", _fmt(ours), _fmt(theirs), same,
                      f"{anchor[0]:.1f}" if anchor else "—", f"{anchor[1]:.3f}" if anchor else "—",
                      f"{anchor[2]:.2f}" if anchor else "—", f"{load:.2f}")
        params = {**base, "imatrix": uses_imatrix[0].name if uses_imatrix else None, "loadavg_1min": load}
        records.append(Result.from_samples(ours, model=ckpt.name, level=level.name, benchmark="quantize",
                                           metric="wall_s", unit="s", keep=True, params={**params, "tool": "radlite"}))
        if theirs:
            records.append(Result.from_samples(theirs, model=ckpt.name, level=level.name, benchmark="quantize",
                                               metric="wall_s", unit="s", keep=True,
                                               params={**params, "tool": "llama-quantize", "same_bytes": same}))
        records.append(Result(model=ckpt.name, level=level.name, benchmark="quantize", metric="file_bytes",
                              value=summary.file_bytes, unit="B", params=params))
        records.append(Result(model=ckpt.name, level=level.name, benchmark="quantize", metric="bits_per_weight",
                              value=summary.bits_per_weight, unit="bit", params=params))
        console.print(f"{level.name}: {summary.file_bytes / 1e9:.3f} GB ({summary.file_bytes / 2**30:.3f} GiB), "
                      f"{summary.bits_per_weight:.2f} bits/w, {_fmt(ours)} s"
                      + (f", llama-quantize {_fmt(theirs)} s, same bytes: {same}" if theirs else ""))
        if not args.keep:
            out.unlink()
    console.print(table)
    console.print(f"paper (RadLite): Qwen2.5-3B Q4_K_M {PAPER_Q4_K_M_GB} GB")
    append_jsonl(args.results, records)
    console.print(f"{len(records)} records appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
