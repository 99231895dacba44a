"""What a sweep's table says: Pareto fronts, the smallest level that holds a task's accuracy,
and which file to deploy per task on a device (``radlite recommend``), with routes for the assistant.

The table is ``<run>/tradeoff.json`` (``bench.tradeoff.write_table``): one row per file measured,
with its size, speed, peak RSS, fidelity and per-task scores. Nothing here measures anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from radlite_edge.errors import UserError

GiB = 2 ** 30
DEFAULT_TOLERANCE = 0.01  # one point of the task metric


@dataclass(frozen=True)
class Device:
    name: str
    ram_bytes: int  # physical memory
    reserve_bytes: int  # what the OS and the front end keep (our assumption, stated in the table)
    note: str

    @property
    def budget_bytes(self) -> int:
        return self.ram_bytes - self.reserve_bytes


# Budgets only: speeds in the table are the machine the sweep ran on, unless a bench run made on
# the device itself replaces them (recommend --bench).
DEVICES = {
    "pi5-4g": Device("Raspberry Pi 5, 4 GB", 4 * GiB, GiB // 2, "Raspberry Pi OS Lite, headless service"),
    "pi5-8g": Device("Raspberry Pi 5, 8 GB", 8 * GiB, GiB // 2, "Raspberry Pi OS Lite, headless service"),
    "kiosk-4g": Device("4 GB kiosk", 4 * GiB, 3 * GiB // 2, "a browser front end in kiosk mode beside the service"),
    "laptop-16g": Device("16 GB laptop", 16 * GiB, 6 * GiB, "a desktop session and a browser beside the service"),
}


def load_table(run: Path) -> dict:
    from .tradeoff import TABLE_FILE

    path = Path(run) / TABLE_FILE if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise UserError(f"{run}: no sweep table here ({TABLE_FILE}); run radlite tradeoff -o {run} first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a sweep table ({e})") from None
    if not isinstance(data, dict) or data.get("format") != "radlite-tradeoff/1" or not data.get("rows"):
        raise UserError(f"{path}: not a radlite-tradeoff/1 table, or no files measured in it")
    return data


def score(row: dict, task: str, decoding: str = "strict") -> dict | None:
    return row["tasks"].get(task, {}).get(decoding)  # free-text tasks carry their strict score as grammar too


def complete_decoding(table: dict) -> str:
    """The decoding every file was scored in on every task: grammar (the deployment mode) when the
    sweep measured it throughout, else strict."""
    rows, tasks = table["rows"], table["spec"]["tasks"]
    full = all(score(r, t, "grammar") for r in rows for t in tasks)
    return "grammar" if full else "strict"


def value(row: dict, task: str, decoding: str = "strict") -> float | None:
    s = score(row, task, decoding)
    v = s.get("value") if s else None
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def reference_row(rows: Sequence[dict], row: dict) -> dict | None:
    return next((r for r in rows if r["key"] == row.get("reference")), None)


def drop(rows: Sequence[dict], row: dict, task: str, decoding: str = "strict") -> float | None:
    """F16's score less this file's (positive: the file lost accuracy)."""
    ref = reference_row(rows, row)
    a, b = (value(ref, task, decoding) if ref else None), value(row, task, decoding)
    return None if a is None or b is None else a - b


def holds(rows: Sequence[dict], row: dict, task: str, tolerance: float, decoding: str = "strict") -> bool:
    """Within ``tolerance`` of its F16, or inside F16's 95 % interval."""
    ref = reference_row(rows, row)
    if ref is None:
        return False
    v, rv = value(row, task, decoding), value(ref, task, decoding)
    if v is None or rv is None:
        return False
    low = (score(ref, task, decoding) or {}).get("ci95", [rv, rv])[0]
    return v >= rv - tolerance - 1e-12 or v >= low


def pareto_front(rows: Iterable[dict], task: str, *, x: str, decoding: str = "strict") -> list[dict]:
    """The rows no other row beats on both ``x`` (smaller is better: bytes, latency_s) and accuracy."""
    pts = [(xv, v, r) for r in rows if (v := value(r, task, decoding)) is not None and (xv := x_value(r, task, x))
           is not None]
    front, best = [], -math.inf
    for xv, v, r in sorted(pts, key=lambda p: (p[0], -p[1])):
        if v > best:
            front.append(r)
            best = v
    return front


def x_value(row: dict, task: str, x: str) -> float | None:
    if x == "latency_s":
        return row["tasks"].get(task, {}).get("latency_s")
    return row.get(x)


def smallest_holding(rows: Sequence[dict], task: str, tolerance: float = DEFAULT_TOLERANCE,
                     decoding: str = "strict") -> dict[tuple[str, str], dict | None]:
    """Per model and importance-matrix source, the smallest file that holds F16's accuracy."""
    out: dict[tuple[str, str], dict | None] = {}
    for r in rows:
        if r.get("reference") is None or r["key"] == r["reference"]:
            continue
        group = (r["model"], r["imatrix"])
        out.setdefault(group, None)
        if holds(rows, r, task, tolerance, decoding) and (out[group] is None or r["bytes"] < out[group]["bytes"]):
            out[group] = r
    return out


# ------------------------------------------------------------------ recommend


@dataclass(frozen=True)
class Budget:
    ram_bytes: int
    min_tok_s: float | None = None
    max_latency_s: float | None = None
    max_drop: float = DEFAULT_TOLERANCE
    decoding: str = "grammar"  # the assistant's default: label tasks constrained


@dataclass
class Pick:
    task: str
    row: dict | None
    why: str  # the reason for the choice, or why nothing qualifies


