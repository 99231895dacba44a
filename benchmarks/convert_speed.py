"""Conversion cost: wall time and peak RSS of ``radlite convert`` per output type.

    python -m benchmarks.convert_speed [--checkpoint DIR] [--outtypes f16,q8_0] [-r 3]
        [--with-llama-cpp]

Without ``--checkpoint`` it makes (once, cached under ``models/``) the full-size random
checkpoint with the exact Qwen2.5-3B-Instruct shapes. Each conversion runs in its own
process so its peak RSS is measured alone (``wait4``); the first run warms the page
cache and is discarded. With ``--with-llama-cpp``, llama.cpp's own converter runs on the
same checkpoint in the same session, side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.bench.measure import run_measured
from radlite_edge.results import Result, append_jsonl
from radlite_edge.synth.models import SPECS, is_current, write_checkpoint

from . import llama_cpp_ref


def ensure_checkpoint(models: Path, console: Console) -> Path:
    spec = SPECS["qwen2.5-3b"]
    target = models / spec.name
    if not is_current(target, spec, seed=0, shard_bytes=4 << 30):
        console.print(f"writing the full-size {spec.name} random checkpoint to {target} (about a minute)")
        write_checkpoint(spec, target, seed=0, shard_bytes=4 << 30)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--models", type=Path, default=Path("models"), help="cache for the synthetic checkpoint")
    ap.add_argument("--outtypes", default="f16,q8_0")
    ap.add_argument("-r", "--reps", type=int, default=2)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--with-llama-cpp", action="store_true",
                    help="run llama.cpp's convert_hf_to_gguf.py side by side (make llama-cpp-src)")
    ap.add_argument("--workdir", type=Path, default=None, help="where outputs go (deleted after each run)")
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)

    ckpt = args.checkpoint or ensure_checkpoint(args.models, console)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="radlite-convert-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.print(f"machine: {machine.one_line()}")
    console.print(f"checkpoint: {ckpt} · reps {args.reps} (+1 warm-up) · {args.threads} threads")

    # each tool: (output, outtype) -> (argv, environment or None for this one's)
    tools = [("radlite", lambda o, t: ([sys.executable, "-m", "radlite_edge.cli", "convert", str(ckpt), "-o", str(o),
                                        "--outtype", t, "-t", str(args.threads)], None))]
    if args.with_llama_cpp:
        if llama_cpp_ref.find_source() is None:
            console.print("llama.cpp source not found: run `make llama-cpp-src` first")
            return 2
        tools.append(("llama.cpp", lambda o, t: llama_cpp_ref.command(ckpt, o, t)))
    table = Table(title="HF checkpoint → GGUF (median of reps, ± sample stdev)")
    for col in ("tool", "outtype", "wall s", "peak RSS GiB", "GiB out"):
        table.add_column(col)
    records = []
    for outtype in args.outtypes.split(","):
        for tool, make_cmd in tools:
            out = workdir / f"bench-{tool}-{outtype}.gguf"
            walls, rss, size = [], [], 0
            for rep in range(args.reps + 1):
                wall, peak = run_measured(*make_cmd(out, outtype))
                size = out.stat().st_size
                out.unlink()
                if rep:  # the first run warms the page cache
                    walls.append(wall)
                    rss.append(peak)
            sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0  # noqa: E731
            table.add_row(tool, outtype, f"{statistics.median(walls):.1f} ± {sd(walls):.1f}",
                          f"{statistics.median(rss) / 2**30:.3f} ± {sd(rss) / 2**30:.3f}", f"{size / 2**30:.3f}")
            params = {"tool": tool, "checkpoint": str(ckpt), "threads": args.threads}
            records.append(Result.from_samples(walls, model=ckpt.name, level=outtype.upper(), benchmark="convert",
                                               metric="wall_s", unit="s", params=params))
            records.append(Result.from_samples(rss, model=ckpt.name, level=outtype.upper(), benchmark="convert",
                                               metric="peak_rss_bytes", unit="B", params=params))
            console.print(f"{tool} {outtype}: {statistics.median(walls):.1f} s, {statistics.median(rss) / 2**30:.3f} GiB peak")
    console.print(table)
    append_jsonl(args.results, records)
    console.print(f"records appended to {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
