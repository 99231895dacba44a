"""The evaluation runner: task samples through a GGUF model, scored, resumable.

Every finished sample is appended at once to ``<out>/<model>.samples.jsonl`` as a
``SampleRecord`` (output, parsed value, score, tokens, seconds, the run's settings, the
model's identity and the sample's content digest), so a killed run loses at most the group
in flight; a restart with the same settings, model and samples skips what is recorded.
Per task it reports n, the paper's primary metric with a 95 % bootstrap interval, and the
task's extra metrics; summaries go to ``<out>/<model>.summary.json`` and the shared results
JSONL. Two paths produce the outputs (``radlite_edge.engine``): ``naive`` (the notebook's
one ``Llama.__call__`` per sample) and ``fast`` (shared prefix evaluated once, parallel
sequences, label tasks constrained to their label set when ``grammar`` is on). With a GGUF
LoRA (``lora``) the model is evaluated as the assistant runs an adapter route: the adapter
applied at run time over the base, on the fast path; its records and summary are named
``<model>+<adapter>`` and keyed on the adapter's bytes too.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .errors import UserError
from .fileio import FILE, atomic_path, claim_output, json_object, output_dir, records_with
from .locks import drop_partial_line, locked_append, output_lock
from .limits import check_context
from .eval_records import EvalMode, EvalSettings, EvalSummary, SampleRecord, TaskSummary, sample_digest
from .gguf_file import gguf_type_and_arch
from .identity import ModelId, file_digest, identify_model
from .results import EvalParams, Result, is_results_file
from .tasks import Sample, Task, sample_score, select_tasks
from .tasks.metrics import bootstrap_ci
from .tasks.prompts import get_profile
from .tasks.synthetic import content_key

__all__ = ["EvalMode", "EvalSettings", "check_lora", "evaluate", "few_shot_examples"]


def few_shot_examples(task: Task, pool: Sequence[Sample], k: int, *, seed: int, exclude: set[str]) -> list[Sample]:
    """K train examples of ``task``, fixed per task and seed, never an evaluated sample: ``exclude``
    holds the evaluated samples' ids and their inputs' content keys."""
    if k <= 0:
        return []
    candidates = [s for s in pool if s.task == task.name and s.split == "train" and s.id not in exclude
                  and content_key(s.input) not in exclude]
    if len(candidates) < k:
        raise UserError(f"--few-shot {k}: only {len(candidates)} train samples for {task.name} in the data")
    return random.Random(f"{seed}-{task.name}").sample(candidates, k)


def read_records(path: Path) -> list[SampleRecord]:
    """Every readable record of a samples file; a line cut by a kill is skipped (that sample runs again)."""
    out = []
    if path.is_file():
        with open(path) as f:
            for line in f:
                try:
                    out.append(SampleRecord.from_json(line))
                except (ValueError, TypeError, KeyError):
                    continue
    return out


@dataclass
class _Run:
    """One model's evaluation: what to run, where its records go, and what is already there."""

    model: ModelId
    model_path: Path
    settings: EvalSettings
    chosen: list[Task]
    by_task: dict[str, list[Sample]]
    records_path: Path
    done: dict[str, SampleRecord]  # sample id -> its record under this model, settings and content
    split: str = "test"
    lora: Path | None = None

    @property
    def name(self) -> str:
        """The model file's name, for people, with the runtime adapter's after a ``+``."""
        return _plus(self.model_path.name, self.lora and self.lora.name)

    @property
    def stem(self) -> str:
        """The name of this run's files."""
        return _plus(self.model_path.stem, self.lora and self.lora.stem)

    def todo(self, task: Task) -> list[Sample]:
        return [s for s in self.by_task[task.name] if s.id not in self.done]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.by_task.values())

    def finished(self) -> int:
        return sum(1 for ss in self.by_task.values() for s in ss if s.id in self.done)


def _plus(name: str, adapter: str | None) -> str:
    """A model's name with the runtime adapter's after a ``+`` (files, records, result rows)."""
    return f"{name}+{adapter}" if adapter else name


