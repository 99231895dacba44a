"""What ``radlite bench`` shows while it runs: a rich live dashboard, or plain lines.

``render(state)`` is a pure function of the state; ``Dashboard`` feeds it the runner's
events and refreshes a ``Live(auto_refresh=False)`` only then. The runner sends events
between timed regions only, so no refresh thread ever competes with a measurement
for a core (on a 2-core machine it would cost a 2-thread run half its speed).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from radlite_edge.results import Result

from . import formats
from .grid import Cell, Event


@dataclass
class DashboardState:
    machine: str
    total: int = 0
    index: int = 0
    cell: Cell | None = None
    model: str = ""
    level: str = ""
    rep: int = 0
    reps: int = 0
    last: str = ""  # the last repetition's figure, with its unit
    rss_bytes: int | None = None
    roofline: float | None = None  # the last tg cell's share of its ceiling
    other_cpu: float | None = None  # the share of the CPUs other processes took during the last test
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    finished: bool = False


def apply(state: DashboardState, event: Event) -> None:
    """Fold one runner event into the state."""
    if event.kind == "plan":
        state.total = event.total
    elif event.kind == "model" and event.model is not None:
        state.model, state.level = event.model.name, event.model.level
        state.notes.append(f"{event.model.name} {event.model.level}: {event.message}")
    elif event.kind == "note":
        state.notes.append(event.message)
    elif event.kind == "cell":
        state.index, state.cell, state.rep, state.reps, state.last = event.index, event.cell, 0, event.reps, ""
    elif event.kind == "rep":
        state.rep = event.rep
        state.last = f"{event.value:.4g} {event.unit}" if event.value is not None else ""
    elif event.kind == "done":
        state.results += event.results
        for r in event.results:
            if r.params.roofline_fraction is not None:
                state.roofline = r.params.roofline_fraction
            if r.params.other_cpu_share is not None:
                state.other_cpu = r.params.other_cpu_share
    del state.notes[:-4]


def _current(state: DashboardState) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    cell = state.cell
    where = "waiting"
    if cell is not None:
        where = f"{state.model} {state.level} · {cell.name} · {cell.threads} thread(s)"
        if cell.depth:
            where += f" · depth {cell.depth}"
    grid.add_row("cell", where)
    grid.add_row("repetition", f"{state.rep}/{state.reps}" if state.reps else "")
    grid.add_row("last figure", state.last or "…")
    grid.add_row("RSS", f"{state.rss_bytes / 2**30:.2f} GiB" if state.rss_bytes else "")
    grid.add_row("roofline", f"{100 * state.roofline:.0f}% of the memory ceiling" if state.roofline is not None else "")
    if state.other_cpu is not None:
        busy = state.other_cpu > formats.BUSY
        grid.add_row("other load", Text(f"{100 * state.other_cpu:.0f}% of the CPUs during the last test"
                                        + (": not this device's figure alone" if busy else ""),
                                        style="bold red" if busy else ""))
    return grid


def _results_table(state: DashboardState, limit: int = 14) -> Table:
    table = Table(title="results (mean ± sd)", expand=True)
    for col in ("model", "level", "test", "t", "d", "value", "unit", "roofline"):
        table.add_column(col, justify="right" if col in ("t", "d", "value", "roofline") else "left")
    flat = formats.rows(state.results)
    for row in flat[-limit:]:
        value, unit = formats.format_value(row)
        roof = row["roofline"]
        table.add_row(str(row["model"]), str(row["level"]), formats.label(row), str(row["threads"] or ""),
                      str(row["n_depth"] or ""), value, unit, f"{100 * float(roof):.0f}%" if roof is not None else "")
    if len(flat) > limit:
        table.caption = f"{len(flat) - limit} earlier rows not shown"
    return table


def render(state: DashboardState) -> RenderableType:
    """The whole dashboard from the state alone: no clocks read but the elapsed time's."""
    done = state.index - (0 if state.finished else 1) if state.index else 0
    elapsed = time.monotonic() - state.started
    head = Table.grid(padding=(0, 2), expand=True)
    head.add_column(no_wrap=True)
    head.add_column(ratio=1)
    head.add_column(no_wrap=True, justify="right")
    head.add_row(Text("radlite bench", style="bold"), ProgressBar(total=max(state.total, 1), completed=max(done, 0)),
                 f"cell {state.index}/{state.total} · {elapsed:.0f} s")
    notes = Text("\n".join(state.notes), style="dim")
    return Group(head, Panel(_current(state), title="now"), _results_table(state), notes,
                 Text(state.machine, style="dim"))


class Dashboard:
    """The live display: feed it events (it is the runner's ``on_event``)."""

    def __init__(self, console: Console, machine: str) -> None:
        import psutil

        self.state = DashboardState(machine=machine)
        self._process = psutil.Process()
        self._live = Live(render(self.state), console=console, auto_refresh=False, transient=False)
        self._started = False

    def __enter__(self) -> "Dashboard":
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            self.state.finished = True
            self._live.update(render(self.state), refresh=True)
            self._live.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if event.kind == "plan" and not self._started:  # every file is checked: an error stays one line
            self._live.__enter__()
            self._started = True
        apply(self.state, event)
        # the memory cell's probe is another process: this one's RSS is what the rest holds
        self.state.rss_bytes = self._process.memory_info().rss
        self._live.update(render(self.state), refresh=True)


class ProgressLines:
    """Plain progress for a pipe or a CI log: a line per model, note and finished cell."""

    def __init__(self, console: Console, machine: str = "") -> None:
        self.console = console
        self.machine = machine

    def __call__(self, event: Event) -> None:
        if event.kind == "plan" and self.machine:  # after every file is checked: an error stays one line
            self.console.print(f"machine: {self.machine}", markup=False, highlight=False)
        elif event.kind == "model" and event.model is not None:
            mb = event.model
            self.console.print(f"{mb.path}: {mb.name} {mb.level}, {mb.file_bytes / 2**30:.3f} GiB, {event.message}",
                               markup=False, highlight=False)
        elif event.kind == "note":
            self.console.print(f"  {event.message}", markup=False, highlight=False)
        elif event.kind == "done":
            for row in formats.rows(event.results):
                value, unit = formats.format_value(row)
                roof = f" · {100 * float(row['roofline']):.0f}% of roofline" if row["roofline"] is not None else ""
                if row["other_cpu"] is not None and float(row["other_cpu"]) > formats.BUSY:
                    roof += f" · other processes took {100 * float(row['other_cpu']):.0f}% of the CPUs"
                self.console.print(f"[{event.index}/{event.total}] {row['model']} {row['level']} {formats.label(row)} "
                                   f"t={row['threads']} d={row['n_depth'] or 0}: {value} {unit} (n={row['n']}){roof}",
                                   markup=False, highlight=False)
