"""The routes file: which model, level, adapter and decoding serve each task.

A deployment answers each of the nine tasks with the model that does it best (RadLite routes
rads, impression, NLI, QA and staging to Qwen2.5-3B and the extractive tasks to Qwen3-4B);
``radlite recommend`` writes the routes its trade-off sweep finds, ``radlite run`` and
``radlite serve`` read them. One JSON file::

    {"format": "radlite-routes/1",
     "routes": {"rads_assignment": {"model": "qwen2.5-3b-Q4_K_M.gguf", "level": "Q4_K_M",
                                    "adapter": null, "decoding": "grammar",
                                    "max_tokens": null, "temperature": null}, ...}}

Relative paths resolve against the routes file's folder, so a folder of models with its
routes file moves as one piece (a kiosk image, a read-only model folder). ``max_tokens``
null is the published per-task value; ``temperature`` null (or 0) is greedy decoding.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import UserError
from .fileio import atomic_path, json_object, resolve
from .levels import get_level
from .tasks.interface import PUBLISHED
from .tasks.labels import TASK_NAMES

FORMAT = "radlite-routes/1"
DECODINGS = ("grammar", "strict")  # grammar: label tasks constrained to their labels; strict: free generation
DEFAULT_DECODING = "grammar"
MAX_TOKENS_LIMIT = 8192  # far above any task's answer; a typo must not run for an hour
MAX_TEMPERATURE = 2.0
_FIELDS = ("model", "level", "adapter", "decoding", "max_tokens", "temperature")


@dataclass(frozen=True)
class Route:
    task: str
    model: Path  # a GGUF; absolute once loaded
    level: str | None = None  # the levels table's name, for people and records (the file is the truth)
    adapter: Path | None = None  # a GGUF LoRA applied over ``model`` per request
    decoding: str = DEFAULT_DECODING
    max_tokens: int | None = None  # None: the published max tokens of the task
    temperature: float | None = None  # None or 0: greedy

    def __post_init__(self) -> None:
        where = f"route {self.task!r}"
        if self.task not in TASK_NAMES:
            raise UserError(f"unknown task {self.task!r}{_did_you_mean(self.task, TASK_NAMES)}: "
                            f"choose from {', '.join(TASK_NAMES)}")
        object.__setattr__(self, "model", _gguf_path(self.model, f"{where}: model"))
        if self.adapter is not None:
            object.__setattr__(self, "adapter", _gguf_path(self.adapter, f"{where}: adapter"))
        if self.level is not None:
            if not isinstance(self.level, str):
                raise UserError(f"{where}: level must be a level name such as \"Q4_K_M\" or null")
            try:
                object.__setattr__(self, "level", get_level(self.level).name)
            except UserError as e:
                raise UserError(f"{where}: {e}") from None
        if self.decoding not in DECODINGS:
            raise UserError(f"{where}: decoding {self.decoding!r}: choose {' or '.join(DECODINGS)}")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool)
                                            or not 1 <= self.max_tokens <= MAX_TOKENS_LIMIT):
            raise UserError(f"{where}: max_tokens {self.max_tokens!r}: give 1 to {MAX_TOKENS_LIMIT}, or null "
                            "for the published value")
        if self.temperature is not None:
            if isinstance(self.temperature, bool) or not isinstance(self.temperature, (int, float)) \
                    or not 0 <= self.temperature <= MAX_TEMPERATURE:
                raise UserError(f"{where}: temperature {self.temperature!r}: give 0 to {MAX_TEMPERATURE}, or null "
                                "for greedy decoding")
            object.__setattr__(self, "temperature", float(self.temperature))

    @property
    def answer_tokens(self) -> int:
        """The most tokens an answer may take: the route's own bound, else the published one."""
        return self.max_tokens if self.max_tokens is not None else PUBLISHED.max_tokens[self.task]

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        """The file's form: paths relative to ``base`` where they lie under it."""
        return {"model": _store_path(self.model, base), "level": self.level,
                "adapter": None if self.adapter is None else _store_path(self.adapter, base),
                "decoding": self.decoding, "max_tokens": self.max_tokens, "temperature": self.temperature}


@dataclass(frozen=True)
class Routes:
    routes: Mapping[str, Route]  # task -> its route, in the registry's task order
    source: str | None = field(default=None)  # where they came from: a file, or what made them

    def __post_init__(self) -> None:
        for task, route in self.routes.items():
            if task != route.task:
                raise UserError(f"routes: the entry {task!r} holds the route of {route.task!r}")
        if not self.routes:
            raise UserError(f"{self.source or 'routes'}: no task is routed: give at least one")
        ordered = {t: self.routes[t] for t in TASK_NAMES if t in self.routes}
        object.__setattr__(self, "routes", MappingProxyType(ordered))
        if isinstance(self.source, Path):
            object.__setattr__(self, "source", str(self.source))

    def __getitem__(self, task: str) -> Route:
        if task not in self.routes:
            routed = ", ".join(self.routes)
            raise UserError(f"task {task!r} is not routed{_did_you_mean(task, tuple(self.routes))} "
                            f"({self.source or 'routes'} routes {routed})")
        return self.routes[task]

    def __contains__(self, task: str) -> bool:
        return task in self.routes

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.routes)

    def models(self) -> tuple[Path, ...]:
        """The distinct base GGUFs, in order of first use: each is loaded once, whatever its adapters."""
        return tuple(dict.fromkeys(r.model for r in self.routes.values()))

    def to_dict(self, base: Path | None = None) -> dict[str, Any]:
        return {"format": FORMAT, "routes": {t: r.to_dict(base) for t, r in self.routes.items()}}


