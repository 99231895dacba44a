"""The benchmark grid, as llama-bench builds it: every parameter a list, the tests their product.

Cells are ordered so that each model is loaded once (model outermost; threads change
on the live context, depths are restored from a saved KV state). Every cell keeps its
raw samples; pp/tg figures are tok/s per repetition, with their mean and sample stdev.
The runner reports progress through ``on_event``, only between timed regions, so a
dashboard refreshing there never steals a core from a measurement.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from radlite_edge.errors import UserError
from radlite_edge.limits import MAX_COUNT, check_context
from radlite_edge.results import BenchParams, Result, TestKind

from . import roofline
from . import throughput as tp

COLD_METHOD = "posix_fadvise(POSIX_FADV_DONTNEED) on the model file before each cold load"


@dataclass(frozen=True)
class TaskRequest:
    """One RadLite request per task: the task's real messages and max tokens."""

    task: str
    messages: list[dict]
    max_tokens: int


@dataclass(frozen=True)
class GridSpec:
    models: tuple[Path, ...]
    threads: tuple[int, ...] = (1,)
    n_prompt: tuple[int, ...] = (512,)
    n_gen: tuple[int, ...] = (128,)
    depth: tuple[int, ...] = (0,)
    reps: int = 5
    requests: tuple[TaskRequest, ...] = ()
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: bool = False
    repack: tuple[bool, ...] = (True,)  # llama.cpp's CPU weight repacking, each value a load of its own
    load: bool = True  # cold and warm load times
    rss: bool = True  # peak RSS, in a process of its own
    warmup: bool = True
    seed: int = 0
    prompt_profile: str = "radlite"  # how request tests render the task prompts (tasks/prompts.py)


@dataclass(frozen=True)
class Cell:
    model: Path
    test: TestKind
    threads: int
    n_prompt: int = 0
    n_gen: int = 0
    depth: int = 0
    task: str | None = None
    repack: bool = True

    @property
    def name(self) -> str:
        """llama-bench's test names (pp512, tg128 @ d1024), and ours for the rest."""
        if self.test in (TestKind.PP, TestKind.TG):
            base = f"pp{self.n_prompt}" if self.test is TestKind.PP else f"tg{self.n_gen}"
            return f"{base}@d{self.depth}" if self.depth else base
        if self.test is TestKind.REQUEST:
            return f"request:{self.task}"
        return self.test


@dataclass
class Event:
    """What the runner tells a progress display; sent only outside timed regions."""

    kind: str  # "plan", "model", "cell", "rep", "done", "note"
    index: int = 0  # cell number, from 1
    total: int = 0
    cell: Cell | None = None
    model: roofline.ModelBytes | None = None
    rep: int = 0
    reps: int = 0
    value: float | None = None  # the repetition's figure (tok/s or seconds)
    unit: str = ""
    results: list[Result] = field(default_factory=list)
    message: str = ""


def task_requests(selection: str) -> tuple[TaskRequest, ...]:
    """One request per selected task ("all", "none" or names), on the task's first synthetic test input."""
    if selection.strip().lower() == "none":
        return ()
    from radlite_edge.tasks import select_tasks
    from radlite_edge.tasks.synthetic import make_suite

    tasks = select_tasks(selection)
    inputs: dict[str, str] = {}
    for sample in make_suite(1, seed=0, n_train=0):
        inputs.setdefault(sample.task, sample.input)
    return tuple(TaskRequest(t.name, t.messages(inputs[t.name]), t.max_tokens) for t in tasks)


def parse_list(text: str, *, what: str, minimum: int = 0, maximum: int | None = None) -> tuple[int, ...]:
    """``1,2,4`` (llama-bench's list syntax; ``1-8+1`` ranges too) to a tuple of ints."""
    values: list[int] = []
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        try:
            if "-" in part[1:]:
                lo, _, rest = part.partition("-")
                hi, _, step = rest.partition("+")
                values += list(range(int(lo), int(hi) + 1, int(step or 1)))
            else:
                values.append(int(part))
        except ValueError:
            raise UserError(f"{what}: {text!r} is not a list of integers like 1,2,4") from None
    if not values:
        raise UserError(f"{what}: empty list")
    if min(values) < minimum:
        raise UserError(f"{what}: {min(values)} is below {minimum}")
    if maximum is not None and max(values) > maximum:
        raise UserError(f"{what}: {max(values)} is above {maximum}")
    return tuple(dict.fromkeys(values))