def _plan(model_path: Path, samples: Sequence[Sample], records_path: Path, tasks: str,
          settings: EvalSettings, split: str, lora: Path | None = None) -> _Run:
    model = identify_model(model_path)
    if settings.n is not None and settings.n < 1:
        raise UserError(f"--n {settings.n}: give at least 1 sample per task")
    chosen = select_tasks(tasks)
    test = [s for s in samples if s.split == split]
    by_task = {t.name: [s for s in test if s.task == t.name][: settings.n] for t in chosen}
    empty = [name for name, ss in by_task.items() if not ss]
    if empty:
        raise UserError(f"no {split} samples for {', '.join(empty)} in the data")
    digests = {s.id: sample_digest(s) for ss in by_task.values() for s in ss}
    done = {r.id: r for r in read_records(records_path)
            if r.id in digests and r.is_result_of(model, settings, digests[r.id])}
    return _Run(model, model_path, settings, chosen, by_task, records_path, done, split, lora)


def check_lora(lora: Path, settings: EvalSettings, models: Sequence[ModelId] = ()) -> EvalSettings:
    """The settings with the runtime adapter's identity. A file that is not a GGUF LoRA, an
    adapter of another architecture than one of ``models``, or a path that cannot apply one is
    refused before any work (llama.cpp checks the tensor shapes when the engine loads it)."""
    if settings.mode is EvalMode.NAIVE:
        raise UserError("--lora runs on the fast path (as the assistant applies an adapter): drop --mode naive, "
                        "or evaluate the merged model (radlite convert --adapter)")
    if not lora.is_file():
        raise UserError(f"{lora}: no such LoRA file" + (" (it is a folder: a peft adapter? radlite export-lora "
                                                        "makes the GGUF)" if lora.is_dir() else ""))
    kind, arch = gguf_type_and_arch(lora)
    if kind != "adapter":
        raise UserError(f"{lora}: a GGUF of type {kind!r}, not a LoRA adapter (radlite export-lora makes one)")
    for model in models:
        if arch is not None and model.arch != arch:
            raise UserError(f"{lora}: an adapter for {arch} models; {Path(model.path).name} is {model.arch}")
    return dataclasses.replace(settings, lora=f"{lora.name}@{file_digest(lora)}")