def _did_you_mean(name: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(name), choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _gguf_path(value: Any, where: str) -> Path:
    if isinstance(value, str):
        value = value.strip()
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise UserError(f"{where}: give the path of a .gguf file")
    path = Path(value)
    if path.suffix.lower() != ".gguf":
        raise UserError(f"{where} {str(path)!r} is not a .gguf file (export a peft adapter with "
                        "`radlite export-lora`, convert a checkpoint with `radlite convert`)")
    return path


def _store_path(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return Path(os.path.abspath(path)).relative_to(os.path.abspath(base)).as_posix()
        except ValueError:
            pass  # outside the routes file's folder: kept absolute, so it still resolves after a move
    return str(Path(os.path.abspath(path)) if base is not None else path)


def _resolve(value: Any, base: Path, where: str) -> Path:
    path = _gguf_path(value, where)
    return path if path.is_absolute() else Path(os.path.normpath(base / path))


def routes_from_dict(data: Any, *, base: Path, source: str, check_files: bool = True) -> Routes:
    """Routes from the file's JSON form, relative paths against ``base``; each mistake is one line."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{source}: not a routes file (format {found!r}; expected {FORMAT!r})")
    unknown = set(data) - {"format", "routes"}
    if unknown:
        raise UserError(f"{source}: unknown key {sorted(unknown)[0]!r}: a routes file holds format and routes")
    table = data.get("routes")
    if not isinstance(table, dict):
        raise UserError(f"{source}: \"routes\" must be an object mapping task names to routes")
    routes = {}
    for task, entry in table.items():
        if task not in TASK_NAMES:
            raise UserError(f"{source}: unknown task {task!r}{_did_you_mean(task, TASK_NAMES)}: "
                            f"choose from {', '.join(TASK_NAMES)}")
        if not isinstance(entry, dict):
            raise UserError(f"{source}: route {task!r} must be an object with a model")
        extra = set(entry) - set(_FIELDS)
        if extra:
            name = sorted(extra)[0]
            raise UserError(f"{source}: route {task!r}: unknown field {name!r}{_did_you_mean(name, _FIELDS)}")
        if "model" not in entry:
            raise UserError(f"{source}: route {task!r} has no model: give the path of a .gguf file")
        try:
            route = Route(task, model=_resolve(entry["model"], base, f"route {task!r}: model"),
                          level=entry.get("level"),
                          adapter=None if entry.get("adapter") is None else
                          _resolve(entry["adapter"], base, f"route {task!r}: adapter"),
                          decoding=entry.get("decoding", DEFAULT_DECODING),
                          max_tokens=entry.get("max_tokens"), temperature=entry.get("temperature"))
        except UserError as e:
            raise UserError(f"{source}: {e}") from None
        if check_files:
            for what, path in (("model", route.model), ("adapter", route.adapter)):
                if path is not None and not path.is_file():
                    raise UserError(f"{source}: route {task!r}: {what} {path} does not exist")
        routes[task] = route
    return Routes(routes, source=source)


def load_routes(path: Path | str, *, check_files: bool = True) -> Routes:
    """Read a routes file; a missing, unreadable or malformed one is a UserError naming what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such routes file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text: a routes file is JSON") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    return routes_from_dict(data, base=resolve(path).parent, source=str(path), check_files=check_files)


def is_routes_file(path: Path) -> bool:
    """A routes file (``save_routes``'s own output, which a rerun may replace)."""
    data = json_object(Path(path))
    return data is not None and data.get("format") == FORMAT


def save_routes(routes: Routes, path: Path | str, *, owned: Callable[[Path], bool] | None = None) -> Path:
    """Write ``routes`` to ``path`` atomically; paths under its folder are stored relative to it.
    With ``owned``, an existing file it does not recognize is kept and the write refused."""
    path = Path(path)
    text = json.dumps(routes.to_dict(base=resolve(path).parent), indent=1) + "\n"
    with atomic_path(path, owned=owned) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def uniform_routes(model: Path | str, adapter: Path | str | None = None, decoding: str = DEFAULT_DECODING, *,
                   level: str | None = None, source: str | None = None) -> Routes:
    """Every task to one model (and one adapter): a single fine-tuned model serving the nine."""
    return Routes({t: Route(t, Path(model), level, None if adapter is None else Path(adapter), decoding)
                   for t in TASK_NAMES}, source=source or f"every task to {model}")


def published_routes(*, q25: Path | str, q3: Path | str, level: str | None = None,
                     decoding: str = DEFAULT_DECODING) -> Routes:
    """The published routing (RADLITE.md): ``q25`` (Qwen2.5-3B) and ``q3`` (Qwen3-4B) GGUFs by task."""
    models = {"q25": Path(q25), "q3": Path(q3)}
    return Routes({t: Route(t, models[PUBLISHED.routes[t]], level, None, decoding) for t in TASK_NAMES},
                  source="the published routes")
