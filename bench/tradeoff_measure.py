"""The sweep's measurements, one function per cell kind (``bench.tradeoff`` plans and records them).

Each returns the cell's values as a JSON-able dict; none writes anything of its own except the
evaluation's per-sample records (``radlite eval``'s, so a killed task resumes mid-way).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .tradeoff import SweepSpec

SPEED_TOKENS = 64  # tokens generated per tg repetition
SPEED_REPEATS = 5
RSS_PROMPT = 512  # prompt tokens of the peak-RSS probe: a long report


def _median_spread(xs: Sequence[float]) -> tuple[float, float]:
    return statistics.median(xs), (max(xs) - min(xs)) / 2 if len(xs) > 1 else 0.0


def measure_file(path: Path) -> dict[str, object]:
    from radlite_edge.gguf_file import open_complete

    reader = open_complete(path)
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    return {"bytes": Path(path).stat().st_size, "n_params": n_params,
            "bits_per_weight": 8.0 * tensor_bytes / max(n_params, 1)}


def measure_speed(path: Path, spec: SweepSpec) -> dict[str, object]:
    """tg tok/s (median of repeats, after one warm-up) and the peak RSS of a process that loads
    the file with the deployment context and decodes a long prompt."""
    import numpy as np

    from radlite_edge.bench.throughput import ContextParams, open_model, peak_rss, prefill, tg_once

    params = ContextParams(n_ctx=spec.n_ctx, threads=spec.threads or 1)
    llm = open_model(path, params)
    try:
        rng = np.random.default_rng(spec.seed)
        state = prefill(llm, [])
        tg_once(llm, state, 8, rng)  # pages the weights in
        rates = [SPEED_TOKENS / tg_once(llm, state, SPEED_TOKENS, rng) for _ in range(SPEED_REPEATS)]
    finally:
        llm.close()
    rss, wall = peak_rss(path, params, RSS_PROMPT)
    tg, spread = _median_spread(rates)
    return {"tg_tok_s": tg, "tg_spread": spread, "tg_repeats": SPEED_REPEATS, "tg_tokens": SPEED_TOKENS,
            "threads": params.threads, "n_ctx": spec.n_ctx, "peak_rss_bytes": rss, "rss_probe_prompt": RSS_PROMPT}


def measure_runtime_rss() -> dict[str, object]:
    """Peak RSS of a process that imports the runtime and loads no model: what several models
    loaded in one process share, so the recommender counts it once."""
    from radlite_edge.bench.measure import run_measured

    _, rss = run_measured([sys.executable, "-c", "import llama_cpp, radlite_edge.assistant"])
    return {"runtime_rss_bytes": rss}


def measure_latency(path: Path, task_name: str, samples: Sequence, spec: SweepSpec) -> dict[str, object]:
    """One request's wall time, as the assistant serves it: the published prompt, greedy, the
    task's max tokens, a fresh cache per request (the naive path). Median of a few samples."""
    from radlite_edge.engine import Engine
    from radlite_edge.tasks import TASKS
    from radlite_edge.tasks.prompts import get_profile

    task = TASKS[task_name]
    engine = Engine(path, n_ctx=spec.n_ctx, n_threads=spec.threads)
    try:
        profile = get_profile("radlite", engine.llm)
        times, tokens = [], []
        for s in samples[:spec.latency_samples]:
            engine.forget_prefix()
            t0 = time.perf_counter()
            gen = engine.naive(task.prompt(s.input, [], profile=profile), max_tokens=task.max_tokens)
            times.append(time.perf_counter() - t0)
            tokens.append(gen.n_tokens)
    finally:
        engine.close()
    med, spread = _median_spread(times)
    return {"latency_s": med, "latency_spread": spread, "requests": len(times),
            "tokens_median": statistics.median(tokens)}


def measure_eval(path: Path, task_name: str, decoding: str, samples: Sequence, out: Path,
                 spec: SweepSpec) -> dict[str, object]:
    from radlite_edge.eval_records import EvalSettings
    from radlite_edge.evaluation import evaluate

    summary = evaluate(path, samples, out, tasks=task_name,
                       settings=EvalSettings(grammar=decoding == "grammar", n=spec.n, seed=spec.seed),
                       n_threads=spec.threads, n_ctx=spec.n_ctx)
    t = summary.tasks[task_name]
    best, floor = t.floor
    return {"metric": t.metric, "value": t.value, "ci95": list(t.ci95), "n": t.n, "parsed": t.parsed,
            "floor": floor, "floor_name": best, "seconds_per_sample": t.seconds_per_sample}