def evaluate(
    model_path: Path,
    samples: Sequence[Sample],
    out_dir: Path,
    *,
    tasks: str = "all",
    settings: EvalSettings = EvalSettings(),
    n_threads: int | None = None,
    n_parallel: int | None = None,
    n_ctx: int | None = None,
    repack: bool | None = None,
    split: str = "test",
    lora: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalSummary:
    """Evaluate one model on one split of the samples; returns its summary (also written to ``out_dir``).

    ``n_ctx`` defaults to the model's training context, at most ``engine.DEFAULT_CTX``. ``lora``: a
    GGUF LoRA that llama.cpp applies over the model at run time (the assistant's adapter routes).
    """
    from .engine import DEFAULT_CTX, DEFAULT_PARALLEL, DEFAULT_REPACK, Engine, check_parallel

    n_parallel = DEFAULT_PARALLEL if n_parallel is None else n_parallel
    check_parallel(n_parallel)  # before any work
    out_dir = Path(out_dir)
    model = identify_model(Path(model_path))
    if lora is not None:
        lora = Path(lora)
        settings = check_lora(lora, settings, [model])
    else:
        settings = dataclasses.replace(settings, lora=None)  # records say an adapter ran only when one did
    if n_ctx is None:
        n_ctx = min(DEFAULT_CTX, model.n_ctx_train or DEFAULT_CTX)
    check_context(n_ctx, model.n_ctx_train, what="-c")
    records_path = out_dir / f"{_plus(Path(model_path).stem, lora and lora.stem)}.samples.jsonl"
    notes = []
    claim_output(records_path, step="eval", kind=FILE, owned=is_records_file)
    with output_dir(out_dir), locked_append(records_path, what="radlite eval") as log:
        if dropped := drop_partial_line(records_path):
            notes.append(f"{records_path}: dropped a last line cut short by a kill ({dropped} bytes); "
                         "that sample runs again")
        run = _plan(Path(model_path), samples, records_path, tasks, settings, split, lora)
        if progress:
            progress(run.finished(), run.total)

        def open_engine() -> Engine:
            engine = Engine(run.model_path, n_ctx=n_ctx, n_threads=n_threads, n_parallel=n_parallel,
                            repack=DEFAULT_REPACK if repack is None else repack)
            if lora is not None:
                try:
                    engine.use_lora([(engine.load_lora(lora), 1.0)])
                except BaseException:
                    engine.close()
                    raise
            return engine

        t_start = time.perf_counter()
        _run_samples(run, samples, log, open_engine, n_parallel, progress)
    summary = summarize(run, out_dir, seconds=time.perf_counter() - t_start)
    summary.notes = notes
    return summary


def _run_samples(run: _Run, pool: Sequence[Sample], log, open_engine: Callable, n_parallel: int,
                 progress: Callable[[int, int], None] | None) -> None:
    """Generate, score and record every sample not yet done, a group at a time; the engine
    is loaded only when there is something to do. Ctrl-C stops after the group in flight is
    recorded: llama.cpp calls Python back while it logs (a context being made), and an interrupt
    raised there would be swallowed and the run would go on to the end."""
    from .llm import Interrupts

    settings = run.settings
    evaluated_ids = {key for ss in run.by_task.values() for s in ss for key in (s.id, content_key(s.input))}
    step = 1 if settings.mode is EvalMode.NAIVE else n_parallel
    finished = run.finished()
    engine = None
    try:
        with Interrupts() as stop:
            for task in run.chosen:
                todo = run.todo(task)
                if not todo:
                    continue
                if engine is None:
                    engine = open_engine()
                    profile = get_profile(settings.profile, engine.llm)
                shots = few_shot_examples(task, pool, settings.few_shot, seed=settings.seed, exclude=evaluated_ids)
                for start in range(0, len(todo), step):
                    group = todo[start:start + step]
                    gens = _generate(engine, task, group,
                                     [task.prompt(s.input, shots, profile=profile) for s in group], settings)
                    for sample, gen in zip(group, gens):
                        record = _record(run, task, sample, gen, shots, seconds=gen.seconds / len(gens))
                        run.done[sample.id] = record
                        log.write(record.to_json() + "\n")
                    log.flush()
                    finished += len(group)
                    if progress:
                        progress(finished, run.total)
                    stop.check()
    finally:
        if engine is not None:
            engine.close()


def _generate(engine, task: Task, group: Sequence[Sample], prompts: list[str], settings: EvalSettings) -> list:
    tokens = [engine.tokenize(p) for p in prompts]
    for sample, toks in zip(group, tokens):
        if len(toks) + task.max_tokens > engine.n_ctx:
            raise UserError(f"sample {sample.id}: its prompt ({len(toks)} tokens) and answer ({task.max_tokens}) "
                            f"need {len(toks) + task.max_tokens} tokens of context; -c is {engine.n_ctx}")
    if settings.mode is EvalMode.NAIVE:
        return [engine.naive(p, max_tokens=task.max_tokens, grammar=task.grammar() if settings.grammar else None)
                for p in prompts]
    return engine.generate(tokens, max_tokens=task.max_tokens, language=task.language if settings.grammar else None)


def _record(run: _Run, task: Task, sample: Sample, gen, shots: Sequence[Sample], *, seconds: float) -> SampleRecord:
    parsed, score = sample_score(task, gen.text, sample)
    return SampleRecord(id=sample.id, task=task.name, model=run.name, output=gen.text, parsed=parsed,
                        score=score, prompt_tokens=gen.prompt_tokens, tokens=gen.n_tokens, seconds=seconds,
                        settings=run.settings, few_shot_ids=[s.id for s in shots], model_id=run.model,
                        sample_digest=sample_digest(sample))


def _task_summary(task: Task, rows: list[tuple[Sample, SampleRecord]], *, seed: int) -> TaskSummary:
    from .tasks.floors import floors

    scores = [r.score for _, r in rows]
    outputs = [r.output for _, r in rows]
    preds = [task.parse(o) for o in outputs]
    truths = [task.reference_value(s) for s, _ in rows]
    lo, hi = bootstrap_ci(scores, seed=seed)
    return TaskSummary(
        n=len(rows), metric=task.metric, value=sum(scores) / len(scores) if scores else float("nan"), ci95=(lo, hi),
        parsed=sum(p not in (None, {}, set()) for p in preds) / max(1, len(preds)),
        seconds_per_sample=sum(r.seconds for _, r in rows) / max(1, len(rows)),
        extra=task.summary(preds, truths, outputs, [s.reference for s, _ in rows]),
        floors=floors(task, [s for s, _ in rows]),
    )


def summarize(run: _Run, out_dir: Path, *, seconds: float) -> EvalSummary:
    from .tasks import TASKS

    summary = EvalSummary(model=run.name, model_id=run.model, settings=run.settings, tasks={},
                          seconds=seconds, split=run.split)
    results = []
    model_name = _plus(run.model.name, run.lora and run.lora.stem)
    for name, ss in run.by_task.items():
        entry = _task_summary(TASKS[name], [(s, run.done[s.id]) for s in ss if s.id in run.done],
                              seed=run.settings.seed)
        summary.tasks[name] = entry
        results.append(Result(model=model_name, level=run.model.level, benchmark=name, metric=entry.metric,
                              value=entry.value, n=entry.n, stat="mean", unit="", model_id=run.model,
                              params=EvalParams(ci95=list(entry.ci95), **run.settings.to_dict(), split=run.split)))
    # one summary per split and decoding: --decoding both writes the grammar one beside the strict one
    suffix = ("" if run.split == "test" else f".{run.split}") + (".grammar" if run.settings.grammar else "")
    path = claim_output(out_dir / f"{run.stem}{suffix}.summary.json", step="eval", kind=FILE, owned=is_summary_file)
    with atomic_path(path, owned=is_summary_file) as tmp:
        tmp.write_text(json.dumps(summary.to_dict(), indent=2, default=str) + "\n")
    replace_results(out_dir / RESULTS_FILE, results)
    return summary


RESULTS_FILE = "results.jsonl"  # every summary's figures, one record per model, task and settings
is_records_file = records_with("id", "task", "output", "score")


def is_summary_file(path: Path) -> bool:
    data = json_object(path)
    return data is not None and {"model", "settings", "tasks"} <= set(data)


def _result_key(record: dict) -> str:
    """What makes two records the same figure: a rerun's figure replaces the earlier one."""
    params = {k: v for k, v in (record.get("params") or {}).items() if k != "ci95"}
    digest = (record.get("model_id") or {}).get("digest")
    return json.dumps([record.get("model"), record.get("level"), digest, record.get("benchmark"),
                       record.get("metric"), params], sort_keys=True, default=str)


def replace_results(path: Path, results: Sequence[Result]) -> None:
    """Write ``results`` into the results JSONL, each replacing an earlier record of the same figure
    (a rerun appended a second copy of every figure before); other lines are kept as they are."""
    new = [r.to_dict() for r in results]
    keys = {_result_key(r) for r in new}
    claim_output(path, step="eval", kind=FILE, owned=is_results_file)
    with output_lock(path, what="radlite eval", wait=True):  # evals of other models share the file
        kept = []
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if line.strip() and not (isinstance(record, dict) and _result_key(record) in keys):
                    kept.append(line)
        with atomic_path(path, owned=is_results_file) as tmp:
            tmp.write_text("".join(x + "\n" for x in kept + [json.dumps(r, default=str) for r in new]),
                           encoding="utf-8")
