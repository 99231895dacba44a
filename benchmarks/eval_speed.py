"""Evaluation runner speed: the fast path beside the RadLite notebook's naive path.

    python -m benchmarks.eval_speed MODEL.gguf [--n 4] [-t 2] [--parallel 7] [--repack 0|1]

Same model, tasks and samples (the synthetic suite), in one run:
- naive: one ``Llama.__call__`` per sample with the full prompt and the task's max_tokens
  (llama-cpp-python's own prefix reuse with the previous prompt);
- fast, grammar off: shared prefix once, parallel sequences; every output is compared with
  the naive one (they must be identical);
- fast, grammar on: label tasks constrained to their label set; outputs the naive path
  parsed as a valid label must parse the same.
Then the latency of one RADS request: naive from an empty cache, naive after another RADS
request (default prefix reuse), and fast with the task prefix already cached; medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.engine import DEFAULT_PARALLEL, DEFAULT_REPACK, CallTimes, Engine
from radlite_edge.results import Result, append_jsonl
from radlite_edge.tasks import TASKS
from radlite_edge.tasks.synthetic import make_task_samples

LABEL_TASKS = tuple(t.name for t in TASKS.values() if t.language)


def _same(naive, fast, max_tokens: int) -> bool:
    # llama-cpp-python runs past max_tokens while its text ends in a possible UTF-8 lead byte
    return naive.text == fast.text or (naive.n_tokens > max_tokens and naive.text.startswith(fast.text))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--n", type=int, default=4, help="samples per task")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, help="as radlite eval (default %(default)s)")
    ap.add_argument("--repack", type=int, choices=[0, 1], default=int(DEFAULT_REPACK),
                    help="llama.cpp's CPU weight repacking, both paths (default %(default)s, as radlite eval)")
    ap.add_argument("--latency-reps", type=int, default=5)
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    console.print(f"machine: {machine.one_line()}")
    console.print(f"model {args.model} · {args.n} samples per task · {args.threads} threads · {args.parallel} parallel · repack {args.repack}")

    engine = Engine(args.model, n_ctx=2048, n_threads=args.threads, n_parallel=args.parallel, repack=bool(args.repack))
    rows, records = [], []
    totals = {"naive": 0.0, "fast": 0.0, "grammar": 0.0}
    label_totals = {"naive": 0.0, "fast": 0.0, "grammar": 0.0}
    identical = compared = kept = valid_naive = 0
    label_phases = {"prompt": 0.0, "answer": 0.0}  # fast+grammar on the label tasks
    for task in TASKS.values():
        samples = make_task_samples(task.name, args.n, seed=11)
        prompts = [task.prompt(s.input) for s in samples]
        t0 = time.perf_counter()
        naive = [engine.naive(p, max_tokens=task.max_tokens) for p in prompts]
        t_naive = time.perf_counter() - t0
        tokens = [engine.tokenize(p) for p in prompts]
        engine.forget_prefix()  # the fast path starts from an empty cache too
        engine.times = CallTimes()
        t0 = time.perf_counter()
        fast = engine.generate(tokens, max_tokens=task.max_tokens)
        t_fast = time.perf_counter() - t0
        calls = {"fast": engine.times}
        same = sum(_same(n, f, task.max_tokens) for n, f in zip(naive, fast))
        identical += same
        compared += len(samples)
        t_gram = t_fast
        if task.language:
            engine.forget_prefix()
            engine.times = CallTimes()
            t0 = time.perf_counter()
            constrained = engine.generate(tokens, max_tokens=task.max_tokens, language=task.language)
            t_gram = time.perf_counter() - t0
            calls["fast+grammar"] = engine.times
            for n, c in zip(naive, constrained):
                if task.parse(n.text) not in (None, {}):
                    valid_naive += 1
                    kept += task.parse(c.text) == task.parse(n.text)
        for key, value in (("naive", t_naive), ("fast", t_fast), ("grammar", t_gram)):
            totals[key] += value
            if task.name in LABEL_TASKS:
                label_totals[key] += value
        rows.append((task.name, t_naive, t_fast, t_gram, same, len(samples)))
        console.print(f"{task.name}: naive {t_naive:.1f} s, fast {t_fast:.1f} s, grammar {t_gram:.1f} s, "
                      f"identical {same}/{len(samples)}")
        if task.name in LABEL_TASKS:
            label_phases["prompt"] += calls["fast+grammar"].prompt.seconds
            label_phases["answer"] += calls["fast+grammar"].answer.seconds
        for mode, ct in calls.items():  # where the fast path's time goes: llama_decode calls
            console.print(f"  {mode}: prompts {ct.prompt.seconds:.1f} s in {ct.prompt.calls} calls "
                          f"({ct.prompt.rows} rows), answers {ct.answer.seconds:.1f} s in {ct.answer.calls} calls "
                          f"({ct.answer.rows} rows)")
        for mode, secs in (("naive", t_naive), ("fast", t_fast), ("fast+grammar", t_gram)):
            records.append(Result(model=args.model.name, level="", benchmark=f"eval-speed/{task.name}",
                                  metric="samples_per_s", value=len(samples) / secs, n=len(samples), unit="samples/s",
                                  stat="mean", params={"mode": mode, "threads": args.threads,
                                                       "parallel": args.parallel, "repack": bool(args.repack)}))

    table = Table(title="evaluation runner: samples/s (same samples, one run)")
    for col in ("task", "naive", "fast", "fast+grammar", "speed-up fast", "speed-up grammar", "identical"):
        table.add_column(col, justify="right" if col != "task" else "left")
    for name, tn, tf, tg, same, n in rows:
        table.add_row(name, f"{n / tn:.2f}", f"{n / tf:.2f}", f"{n / tg:.2f}", f"{tn / tf:.1f}x", f"{tn / tg:.1f}x",
                      f"{same}/{n}")
    n_label = args.n * len(LABEL_TASKS)
    n_all = args.n * len(TASKS)
    table.add_row("label tasks", f"{n_label / label_totals['naive']:.2f}", f"{n_label / label_totals['fast']:.2f}",
                  f"{n_label / label_totals['grammar']:.2f}", f"{label_totals['naive'] / label_totals['fast']:.1f}x",
                  f"{label_totals['naive'] / label_totals['grammar']:.1f}x", "")
    table.add_row("all tasks", f"{n_all / totals['naive']:.2f}", f"{n_all / totals['fast']:.2f}",
                  f"{n_all / totals['grammar']:.2f}", f"{totals['naive'] / totals['fast']:.1f}x",
                  f"{totals['naive'] / totals['grammar']:.1f}x", f"{identical}/{compared}")
    console.print(table)
    console.print(f"grammar on: {kept}/{valid_naive} outputs the naive path parsed as a valid label parse the same")
    console.print(f"label tasks, fast+grammar {label_totals['grammar']:.1f} s: prompts {label_phases['prompt']:.1f} s, "
                  f"answers {label_phases['answer']:.1f} s (llama_decode calls; the naive path evaluates the same "
                  f"prompts)")

    # one RADS request
    rads = TASKS["rads_assignment"]
    inputs = [s.input for s in make_task_samples("rads_assignment", args.latency_reps + 1, seed=12)]
    cold, reuse, cached = [], [], []
    for i, text in enumerate(inputs[1:]):
        engine.llm.reset()
        t0 = time.perf_counter()
        engine.naive(rads.prompt(text), max_tokens=rads.max_tokens)
        cold.append(time.perf_counter() - t0)
        engine.naive(rads.prompt(inputs[i]), max_tokens=rads.max_tokens)  # another RADS request before it
        t0 = time.perf_counter()
        engine.naive(rads.prompt(text), max_tokens=rads.max_tokens)
        reuse.append(time.perf_counter() - t0)
    engine.generate([engine.tokenize(rads.prompt(inputs[0]))], max_tokens=rads.max_tokens, language=rads.language)
    for text in inputs[1:]:
        t0 = time.perf_counter()
        engine.generate([engine.tokenize(rads.prompt(text))], max_tokens=rads.max_tokens, language=rads.language)
        cached.append(time.perf_counter() - t0)
    med = statistics.median
    console.print(f"one RADS request, median of {len(cached)}: naive cold {med(cold):.2f} s, naive with prefix reuse "
                  f"{med(reuse):.2f} s, fast with the task prefix cached + grammar {med(cached):.2f} s")
    for label, xs in (("naive-cold", cold), ("naive-prefix-reuse", reuse), ("fast-cached-prefix-grammar", cached)):
        records.append(Result.from_samples(xs, model=args.model.name, level="", benchmark="rads-request-latency",
                                           metric="seconds", unit="s", keep=True,
                                           params={"mode": label, "threads": args.threads,
                                                   "repack": bool(args.repack)}))
    append_jsonl(args.results, records)
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