@dataclass
class Recommendation:
    budget: Budget
    picks: list[Pick]
    together_bytes: int  # the chosen files loaded in one process at once
    fits_together: bool
    notes: list[str] = field(default_factory=list)


def _rss(row: dict) -> int | None:
    return row.get("peak_rss_bytes")


def _reject(rows: Sequence[dict], r: dict, task: str, b: Budget) -> str | None:
    """Why a file cannot serve a task under the budget (None: it can)."""
    if value(r, task, b.decoding) is None:
        return "not scored"
    rss = _rss(r)
    if rss is None or rss > b.ram_bytes:
        return "ram"
    if b.min_tok_s is not None and (r.get("tg_tok_s") or 0) < b.min_tok_s:
        return "speed"
    lat = r["tasks"].get(task, {}).get("latency_s")
    if b.max_latency_s is not None and (lat is None or lat > b.max_latency_s):
        return "latency"
    if reference_row(rows, r) is not None and not holds(rows, r, task, b.max_drop, b.decoding):
        return "drop"
    return None


_WHY_NONE = {
    "ram": "nothing fits: the smallest file needs {need} of RAM, the budget is {budget}",
    "speed": "nothing that fits decodes at {min_tok_s} tok/s or more",
    "latency": "nothing that fits answers within {max_latency_s} s",
    "drop": "nothing that fits stays within {max_drop_pts} points of its F16",
    "not scored": "no file was scored on this task",
}


def _not_learned(rows: Sequence[dict], row: dict, task: str, decoding: str) -> str:
    """A warning when the model's own F16 is not above the task's best trivial answer (its
    interval reaches the floor): every level then "holds", and the pick among them is noise."""
    ref = reference_row(rows, row)
    s = score(ref, task, decoding) if ref else None
    if not s or s.get("floor") is None or not s.get("ci95"):
        return ""
    if s["ci95"][0] > s["floor"]:
        return ""
    name = f"{s['floor_name']} " if s.get("floor_name") else ""
    return f"; F16 is not above its floor ({name}{100 * s['floor']:.1f}): not learned, the pick is noise"


def recommend(table: dict, budget: Budget, tasks: Sequence[str] | None = None) -> Recommendation:
    rows = table["rows"]
    tasks = list(tasks or table["spec"]["tasks"])
    picks = []
    for task in tasks:
        reasons: dict[str, int] = {}
        ok = []
        for r in rows:
            why = _reject(rows, r, task, budget)
            if why is None:
                ok.append(r)
            else:
                reasons[why] = reasons.get(why, 0) + 1
        if ok:
            best = max(ok, key=lambda r: (round(value(r, task, budget.decoding), 6), -r["bytes"]))
            d = drop(rows, best, task, budget.decoding)
            picks.append(Pick(task, best, f"best of {len(ok)} that qualify" +
                              (f"; {round(-100 * d, 1) + 0.0:+.1f} pts vs F16" if d is not None else "") +
                              _not_learned(rows, best, task, budget.decoding)))
            continue
        fits = [r for r in rows if _rss(r) is not None and _rss(r) <= budget.ram_bytes]
        main = "ram" if not fits else max((k for k in reasons if k != "ram"), key=reasons.get, default="not scored")
        need = min((_rss(r) for r in rows if _rss(r) is not None), default=0)
        picks.append(Pick(task, None, _WHY_NONE[main].format(
            need=fmt_bytes(need), budget=fmt_bytes(budget.ram_bytes), min_tok_s=budget.min_tok_s,
            max_latency_s=budget.max_latency_s, max_drop_pts=f"{100 * budget.max_drop:g}")))
    chosen = {p.row["key"]: p.row for p in picks if p.row is not None}
    runtime = table.get("runtime_rss_bytes") or 0
    together = runtime + sum(max(0, _rss(r) - runtime) for r in chosen.values())
    rec = Recommendation(budget, picks, together, together <= budget.ram_bytes)
    if chosen and not rec.fits_together:
        rec.notes.append(f"the {len(chosen)} files need {fmt_bytes(together)} loaded together, over the "
                         f"{fmt_bytes(budget.ram_bytes)} budget: serve them one at a time (radlite serve --ram "
                         "loads on demand and evicts the least recently used)")
    return rec


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 2 ** 20:.0f} MiB"


def apply_bench(table: dict, records: Sequence) -> int:
    """Replace the table's decode speeds by a ``radlite bench`` run made on the target device:
    the best tg tok/s over threads per file, joined on the file's digest, else on model name and
    level. Returns how many rows changed."""
    from radlite_edge.results import BenchParams, TestKind

    best: dict[tuple, float] = {}
    for r in records:
        if not isinstance(r.params, BenchParams) or r.params.test is not TestKind.TG:
            continue
        for key in ((r.model_id.digest,) if r.model_id else ()) + ((r.model, r.level),):
            best[key] = max(best.get(key, 0.0), r.value)
    changed = 0
    for row in table["rows"]:
        digest = (row.get("model_id") or {}).get("digest")
        tg = best.get((digest,)) if digest else None
        tg = tg if tg is not None else best.get((row["model"], row["level"]))
        if tg is not None:
            row["tg_tok_s"], row["tg_source"] = tg, "bench"
            changed += 1
    return changed


def routes_for(rec: Recommendation):
    """The recommendation as the assistant's routes (``radlite_edge.routes``)."""
    from radlite_edge.routes import Route, Routes

    routes = {}
    for p in rec.picks:
        if p.row is None:
            continue
        routes[p.task] = Route(task=p.task, model=p.row["path"], level=p.row["level"], adapter=None,
                               decoding=rec.budget.decoding, max_tokens=None, temperature=None)
    if not routes:
        raise UserError("nothing to route: no task has a file within the budget")
    return Routes(routes=routes, source="radlite recommend")