def default_threads() -> tuple[int, ...]:
    """1, 2, 4, ... up to every usable CPU, and that count itself: thread scaling to all cores."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    steps = [1]
    while steps[-1] * 2 < n:
        steps.append(steps[-1] * 2)
    return tuple(dict.fromkeys(steps + [n]))


def plan_cells(spec: GridSpec) -> list[Cell]:
    """The grid's cells in run order: model, then repacking, then threads, then depth, then the tests."""
    cells: list[Cell] = []
    top = max(spec.threads)
    for model in spec.models:
        for rp in spec.repack:
            if spec.load:
                cells.append(Cell(model, TestKind.LOAD, top, repack=rp))
            if spec.rss:
                cells.append(Cell(model, TestKind.MEMORY, top, repack=rp))
            for t in spec.threads:
                for d in spec.depth:
                    cells += [Cell(model, TestKind.PP, t, n_prompt=p, depth=d, repack=rp) for p in spec.n_prompt if p > 0]
                    cells += [Cell(model, TestKind.TG, t, n_gen=n, depth=d, repack=rp) for n in spec.n_gen if n > 0]
                cells += [Cell(model, TestKind.REQUEST, t, task=r.task, repack=rp) for r in spec.requests]
    return cells


def _context_tokens(spec: GridSpec, request_tokens: Sequence[int]) -> int:
    """The context every cell of a model fits in (one context per model: no reloads)."""
    need = [d + max(max(spec.n_prompt), max(spec.n_gen)) for d in spec.depth]
    need += [n + r.max_tokens for n, r in zip(request_tokens, spec.requests)]
    return max(max(need), 16)


def _request_prompt_tokens(path: Path, requests: Sequence[TaskRequest], profile: str) -> list[int]:
    """Each request's prompt length in tokens; the vocabulary-only load also proves llama.cpp takes the file."""
    vocab = tp.open_vocab(path)
    try:
        prompter = tp.ChatPrompter(vocab, profile) if requests else None
        return [len(prompter.tokens(r.messages)) for r in requests] if prompter else []
    finally:
        vocab.close()


