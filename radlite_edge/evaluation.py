"""The evaluation runner: task samples through a GGUF model, scored, resumable.

Every finished sample is appended at once to ``<out>/<model>.samples.jsonl`` (output,
parsed value, score, tokens, seconds, and the run's settings), so a killed run loses at
most the group in flight; a restart with the same settings skips what is recorded.
Per task it reports n, the paper's primary metric with a 95 % bootstrap interval, and the
task's extra metrics; summaries go to ``<out>/<model>.summary.json`` and the shared results
JSONL. Two paths produce the outputs (``radlite_edge.engine``): ``naive`` (the notebook's
one ``Llama.__call__`` per sample) and ``fast`` (shared prefix evaluated once, parallel
sequences, label tasks constrained to their label set when ``grammar`` is on).
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import UserError
from .results import Result, append_jsonl
from .tasks import Sample, Task, sample_score, select_tasks
from .tasks.metrics import bootstrap_ci


@dataclass(frozen=True)
class EvalSettings:
    mode: str = "fast"  # "fast" | "naive"
    grammar: bool = True  # constrain label tasks (fast mode) / GBNF (naive mode)
    few_shot: int = 0
    n: int | None = None  # samples per task (None: all test samples)
    seed: int = 0

    def key(self) -> dict:
        return asdict(self)


def few_shot_examples(task: Task, pool: Sequence[Sample], k: int, *, seed: int, exclude: set[str]) -> list[Sample]:
    """K train examples of ``task``, fixed per task and seed, never an evaluated sample."""
    if k <= 0:
        return []
    candidates = [s for s in pool if s.task == task.name and s.split == "train" and s.id not in exclude]
    if len(candidates) < k:
        raise UserError(f"--few-shot {k}: only {len(candidates)} train samples for {task.name} in the data")
    return random.Random(f"{seed}-{task.name}").sample(candidates, k)


def _done_ids(path: Path, key: dict) -> set[str]:
    done = set()
    if path.is_file():
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill: that sample runs again
                if rec.get("settings") == key:
                    done.add(rec["id"])
    return done


def _records(path: Path, key: dict) -> list[dict]:
    out = {}
    with open(path) as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("settings") == key:
                out[rec["id"]] = rec
    return list(out.values())


def _jsonable(value):
    if isinstance(value, set):
        return sorted(list(v) if isinstance(v, tuple) else v for v in value)
    return value


def evaluate(
    model_path: Path,
    samples: Sequence[Sample],
    out_dir: Path,
    *,
    tasks: str = "all",
    settings: EvalSettings = EvalSettings(),
    n_threads: int | None = None,
    n_parallel: int | None = None,
    n_ctx: int = 4096,
    repack: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Evaluate one model; returns the summary dict (also written to ``out_dir``)."""
    from .engine import DEFAULT_PARALLEL, DEFAULT_REPACK, Engine, check_parallel

    if settings.mode not in ("fast", "naive"):
        raise UserError(f"--mode {settings.mode}: choose fast or naive")
    n_parallel = DEFAULT_PARALLEL if n_parallel is None else n_parallel
    repack = DEFAULT_REPACK if repack is None else repack
    check_parallel(n_parallel)  # before any work
    model_path = Path(model_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = select_tasks(tasks)
    test = [s for s in samples if s.split == "test"]
    by_task = {t.name: [s for s in test if s.task == t.name][: settings.n] for t in chosen}
    empty = [name for name, ss in by_task.items() if not ss]
    if empty:
        raise UserError(f"no test samples for {', '.join(empty)} in the data")
    evaluated_ids = {s.id for ss in by_task.values() for s in ss}
    records_path = out_dir / f"{model_path.stem}.samples.jsonl"
    key = settings.key()
    done = _done_ids(records_path, key)
    total = sum(len(v) for v in by_task.values())
    finished = sum(1 for ss in by_task.values() for s in ss if s.id in done)
    if progress:
        progress(finished, total)

    engine = None
    t_start = time.perf_counter()
    with open(records_path, "a") as log:
        for task in chosen:
            todo = [s for s in by_task[task.name] if s.id not in done]
            if not todo:
                continue
            if engine is None:
                engine = Engine(model_path, n_ctx=n_ctx, n_threads=n_threads, n_parallel=n_parallel, repack=repack)
            shots = few_shot_examples(task, samples, settings.few_shot, seed=settings.seed, exclude=evaluated_ids)
            prompts = [task.prompt(s.input, shots) for s in todo]
            step = 1 if settings.mode == "naive" else n_parallel
            for start in range(0, len(todo), step):
                group, texts = todo[start:start + step], prompts[start:start + step]
                if settings.mode == "naive":
                    gens = [engine.naive(texts[0], max_tokens=task.max_tokens,
                                         grammar=task.grammar() if settings.grammar else None)]
                else:
                    gens = engine.generate([engine.tokenize(p) for p in texts], max_tokens=task.max_tokens,
                                           language=task.language if settings.grammar else None)
                for sample, gen in zip(group, gens):
                    parsed, score = sample_score(task, gen.text, sample)
                    rec = {"id": sample.id, "task": task.name, "model": model_path.name, "output": gen.text,
                           "parsed": _jsonable(parsed), "score": score, "prompt_tokens": gen.prompt_tokens,
                           "tokens": gen.n_tokens, "seconds": gen.seconds / len(gens), "settings": key,
                           "few_shot_ids": [s.id for s in shots]}
                    log.write(json.dumps(rec) + "\n")
                log.flush()
                finished += len(group)
                if progress:
                    progress(finished, total)
    if engine is not None:
        engine.close()
    return summarize(model_path, samples, by_task, records_path, key, out_dir,
                     seconds=time.perf_counter() - t_start)


def summarize(model_path: Path, samples: Sequence[Sample], by_task: dict[str, list[Sample]], records_path: Path,
              key: dict, out_dir: Path, *, seconds: float) -> dict:
    from .tasks import TASKS

    recs = {r["id"]: r for r in _records(records_path, key)}
    summary: dict = {"model": model_path.name, "settings": key, "tasks": {}}
    results = []
    for name, ss in by_task.items():
        task = TASKS[name]
        rows = [(s, recs[s.id]) for s in ss if s.id in recs]
        scores = [r["score"] for _, r in rows]
        outputs = [r["output"] for _, r in rows]
        preds = [task.parse(o) for o in outputs]
        truths = [task.reference_value(s) for s, _ in rows]
        lo, hi = bootstrap_ci(scores, seed=key["seed"])
        mean = sum(scores) / len(scores) if scores else float("nan")
        entry = {"n": len(rows), "metric": task.metric, "value": mean, "ci95": [lo, hi],
                 "parsed": sum(p not in (None, {}, set()) for p in preds) / max(1, len(preds)),
                 "seconds_per_sample": sum(r["seconds"] for _, r in rows) / max(1, len(rows)),
                 **task.summary(preds, truths, outputs, [s.reference for s, _ in rows])}
        summary["tasks"][name] = entry
        results.append(Result(model=model_path.name, level=_level_of(model_path), benchmark=name, metric=task.metric,
                              value=mean, n=len(rows), stat="mean", unit="",
                              params={"ci95": [lo, hi], **key}))
    summary["seconds"] = seconds
    (out_dir / f"{model_path.stem}.summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    append_jsonl(out_dir / "results.jsonl", results)
    return summary


def _level_of(model_path: Path) -> str:
    from .levels import LEVELS

    stem = model_path.stem.upper()
    for level in sorted(LEVELS, key=lambda lv: -len(lv.name)):
        if stem.endswith(level.name):
            return level.name
    return "?"


def group_summaries(summaries: Sequence[dict]) -> dict[str, dict[str, float]]:
    """task -> model -> primary metric, for the comparison table."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for s in summaries:
        for task, entry in s["tasks"].items():
            table[task][s["model"]] = entry["value"]
    return dict(table)
