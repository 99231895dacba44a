"""What one llama_decode call costs by its shape: rows, and the streams they are spread over.

    python -m benchmarks.decode_shape MODEL.gguf [-t 2] [--rows 1,4,7,8,16,32,64,128] [--streams 1,7] [-r 3]

The evaluation runner's time is a sum of such calls (benchmarks/eval_speed.py): a prompt suffix
is one call of its length on one stream; a decode step is one row on each of up to 7
streams; a constrained answer that left its label set is a few rows on each stream. The
calls go through the engine's own parallel context (one KV stream per sequence, the
engine's settings), each on fresh cells after a 64-token context per stream, so what is
timed is the call the runner makes. Median and spread of ``-r`` calls per shape.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.engine import DEFAULT_REPACK, MAX_STEP_ROWS, Engine

CONTEXT = 64  # tokens already in each stream before the timed call


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated positive integers")
    return values


def measure(engine: Engine, rows: int, streams: int, reps: int, rng: np.random.Generator) -> list[float]:
    """Seconds of ``reps`` calls of ``rows`` new tokens on each of ``streams`` streams."""
    import llama_cpp

    engine._context(CONTEXT + rows)  # the runner's own context and calls are what is measured
    times = []
    for _ in range(reps + 1):  # the first call warms the graph allocator
        for s in range(1, streams + 1):
            llama_cpp.llama_memory_seq_rm(engine._mem, s, -1, -1)
        engine._decode([(int(t), k, s, False) for s in range(1, streams + 1)
                        for k, t in enumerate(rng.integers(0, engine.n_vocab, CONTEXT))])
        new = [(int(t), CONTEXT + k, s, k == rows - 1) for s in range(1, streams + 1)
               for k, t in enumerate(rng.integers(0, engine.n_vocab, rows))]
        t0 = time.perf_counter()
        engine._decode(new)
        times.append(time.perf_counter() - t0)
    return times[1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--rows", type=_ints, default=[1, 4, 7, 8, 16, 32, 64, 128],
                    help="new tokens per stream in the call")
    ap.add_argument("--streams", type=_ints, default=[1, MAX_STEP_ROWS], help="streams (sequences) the rows go to")
    ap.add_argument("--repack", type=int, choices=[0, 1], default=int(DEFAULT_REPACK))
    ap.add_argument("-r", "--reps", type=int, default=3)
    args = ap.parse_args(argv)
    rows_list, streams_list = args.rows, args.streams
    if max(streams_list) > MAX_STEP_ROWS:
        ap.error(f"--streams: at most {MAX_STEP_ROWS}, the engine's parallel sequences")
    if not args.model.is_file():
        ap.error(f"{args.model}: no such model file")
    console = Console(soft_wrap=True)
    console.print(f"machine: {machine.one_line()}")
    largest = max(rows_list) * max(streams_list)
    # a batch that holds the largest shape, so every shape is one llama_decode call (llama.cpp
    # itself may still split it into ubatches, as it would the runner's call)
    engine = Engine(args.model, n_ctx=max(512, CONTEXT + largest), n_batch=max(512, largest),
                    n_threads=args.threads, repack=bool(args.repack))
    rng = np.random.default_rng(0)
    table = Table(title=f"{args.model.name}: one llama_decode call, {args.threads} threads, repack {args.repack}")
    for col in ("streams", "rows per stream", "rows", "ms (median)", "spread ms", "ms per row"):
        table.add_column(col, justify="right")
    for streams in streams_list:
        for rows in rows_list:
            times = measure(engine, rows, streams, args.reps, rng)
            med = statistics.median(times)
            table.add_row(str(streams), str(rows), str(rows * streams), f"{med * 1e3:.0f}",
                          f"{(max(times) - min(times)) * 1e3:.0f}", f"{med * 1e3 / (rows * streams):.1f}")
    console.print(table)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
