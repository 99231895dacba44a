"""The task-routed assistant: a report in, the task's structured answer out.

``Assistant(routes).answer(text)`` does what a deployment of the published models does
(RADLITE.md): a ``[TASK: x]`` tag picks the task as the published router reads it (or the
caller names the task), the published prompt is rendered through the default prompt profile
(the bytes eval and fine-tuning use), the route's model decodes greedily (label tasks held to
their labels in grammar mode, free in strict mode) and the registry's parser reads the answer.

Why it is shaped so:
- Routes that share a base GGUF share one loaded ``Engine``; a route's GGUF LoRA is set on
  that engine's context per request (llama.cpp adds the adapter's product beside the base
  weights), so nine task adapters over one base cost one base in memory and no reload.
- Weights stay mmap'd (``repack=False``: no copy into repacked buffers), so a model's memory
  is its file, and a ``ram`` budget below the sum of the routes' models loads on demand and
  closes the least recently used idle model to make room.
- One lock per loaded model: a llama.cpp context runs one decode at a time, so requests for
  one model queue, while requests for different models run side by side.
- The engine keeps the prompt prefix it evaluated last (system prompt and task instruction),
  so consecutive requests of one task evaluate only their report.
- The extractive tasks (NER, temporal comparison, abnormality detection) decode by prompt
  lookup (``speculative.py``) where the loaded model's rows are batch-invariant, probed once per
  model and adapter; elsewhere, and with ``speculative=False``, by the plain path. The answer is
  the same either way.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import UserError
from .identity import identify_model
from .limits import check_context
from .routes import Route, Routes
from .speculative import EXTRACTIVE_TASKS, SpecStats, exact_rows, generate_speculative
from .tasks import parsers
from .tasks.interface import PUBLISHED, detect_task
from .tasks.registry import get_task

MAX_REPORT_CHARS = 200_000  # far above any report; a pasted log must not tokenize for minutes
LORA_SCALE = 1.0  # an exported adapter carries its alpha/r in its weights (radlite export-lora)


class ReportTooLong(UserError):
    """A report whose prompt and answer do not fit the context (refused unless truncation is asked)."""


class RequestTimeout(UserError):
    """A request that did not finish (or start) within its time."""


@dataclass(frozen=True)
class Answer:
    task: str
    route: Route
    text: str  # what the model wrote
    value: Any  # the registry parser's value, in JSON form (sets as sorted lists)
    fields: dict[str, Any]  # the value under named fields (label, stage, labels, changes, entities, text)
    prompt_tokens: int
    tokens: int  # generated, the stop token not counted
    seconds: float  # from the request's start: queueing, loading and decoding
    truncated: bool = False  # the report was cut to fit the context (only when asked)

    def to_dict(self, *, paths: bool = False) -> dict[str, Any]:
        """JSON form; without ``paths`` the route names its files, never where they are (a server's reply)."""
        def name(p: Path | None) -> str | None:
            return None if p is None else (str(p) if paths else p.name)

        route = self.route
        return {"task": self.task, "text": self.text, "value": self.value, "fields": self.fields,
                "route": {"model": name(route.model), "level": route.level, "adapter": name(route.adapter),
                          "decoding": route.decoding},
                "prompt_tokens": self.prompt_tokens, "tokens": self.tokens, "seconds": round(self.seconds, 4),
                "truncated": self.truncated}


def _json_value(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(_json_value(v) for v in value)
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def answer_fields(task: str, value: Any) -> dict[str, Any]:
    """The parsed value under names a client reads without knowing the parser's shapes."""
    if task == "rads_assignment":
        return {"label": value, "system": parsers.rads_system(value)}
    if task in ("n_staging", "m_staging"):
        return {"stage": value}
    if task == "radiology_nli":
        return {"label": value}
    if task == "abnormality_detection":
        return {"labels": dict(value or {})}
    if task == "temporal_comparison":
        return {"changes": [{"finding": f, "change": c} for f, c in sorted(value or ())]}
    if task == "radiology_ner":
        return {"entities": [{"text": t, "type": k} for t, k in sorted(value or ())]}
    return {"text": value}


class _Loaded:
    """One base model in memory: its engine, its adapters, who is using it."""

    def __init__(self, path: Path, engine: Engine, nbytes: int) -> None:
        self.path, self.engine, self.nbytes = path, engine, nbytes
        self.lock = threading.Lock()  # one decode at a time on its context
        self.adapters: dict[Path, object] = {}  # llama_adapter_lora handles
        self.users = 0  # requests holding it; only an idle model is closed
        self.last_used = time.monotonic()
        self.exact: dict[Path | None, bool] = {}  # adapter -> rows batch-invariant (speculation allowed)

    def adapter(self, path: Path):
        if path not in self.adapters:
            self.adapters[path] = self.engine.load_lora(path)
        return self.adapters[path]


class Assistant:
    def __init__(self, routes: Routes, *, ram: int | None = None, n_ctx: int = PUBLISHED.generation.n_ctx,
                 n_threads: int | None = None, timeout: float | None = None,
                 max_report_chars: int = MAX_REPORT_CHARS, speculative: bool = False,
                 flash_attn: bool = False) -> None:
        for route in routes.routes.values():
            if route.temperature:
                raise UserError(f"{routes.source}: route {route.task!r}: temperature {route.temperature}: the "
                                "assistant decodes greedily; give 0 or null")
            for what, path in (("model", route.model), ("adapter", route.adapter)):
                if path is not None and not Path(path).is_file():
                    raise UserError(f"{routes.source}: route {route.task!r}: {what} {path} does not exist")
        for model in routes.models():  # a context the model was not trained on answers with garbage
            check_context(n_ctx, identify_model(model).n_ctx_train, what="-c", model=str(model))
        self.routes = routes
        self.ram = ram
        if ram is not None:
            biggest = max(routes.models(), key=self._footprint)
            if self._footprint(biggest) > ram:
                raise UserError(f"--ram {ram / 2**20:.0f} MiB is below {biggest.name} and its adapters "
                                f"({self._footprint(biggest) / 2**20:.0f} MiB): give at least that")
        self.n_ctx = n_ctx
        self.n_threads = n_threads or min(PUBLISHED.generation.n_threads, os.cpu_count() or 1)
        self.timeout = timeout
        self.max_report_chars = max_report_chars
        self.speculative = speculative
        self.flash_attn = flash_attn  # off: answers equal the notebook's call; on: Q4_1-like models can speculate
        self.spec = SpecStats()  # over every speculative answer
        self._models: dict[Path, _Loaded] = {}
        self._cond = threading.Condition()
        self.loads = 0  # models loaded so far (a budget makes this exceed the number of models)

    # ------------------------------------------------------------- memory

    def _footprint(self, model: Path) -> int:
        """Bytes a loaded base takes: its mapped file and the adapters routed over it."""
        adapters = {r.adapter for r in self.routes.routes.values() if r.model == model and r.adapter is not None}
        return Path(model).stat().st_size + sum(Path(a).stat().st_size for a in adapters)

    def loaded(self) -> list[Path]:
        with self._cond:
            return list(self._models)

    def _acquire(self, model: Path, deadline: float | None) -> _Loaded:
        with self._cond:
            while model not in self._models:
                need = self._footprint(model)
                used = sum(m.nbytes for m in self._models.values())
                if self.ram is None or used + need <= self.ram:
                    engine = Engine(model, n_ctx=self.n_ctx, n_threads=self.n_threads, n_parallel=1,
                                    flash_attn=self.flash_attn)
                    self._models[model] = _Loaded(model, engine, need)
                    self.loads += 1
                    break
                idle = [m for m in self._models.values() if m.users == 0]
                if idle:
                    self._evict(min(idle, key=lambda m: m.last_used))
                    continue
                # every loaded model is answering: wait for one to finish, then look again
                if not self._cond.wait(None if deadline is None else max(0.0, deadline - time.monotonic())):
                    raise RequestTimeout("timed out waiting for memory to load the model (--ram)")
            loaded = self._models[model]
            loaded.users += 1
            loaded.last_used = time.monotonic()
            return loaded

    def _release(self, loaded: _Loaded) -> None:
        with self._cond:
            loaded.users -= 1
            loaded.last_used = time.monotonic()
            self._cond.notify_all()

    def _evict(self, loaded: _Loaded) -> None:
        del self._models[loaded.path]
        loaded.adapters.clear()  # llama.cpp frees a model's adapters with it
        loaded.engine.close()

    def close(self) -> None:
        with self._cond:
            for loaded in list(self._models.values()):
                self._evict(loaded)

    def __enter__(self) -> "Assistant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ answers

    def route_for(self, text: str, task: str | None = None) -> tuple[str, str]:
        """(task, report): ``task`` as named, else read from the text's ``[TASK: x]`` tag as the published router does."""
        if task is None:
            return detect_task(text)
        get_task(task)  # an unknown name is one line with the choices
        return task, text

    def answer(self, text: str, task: str | None = None, *, truncate: bool = False, max_tokens: int | None = None,
               timeout: float | None = None) -> Answer:
        t0 = time.monotonic()
        if not isinstance(text, str) or not text.strip():
            raise UserError("an empty report: give the report text")
        if len(text) > self.max_report_chars:
            raise UserError(f"a report of {len(text)} characters: give at most {self.max_report_chars}")
        task_name, report = self.route_for(text, task)
        route = self.routes[task_name]
        budget = route.answer_tokens
        if max_tokens is not None:
            if not 1 <= max_tokens <= budget:
                raise UserError(f"max_tokens {max_tokens}: give 1 to {budget} for {task_name}")
            budget = max_tokens
        timeout = self.timeout if timeout is None else timeout
        deadline = None if timeout is None else t0 + timeout
        loaded = self._acquire(route.model, deadline)
        try:
            if not loaded.lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline - time.monotonic())):
                raise RequestTimeout(f"timed out after {timeout:g} s waiting for {route.model.name}")
            try:
                return self._generate(loaded, route, report, budget, truncate=truncate, deadline=deadline, t0=t0)
            finally:
                loaded.lock.release()
        finally:
            self._release(loaded)

    def _generate(self, loaded: _Loaded, route: Route, report: str, budget: int, *, truncate: bool,
                  deadline: float | None, t0: float) -> Answer:
        task = get_task(route.task)
        engine = loaded.engine
        tokens, report, truncated = self._prompt_tokens(engine, task, report, budget, truncate=truncate)
        engine.use_lora([] if route.adapter is None else [(loaded.adapter(route.adapter), LORA_SCALE)])

        def check_time(prompt: int, step: int, logits) -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise RequestTimeout(f"timed out after {deadline - t0:g} s ({step} tokens written)")

        language = task.language if route.decoding == "grammar" else None
        if self.speculative and route.task in EXTRACTIVE_TASKS and self._exact(loaded, route.adapter, tokens):
            stats = SpecStats()
            try:
                gen = generate_speculative(engine, tokens, max_tokens=budget, language=language, trace=check_time,
                                           stats=stats)
            finally:
                with self._cond:  # answers on two models run at once: the totals are shared
                    self.spec.add(stats)
        else:
            gen = engine.generate([tokens], max_tokens=budget, language=language, trace=check_time)[0]
        value = task.parse(gen.text)
        return Answer(route.task, route, gen.text, _json_value(value), answer_fields(route.task, _json_value(value)),
                      gen.prompt_tokens, gen.n_tokens, time.monotonic() - t0, truncated)

    @staticmethod
    def _exact(loaded: _Loaded, adapter: Path | None, tokens: list[int]) -> bool:
        """Whether this model with this adapter verifies drafts bit for bit (probed on first use)."""
        if adapter not in loaded.exact:
            loaded.exact[adapter] = exact_rows(loaded.engine, tokens)
        return loaded.exact[adapter]

    def _prompt_tokens(self, engine: Engine, task, report: str, budget: int, *,
                       truncate: bool) -> tuple[list[int], str, bool]:
        """The rendered prompt's tokens; a prompt whose answer would overflow the context is refused,
        or with ``truncate`` its report is cut from the end until it fits."""
        tokens = engine.tokenize(task.prompt(report))
        over = len(tokens) + budget - engine.n_ctx
        if over <= 0:
            return tokens, report, False
        if not truncate:
            raise ReportTooLong(f"the report takes {len(tokens)} prompt tokens and its answer up to {budget}: more "
                                f"than the context of {engine.n_ctx} tokens; shorten it by about {over} tokens, or "
                                "ask for truncation")
        piece = engine.llm.tokenize(report.encode("utf-8"), add_bos=False, special=False)
        keep = len(piece) - over
        while keep > 0:
            cut = engine.llm.detokenize(piece[:keep]).decode("utf-8", errors="ignore")
            tokens = engine.tokenize(task.prompt(cut))
            if len(tokens) + budget <= engine.n_ctx:
                return tokens, cut, True
            keep -= max(1, len(tokens) + budget - engine.n_ctx)  # re-tokenizing at the cut may differ by a few
        raise ReportTooLong(f"the {task.name} prompt and its answer of {budget} tokens leave no room for a report "
                            f"in the context of {engine.n_ctx} tokens")
