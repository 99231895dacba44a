"""The Python path's decode speed beside llama.cpp's own llama-bench, on the same file and threads.

    python -m benchmarks.vs_llama_bench MODEL.gguf... [-t 2] [-n 128] [-r 3] [--rounds 3]
    # or, for the full-size Qwen2.5-3B-shaped Q4_K_M and Q8_0 in --models-dir: make bench-throughput

The two alternate in rounds (Python first in even rounds, llama-bench first in odd ones)
so that a drift of the VM's memory bandwidth falls on both alike. Each side runs its
own warm-up; the Python side is ``radlite bench``'s tg test (``throughput.tg_once``),
llama-bench the binary that ``make llama-bench`` builds from the llama.cpp sources
vendored in the pinned llama-cpp-python. Flash attention is set the same on both.
The ratio is of medians: on a shared 2-core VM a repetition that another process
interrupts is an outlier (a third of the speed), and the median is what it cannot move.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.bench import throughput as tp
from radlite_edge.bench.roofline import model_bytes
from radlite_edge.results import Result, append_jsonl

LLAMA_BENCH = Path("build/llama-bench-build/bin/llama-bench")
WITHIN = 0.05  # the bar: the Python path within 5 % of llama-bench


def llama_bench_tg(binary: Path, model: Path, *, threads: int, n_gen: int, reps: int, flash_attn: bool) -> list[float]:
    """llama-bench's tok/s per repetition (its JSON ``samples_ts``) for one tg test."""
    cmd = [str(binary), "-m", str(model), "-t", str(threads), "-p", "0", "-n", str(n_gen), "-r", str(reps),
           "-fa", "1" if flash_attn else "0", "-o", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    tests = json.loads(proc.stdout)
    return [float(x) for x in tests[0]["samples_ts"]]


def python_tg(llm, *, n_gen: int, reps: int, rng: np.random.Generator) -> list[float]:
    state = tp.prefill(llm, [])
    tp.tg_once(llm, state, 1, rng)  # llama-bench's warm-up: one generated token
    return [n_gen / tp.tg_once(llm, state, n_gen, rng) for _ in range(reps)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--models-dir", type=Path, default=Path("models"),
                    help="without MODEL arguments: qwen2.5-3b-Q4_K_M.gguf and qwen2.5-3b-Q8_0.gguf in here")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--reps", type=int, default=3, help="repetitions per round and side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-fa", "--flash-attn", type=int, choices=[0, 1], default=0)
    ap.add_argument("--llama-bench", type=Path, default=LLAMA_BENCH)
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    if not args.llama_bench.is_file():
        console.print(f"{args.llama_bench}: not built; run `make llama-bench` first")
        return 2
    models = args.models or [args.models_dir / f"qwen2.5-3b-{lv}.gguf" for lv in ("Q4_K_M", "Q8_0")]
    console.print(f"machine: {machine.one_line()}", markup=False)
    console.print(f"tg{args.n_gen}, {args.threads} thread(s), {args.rounds} rounds x {args.reps} reps per side, "
                  f"flash attention {'on' if args.flash_attn else 'off'}", markup=False)
    table = Table(title=f"tg{args.n_gen} tok/s, median ± sd of {args.rounds * args.reps} repetitions, same run")
    for col in ("model", "level", "threads", "Python path", "llama-bench", "Python / llama-bench"):
        table.add_column(col, justify="left" if col in ("model", "level") else "right")
    records = []
    worst = 0.0
    for path in models:
        mb = model_bytes(path)
        params = tp.ContextParams(n_ctx=args.n_gen, threads=args.threads, flash_attn=bool(args.flash_attn))
        llm = tp.open_model(path, params)
        rng = np.random.default_rng(0)
        py: list[float] = []
        lb: list[float] = []
        try:
            for rnd in range(args.rounds):
                order = ("py", "lb") if rnd % 2 == 0 else ("lb", "py")
                for side in order:
                    if side == "py":
                        got = python_tg(llm, n_gen=args.n_gen, reps=args.reps, rng=rng)
                        py += got
                    else:
                        got = llama_bench_tg(args.llama_bench, path, threads=args.threads, n_gen=args.n_gen,
                                             reps=args.reps, flash_attn=bool(args.flash_attn))
                        lb += got
                    console.print(f"  {mb.name} {mb.level} round {rnd + 1} {side}: "
                                  + ", ".join(f"{x:.2f}" for x in got), markup=False)
        finally:
            llm.close()
        med = statistics.median
        ratio = med(py) / med(lb)
        worst = max(worst, abs(ratio - 1))
        sd = statistics.stdev
        table.add_row(mb.name, mb.level, str(args.threads), f"{med(py):.2f} ± {sd(py):.2f}",
                      f"{med(lb):.2f} ± {sd(lb):.2f}", f"{ratio:.3f}")
        for tool, samples in (("python", py), ("llama-bench", lb)):
            records.append(Result.from_samples(
                samples, stat="median", keep=True, model=mb.name, level=mb.level, benchmark=f"tg{args.n_gen}",
                metric="tok_s", unit="tok/s",
                params={"test": "vs_llama_bench", "tool": tool, "threads": args.threads, "n_gen": args.n_gen,
                        "rounds": args.rounds, "flash_attn": bool(args.flash_attn), "file": path.name,
                        "ratio_python_over_llama_bench": ratio}))
    console.print(table)
    console.print(f"largest gap {100 * worst:.1f}% ({'within' if worst <= WITHIN else 'OUTSIDE'} the 5% bar)",
                  markup=False)
    append_jsonl(args.results, records)
    console.print(f"records appended to {args.results}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
