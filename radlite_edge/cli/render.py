"""What every verb shows on the terminal: the two consoles, progress bars, tables.

Progress goes to stderr and only when it is a terminal; results go to stdout, so a pipe
gets the table or the JSON and nothing else.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Callable, Sequence

from rich.console import Console
from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

# a pipe gets rich's default 80 columns, which would cut the figures short
_PIPE_WIDTH = 160


class LineProgress:
    """Progress for a pipe or a CI log: a line at a step's first progress, every ``every`` seconds,
    and when it completes; the subset of rich's ``Progress`` API that the verbs use."""

    def __init__(self, *, unit: str = "", every: float = 10.0) -> None:
        self.unit, self.every = unit, every
        self._tasks: dict[int, dict] = {}
        self._t0 = time.monotonic()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields) -> int:
        task = len(self._tasks)
        self._tasks[task] = {"description": description, "total": total, "completed": 0, "printed": None, **fields}
        return task

    def advance(self, task: int, advance: float = 1) -> None:
        self.update(task, completed=self._tasks[task]["completed"] + advance)

    def update(self, task: int, *, completed: float | None = None, total: float | None = None,
               description: str | None = None, **fields) -> None:
        t = self._tasks[task]
        new_step = description is not None and description != t["description"]
        for key, value in (("completed", completed), ("total", total), ("description", description)):
            if value is not None:
                t[key] = value
        t.update(fields)
        now = time.monotonic()
        done = t["total"] is not None and t["completed"] >= t["total"]
        if not t["completed"]:
            return  # nothing done yet: a command that fails at once prints its error alone
        if new_step or done or t["printed"] is None or now - t["printed"] >= self.every:
            if done and t.get("reported_done"):
                return
            t["printed"], t["reported_done"] = now, done
            total_text = f"/{self._amount(t['total'])}" if t["total"] else ""
            plain(err, f"{t['description']}: {self._amount(t['completed'])}{total_text} "
                       f"({now - self._t0:.0f} s)")

    def _amount(self, n: float) -> str:
        return f"{n / 1e6:.1f} MB" if self.unit == "bytes" else f"{int(n)}"


def bytes_progress() -> Progress | LineProgress:
    if not err.is_terminal:
        return LineProgress(unit="bytes")
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
        console=err, transient=False,
    )


def count_progress() -> Progress | LineProgress:
    if not err.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)


def rate_progress() -> Progress | LineProgress:
    """A count with its rate (samples/s), as the evaluation runner shows it."""
    if not err.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]:.2f} samples/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err)


def rate_callback(bar: Progress | LineProgress, task) -> Callable[[int, int], None]:
    """progress(done, total) that also shows the rate since the first call (a resumed run
    starts with its finished samples, which took no time now)."""
    start: list[float | int] = []

    def progress(done: int, total: int) -> None:
        if not start:
            start.extend((time.perf_counter(), done))
        elapsed = time.perf_counter() - start[0]
        bar.update(task, completed=done, total=total, rate=(done - start[1]) / elapsed if elapsed else 0.0)

    return progress


def print_table(table: Table, console: Console | None = None) -> None:
    console = console or out
    (console if console.is_terminal else Console(soft_wrap=True, width=_PIPE_WIDTH, file=console.file)).print(table)


def print_json(data: object) -> None:
    out.print_json(json.dumps(data, default=str))


def print_result(args: argparse.Namespace, result, line: str) -> int:
    """A step's result: JSON with --json; else a note when its output was up to date, and its line."""
    if args.json:
        print_json(result.to_dict())
        return 0
    if getattr(result, "skipped", False):
        plain(err, f"{result.path}: up to date with its inputs (manifest), kept; --force to redo")
    out.print(line)
    return 0


def plain(console: Console, text: str) -> None:
    """A line printed as it is (file names hold brackets rich would read as markup)."""
    console.print(text, markup=False, highlight=False)


def eval_table(summaries: Sequence, *, title: str, digits: int = 3, interval: bool = True) -> Table:
    """Task × model table of the primary metric, one column per evaluated model.

    Laid out for 80 columns with two models: the metric sits under the task name, n has a
    column of its own, and a value is never cut (a long model name is abbreviated instead).
    """
    from ..eval_records import decoding_label

    table = Table(title=title)
    table.add_column("task / metric", no_wrap=True, overflow="ellipsis")
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("floor", justify="right", no_wrap=True)
    modes = {s.settings.grammar for s in summaries}
    splits = {s.split for s in summaries}
    for s in summaries:
        mode = ("\ngrammar" if s.settings.grammar else "\nstrict") if len(modes) > 1 else ""
        split = f"\n{s.split}" if len(splits) > 1 else ""
        lora = f"\n+ {s.settings.lora.rsplit('@', 1)[0]}" if s.settings.lora else ""
        table.add_column(f"{s.model_id.name} {s.model_id.level}{lora}{split}{mode}", justify="right", no_wrap=True,
                         overflow="ellipsis", min_width=digits + 2 + (11 if interval else 0))
    for task_name, first in summaries[0].tasks.items():
        cells = []
        for s in summaries:
            e = s.tasks[task_name]
            cells.append(f"{e.value:.{digits}f}" + (f" {e.ci95[0]:.2f}–{e.ci95[1]:.2f}" if interval else ""))
        ns = {s.tasks[task_name].n for s in summaries}
        name, floor = first.floor
        table.add_row(f"{task_name}\n[dim]{first.metric}[/dim]", "/".join(map(str, sorted(ns))),
                      f"{floor:.2f}\n[dim]{name}[/dim]", *cells)
    table.caption = ("; ".join(sorted(decoding_label(m) for m in modes))
                     + (" · value, then its 95 % bootstrap interval" if interval else "")
                     + " · floor: the best trivial answer (majority, constant, echo, empty) on the same samples")
    return table


def parse_size(text: str) -> int:
    """4G, 512M, 1.5GiB, 1000 -> bytes (an argparse type)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in units else ""
    try:
        return int(float(t[: len(t) - len(unit)]) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4G, 512M)") from None