class _Runner:
    def __init__(self, spec: GridSpec, on_event: Callable[[Event], None]) -> None:
        self.spec = spec
        self.emit = on_event
        self.cells = plan_cells(spec)
        self.index = 0
        self.run_id = uuid.uuid4().hex[:12]
        self.rng = np.random.default_rng(spec.seed)
        self.results: list[Result] = []
        self.depth_states: dict[int, tp.DepthState] = {}  # per model: its KV cache at each depth

    # -- records

    def _record(self, mb: roofline.ModelBytes, cell: Cell, metric: str, samples: Sequence[float], unit: str,
                *, stat: str = "mean", **params) -> Result:
        how = BenchParams(run=self.run_id, test=cell.test, file=mb.path.name, threads=cell.threads,
                          repack=cell.repack, file_bytes=mb.file_bytes, n_params=mb.n_params, arch=mb.arch,
                          n_prompt=cell.n_prompt, n_gen=cell.n_gen, n_depth=cell.depth, n_batch=self.spec.n_batch,
                          n_ubatch=self.spec.n_ubatch, flash_attn=self.spec.flash_attn, **params)
        return Result.from_samples(list(samples), stat=stat, keep=True, model=mb.name, level=mb.level,
                                   model_id=mb.identity, benchmark=cell.name, metric=metric, unit=unit, params=how)

    def _start(self, cell: Cell, mb: roofline.ModelBytes) -> None:
        self.index += 1
        self.emit(Event("cell", index=self.index, total=len(self.cells), cell=cell, model=mb, reps=self.spec.reps))

    def _rep(self, cell: Cell, rep: int, value: float, unit: str) -> None:
        self.emit(Event("rep", index=self.index, total=len(self.cells), cell=cell, rep=rep, reps=self.spec.reps,
                        value=value, unit=unit))

    def _done(self, cell: Cell, mb: roofline.ModelBytes, records: list[Result]) -> None:
        self.results += records
        self.emit(Event("done", index=self.index, total=len(self.cells), cell=cell, model=mb, results=records))

    # -- the run

    def run(self) -> list[Result]:
        # every file checked, by us and by llama.cpp, before any work
        models = [roofline.model_bytes(p) for p in self.spec.models]
        prompts = [_request_prompt_tokens(mb.path, self.spec.requests, self.spec.prompt_profile) for mb in models]
        for mb, prompt_tokens in zip(models, prompts):  # -p/-n/-d beyond what the model was trained on
            check_context(_context_tokens(self.spec, prompt_tokens), mb.identity.n_ctx_train,
                          what=f"{mb.path.name}: depth + prompt or generation length")
        self.emit(Event("plan", total=len(self.cells)))
        for mb, prompt_tokens in zip(models, prompts):
            for repack in self.spec.repack:
                self._model(mb, prompt_tokens, repack)
        return self.results

    def _model(self, mb: roofline.ModelBytes, prompt_tokens: list[int], repack: bool) -> None:
        spec = self.spec
        cells = [c for c in self.cells if c.model == mb.path and c.repack == repack]
        ctx = tp.ContextParams(_context_tokens(spec, prompt_tokens), max(spec.threads), spec.n_batch, spec.n_ubatch,
                               spec.flash_attn, repack)
        self.emit(Event("model", model=mb, total=len(self.cells),
                        message=f"context {ctx.n_ctx} tokens" + ("" if repack else ", weight repacking off")))
        bandwidth = {}
        for t in spec.threads:  # measured beside this model's decode: bandwidth drifts within minutes
            bandwidth[t] = roofline.probe_bandwidth(t)
            self.emit(Event("note", model=mb, message=f"read bandwidth at {t} thread(s): "
                                                      f"best {bandwidth[t].best:.1f}, median "
                                                      f"{bandwidth[t].median:.1f} GB/s"))
            self.results.append(Result.from_samples(
                list(bandwidth[t].gbps), stat="median", keep=True, model=mb.name, level=mb.level,
                model_id=mb.identity, benchmark="bandwidth", metric="read_gbps", unit="GB/s",
                params=BenchParams(run=self.run_id, test=TestKind.BANDWIDTH, file=mb.path.name, threads=t,
                                   repack=repack, probe=roofline.PROBE, array_bytes=bandwidth[t].array_bytes)))
        self.depth_states = {}
        llm = None
        try:
            for cell in cells:
                self._start(cell, mb)
                if cell.test is TestKind.LOAD:
                    llm = self._load(cell, mb, ctx)
                    continue
                if cell.test is TestKind.MEMORY:
                    self._memory(cell, mb, ctx, max(spec.n_prompt))
                    continue
                if llm is None:
                    llm = tp.open_model(mb.path, ctx)
                tp.set_threads(llm, cell.threads)
                if cell.test is TestKind.REQUEST:
                    self._request(llm, cell, mb, ctx, prompt_tokens)
                else:
                    self._pp_tg(llm, cell, mb, ctx, roofline.ceiling_gbps(bandwidth, cell.threads))
        finally:
            if llm is not None:
                llm.close()

    def _load(self, cell: Cell, mb: roofline.ModelBytes, ctx: tp.ContextParams):
        spec = self.spec
        cold, warm, resident = [], [], []
        llm = None
        for kind, samples in (("cold", cold), ("warm", warm)):
            for rep in range(spec.reps):
                if llm is not None:
                    llm.close()  # a mapped page cannot be evicted: unmap before dropping the cache
                    llm = None
                if kind == "cold":
                    tp.drop_page_cache(mb.path)
                    resident.append(tp.resident_fraction(mb.path))
                t0 = time.perf_counter()
                llm = tp.open_model(mb.path, ctx)
                tp.first_token_s(llm, self.rng)
                samples.append(time.perf_counter() - t0)
                self._rep(cell, rep + 1, samples[-1], f"s ({kind})")
        what = "Llama() with its context, then a one-token decode (the mmap'd weights page in on first use)"
        known = [r for r in resident if r is not None]
        records = [
            self._record(mb, cell, "load_cold_s", cold, "s", measured=what, cold_cache=COLD_METHOD,
                         resident_before=max(known) if known else None, n_ctx=ctx.n_ctx),
            self._record(mb, cell, "load_warm_s", warm, "s", measured=what,
                         warm_cache="the file read just before, its pages still cached", n_ctx=ctx.n_ctx),
        ]
        self._done(cell, mb, records)
        return llm

    def _memory(self, cell: Cell, mb: roofline.ModelBytes, ctx: tp.ContextParams, n_prompt: int) -> None:
        rss, wall = tp.peak_rss(mb.path, replace(ctx, threads=cell.threads), n_prompt)
        self._rep(cell, 1, rss / 2**30, "GiB")
        what = (f"peak RSS of a process that loads the model with a {ctx.n_ctx}-token context, decodes a "
                f"{min(n_prompt, ctx.n_ctx - tp.RSS_PROBE_GEN)}-token prompt and generates {tp.RSS_PROBE_GEN}")
        records = [
            self._record(mb, cell, "peak_rss_bytes", [rss], "B", stat="median", measured=what, n_ctx=ctx.n_ctx),
            self._record(mb, cell, "kv_cache_bytes", [mb.kv_bytes(ctx.n_ctx)], "B", stat="median",
                         measured=f"K and V (F16) for the {ctx.n_ctx}-token context", n_ctx=ctx.n_ctx),
        ]
        self._done(cell, mb, records)

    def _pp_tg(self, llm, cell: Cell, mb: roofline.ModelBytes, ctx: tp.ContextParams, bw: float) -> None:
        spec = self.spec
        if cell.depth not in self.depth_states:  # saved once, restored before every repetition
            self.depth_states[cell.depth] = tp.prefill(llm, tp.random_tokens(llm, cell.depth, self.rng))
        state = self.depth_states[cell.depth]
        n = cell.n_prompt if cell.test is TestKind.PP else cell.n_gen
        once = tp.pp_once if cell.test is TestKind.PP else tp.tg_once
        if spec.warmup:  # as llama-bench: a whole prompt run, or one generated token
            once(llm, state, n if cell.test is TestKind.PP else 1, self.rng)
        tok_s = []
        other = tp.OtherLoad()
        for rep in range(spec.reps):
            seconds = once(llm, state, n, self.rng)
            tok_s.append(n / seconds)
            self._rep(cell, rep + 1, tok_s[-1], "tok/s")
        extra: dict[str, object] = {"n_ctx": ctx.n_ctx, "kv_bytes": mb.kv_bytes(cell.depth + n),
                                    "other_cpu_share": other.share()}
        if cell.test is TestKind.TG:
            per_token = mb.tg_bytes_per_token(depth=cell.depth, n_gen=n)
            mean = float(np.mean(tok_s))
            extra.update(bytes_per_token=per_token, bandwidth_gbps=bw, bandwidth_probe=roofline.PROBE,
                         ceiling_tok_s=roofline.ceiling_tok_s(per_token, bw),
                         roofline_fraction=roofline.fraction(mean, per_token, bw))
        self._done(cell, mb, [self._record(mb, cell, "tok_s", tok_s, "tok/s", **extra)])

    def _request(self, llm, cell: Cell, mb: roofline.ModelBytes, ctx: tp.ContextParams,
                 prompt_tokens: list[int]) -> None:
        spec = self.spec
        i = next(k for k, r in enumerate(spec.requests) if r.task == cell.task)
        req = spec.requests[i]
        prompter = tp.ChatPrompter(llm, spec.prompt_profile)
        if spec.warmup:
            tp.request_once(llm, prompter, req.messages, 1)
        ttft, total = [], []
        other = tp.OtherLoad()
        for rep in range(spec.reps):
            a, b = tp.request_once(llm, prompter, req.messages, req.max_tokens)
            ttft.append(a)
            total.append(b)
            self._rep(cell, rep + 1, b, "s")
        extra = {"prompt_tokens": prompt_tokens[i], "max_tokens": req.max_tokens, "n_ctx": ctx.n_ctx,
                 "other_cpu_share": other.share(),
                 "measured": "chat template + prompt decode + greedy generation of all max_tokens (EOS ignored)"}
        self._done(cell, mb, [self._record(mb, cell, "ttft_s", ttft, "s", **extra),
                              self._record(mb, cell, "total_s", total, "s", **extra)])


def run_grid(spec: GridSpec, *, on_event: Callable[[Event], None] | None = None) -> list[Result]:
    """Measure every cell of ``spec``; a bad model file fails before anything runs."""
    if not spec.models:
        raise UserError("no model given: name one or more MODEL.gguf files, or --synthetic")
    if not 1 <= spec.reps <= MAX_COUNT:
        raise UserError(f"-r {spec.reps}: need 1 to {MAX_COUNT} repetitions")
    return _Runner(spec, on_event or (lambda e: None)).run()
