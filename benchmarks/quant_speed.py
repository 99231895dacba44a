"""The C quantizers against the gguf library's numpy, side by side in one run.

    python -m benchmarks.quant_speed [--rows 2048 --cols 2048] [-r 5]

Each repetition quantizes the same float32 matrix with both implementations (the C
kernel on 1 thread and on every usable CPU); the bytes are checked equal, and the
median time, its spread and the speed-up ratio are printed with the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.convert.quants import NATIVE_TYPES, encode, reference_encode
from radlite_edge.results import Result, append_jsonl


def _time(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("-r", "--reps", type=int, default=5)
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    data = (0.02 * np.random.default_rng(0).standard_normal((args.rows, args.cols))).astype(np.float32)
    mvals = data.size / 1e6
    console.print(f"machine: {machine.one_line()}")
    console.print(f"matrix {args.rows}x{args.cols} float32 ({data.nbytes / 2**20:.0f} MiB), {args.reps} reps, median ± stdev")

    table = Table(title="block quantizers: Mvalues/s (median ± stdev) and speed-up over gguf numpy")
    for col in ("type", "gguf numpy", "C 1 thread", f"C {threads} threads", "speed-up 1t", f"speed-up {threads}t"):
        table.add_column(col, justify="right")
    records = []
    for qtype in NATIVE_TYPES:
        ref = reference_encode(data, qtype).view(np.uint8).ravel()
        assert np.array_equal(encode(data, qtype, n_threads=1), ref), f"{qtype.name}: bytes differ"
        t_np = _time(lambda: reference_encode(data, qtype), args.reps)
        t_c1 = _time(lambda: encode(data, qtype, n_threads=1), args.reps)
        t_cn = _time(lambda: encode(data, qtype, n_threads=threads), args.reps)
        med = statistics.median
        fmt = lambda ts: f"{mvals / med(ts):.0f} ± {statistics.stdev([mvals / t for t in ts]):.0f}"  # noqa: E731
        table.add_row(qtype.name, fmt(t_np), fmt(t_c1), fmt(t_cn), f"{med(t_np) / med(t_c1):.1f}x",
                      f"{med(t_np) / med(t_cn):.1f}x")
        for impl, ts, n in (("gguf-numpy", t_np, 1), ("c", t_c1, 1), ("c", t_cn, threads)):
            records.append(Result.from_samples([mvals / t for t in ts], model=f"{args.rows}x{args.cols}",
                                               level=qtype.name, benchmark="quantize", metric="mvalues_per_s",
                                               unit="Mvalues/s", params={"impl": impl, "threads": n}))
    console.print(table)
    append_jsonl(args.results, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
