"""The sweep's report: Markdown, CSV and PNG from ``<run>/tradeoff.json``.

- accuracy against size per task, one line per model and importance-matrix source, F16 dashed
  (the paper's deployment figure, per task);
- a task × file heatmap of the drop from F16 (points of the task metric);
- accuracy against one request's latency per task, Pareto front marked;
- the recommendation for each device profile.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

from radlite_edge.fileio import atomic_path, claim_output, output_dir

from .tradeoff_analysis import (DEFAULT_TOLERANCE, DEVICES, Budget, Recommendation, complete_decoding, drop, fmt_bytes,
                                pareto_front, recommend, score, smallest_holding, value)

MiB = 2 ** 20


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def _ci(s: dict | None) -> str:
    if not s or "ci95" not in s:
        return ""
    lo, hi = s["ci95"]
    return f" [{100 * lo:.0f}–{100 * hi:.0f}]"


def _num(v, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _sorted(rows: Sequence[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["model"], r["imatrix"] != "none", r["imatrix"], -r.get("bytes", 0)))


def csv_text(table: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "imatrix", "level", "task", "metric", "strict", "strict_ci_low", "strict_ci_high", "grammar",
                "floor", "floor_answer", "n", "drop_from_f16", "kld_mean", "top1", "bytes", "bits_per_weight",
                "tg_tok_s", "latency_s", "peak_rss_bytes", "file"])
    for r in _sorted(table["rows"]):
        for task in table["spec"]["tasks"]:
            s, g = score(r, task, "strict"), score(r, task, "grammar")
            w.writerow([r["model"], r["imatrix"], r["level"], task, (s or {}).get("metric"), (s or {}).get("value"),
                        *((s or {}).get("ci95") or ["", ""]), (g or {}).get("value"), (s or {}).get("floor"),
                        (s or {}).get("floor_name"), (s or {}).get("n"), drop(table["rows"], r, task),
                        r.get("kld_mean"), r.get("top1"), r.get("bytes"), r.get("bits_per_weight"), r.get("tg_tok_s"),
                        r["tasks"].get(task, {}).get("latency_s"), r.get("peak_rss_bytes"), r["path"]])
    return buf.getvalue()


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(row) + " |" for row in body), ""]


def recommendation_lines(rec: Recommendation, title: str) -> list[str]:
    b = rec.budget
    limits = [f"RAM {fmt_bytes(b.ram_bytes)}", f"drop ≤ {100 * b.max_drop:g} pts of F16 (or inside its interval)"]
    if b.min_tok_s:
        limits.append(f"≥ {b.min_tok_s:g} tok/s")
    if b.max_latency_s:
        limits.append(f"latency ≤ {b.max_latency_s:g} s")
    lines = [f"### {title}", "", f"Budget: {', '.join(limits)}; scored in {b.decoding} decoding.", ""]
    body = []
    for p in rec.picks:
        r = p.row
        if r is None:
            body.append([p.task, "—", "—", "—", "—", "—", p.why])
            continue
        body.append([p.task, f"{r['model']} {r['level']} ({r['imatrix']})", _pct(value(r, p.task, b.decoding)),
                     fmt_bytes(r["peak_rss_bytes"]), _num(r.get("tg_tok_s"), ".1f"),
                     _num(r["tasks"][p.task].get("latency_s"), ".2f"), p.why])
    lines += _md_table(("task", "deploy", "score", "peak RSS", "tg tok/s", "latency s", "why"), body)
    lines.append(f"Loaded together: {fmt_bytes(rec.together_bytes)} — "
                 f"{'fits' if rec.fits_together else 'does not fit'} the budget.")
    lines += [f"- {n}" for n in rec.notes] + [""]
    return lines


def markdown(table: dict, *, tolerance: float = DEFAULT_TOLERANCE, plots: Sequence[Path] = ()) -> str:
    rows, spec = table["rows"], table["spec"]
    m = table.get("machine", {})
    lines = [TITLE, "",
             f"Data: {table.get('data', '?')}. Strict scoring (an unparsable answer is wrong) with 95 % bootstrap "
             "intervals; grammar = label tasks constrained to their label set (the deployment mode). The floor is the "
             "best trivial answer on the same samples.",
             f"Machine: {m.get('cpu', '?')}, {m.get('usable_cpus', '?')} usable CPUs, {m.get('ram_gib', '?')} GiB; speeds "
             f"with {spec.get('threads')} thread(s), context {spec.get('n_ctx')}. Measuring time of the cells: "
             f"{table.get('cell_seconds', 0) / 60:.1f} min.", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots] + [""]
    lines += ["## Files", ""]
    lines += _md_table(("model", "imatrix", "level", "MiB", "bits/w", "KLD", "top-1", "tg tok/s", "peak RSS"),
                       [[r["model"], r["imatrix"], r["level"], _num(r.get("bytes", 0) / MiB, ".1f"),
                         _num(r.get("bits_per_weight"), ".2f"), _num(r.get("kld_mean"), ".4f"),
                         _pct(r.get("top1")), _num(r.get("tg_tok_s"), ".1f"),
                         fmt_bytes(r["peak_rss_bytes"]) if r.get("peak_rss_bytes") else "—"] for r in _sorted(rows)])
    for task in spec["tasks"]:
        first = next((score(r, task) for r in rows if score(r, task)), None) or {}
        lines += [f"## {task}", "", f"Metric: {first.get('metric', '?')}; floor {_pct(first.get('floor'))} "
                  f"({first.get('floor_name', '?')}); n = {first.get('n', '?')}.", ""]
        body = []
        for r in _sorted(rows):
            s = score(r, task)
            d = drop(rows, r, task)
            body.append([f"{r['model']} {r['level']} ({r['imatrix']})", _pct(value(r, task)) + _ci(s),
                         _pct(value(r, task, "grammar")), "—" if d is None else f"{round(-100 * d, 1) + 0.0:+.1f}",
                         _num(r["tasks"].get(task, {}).get("latency_s"), ".2f")])
        lines += _md_table(("file", "strict [95 % CI]", "grammar", "vs F16 (pts)", "latency s"), body)
        hold = smallest_holding(rows, task, tolerance)
        lines.append(f"Smallest file within {100 * tolerance:g} point of F16 (or inside its interval): " + "; ".join(
            f"{model} ({imx}): {r['level'] if r else 'none'}" for (model, imx), r in sorted(hold.items())) + ".")
        for x, what in (("bytes", "size"), ("latency_s", "latency")):
            front = pareto_front(rows, task, x=x)
            lines.append(f"Pareto front on {what}: " + ", ".join(f"{r['level']} ({r['imatrix']})" for r in front) + ".")
        lines.append("")
    lines += ["## Recommendation per device", "",
              "Budgets are the device's RAM less what its OS and front end keep (our assumption, in the profile); "
              "speeds are this machine's unless a bench run on the device replaced them (recommend --bench).", ""]
    decoding = complete_decoding(table)
    for name, dev in DEVICES.items():
        rec = recommend(table, Budget(ram_bytes=dev.budget_bytes, max_drop=tolerance, decoding=decoding))
        lines += recommendation_lines(rec, f"{dev.name} (`{name}`: {fmt_bytes(dev.budget_bytes)} for the service; "
                                           f"{dev.note})")
    if table.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in table["notes"]] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------ plots


def _lines(rows: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r.get("reference") and r["key"] != r["reference"]:
            out.setdefault((r["model"], r["imatrix"]), []).append(r)
    return out


def _grid(plt, n: int):
    cols = min(3, n)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def plot_accuracy_size(table: dict, out: Path) -> Path:
    from .report import pyplot, save_png

    plt = pyplot()
    rows, tasks = table["rows"], table["spec"]["tasks"]
    fig, axes = _grid(plt, len(tasks))
    lines = sorted(_lines(rows).items())
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {group: palette[i % len(palette)] for i, (group, _) in enumerate(lines)}  # one color per line, every panel
    for ax, task in zip(axes, tasks):
        for (model, imx), group in lines:
            pts = sorted((r["bytes"] / MiB, value(r, task)) for r in group if value(r, task) is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, color=colors[(model, imx)])
        for r in rows:
            if r.get("reference") == r["key"] and value(r, task) is not None:
                ax.axhline(value(r, task), ls="--", lw=1, color="grey")
        floor = next((s.get("floor") for r in rows if (s := score(r, task))), None)
        if floor is not None:
            ax.axhline(floor, ls=":", lw=1, color="red")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("file MiB", fontsize=8)
        ax.tick_params(labelsize=7)
    from matplotlib.lines import Line2D

    if lines:  # no line without a reference to measure from
        fig.legend([Line2D([], [], color=colors[g], marker="o", ms=3) for g, _ in lines],
                   [f"{model} ({imx} imatrix)" for (model, imx), _ in lines], loc="lower center",
                   ncol=min(4, len(lines)), fontsize=7, frameon=False)
    fig.suptitle("Strict accuracy against file size (F16 dashed, floor dotted)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_png(fig, plt, out)


def plot_drop_heatmap(table: dict, out: Path) -> Path:
    from .report import pyplot, save_png

    plt = pyplot()
    rows = [r for r in _sorted(table["rows"]) if r.get("reference") and r["key"] != r["reference"]]
    tasks = table["spec"]["tasks"]
    grid = [[(-100 * d if (d := drop(table["rows"], r, t)) is not None else float("nan")) for r in rows] for t in tasks]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows) + 2), 0.45 * len(tasks) + 2))
    lim = max([abs(v) for row in grid for v in row if not math.isnan(v)] or [1.0])
    im = ax.imshow(grid, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(rows)), [f"{r['level']}\n{r['imatrix']}" for r in rows], fontsize=6, rotation=90)
    ax.set_yticks(range(len(tasks)), tasks, fontsize=7)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{int(round(v))}", ha="center", va="center", fontsize=5)
    fig.colorbar(im, ax=ax, label="points vs F16 (strict)")
    ax.set_title("Change from F16 per task and file", fontsize=10)
    fig.tight_layout()
    return save_png(fig, plt, out)


def plot_latency_fronts(table: dict, out: Path) -> Path:
    from .report import pyplot, save_png

    plt = pyplot()
    rows, tasks = table["rows"], table["spec"]["tasks"]
    fig, axes = _grid(plt, len(tasks))
    for ax, task in zip(axes, tasks):
        pts = [(r["tasks"][task]["latency_s"], value(r, task)) for r in rows
               if value(r, task) is not None and r["tasks"].get(task, {}).get("latency_s") is not None]
        if pts:
            ax.scatter(*zip(*pts), s=8, color="lightgrey")
        front = pareto_front(rows, task, x="latency_s")
        if front:
            ax.plot([r["tasks"][task]["latency_s"] for r in front], [value(r, task) for r in front], marker="o", ms=3)
            for r in front:
                ax.annotate(r["level"], (r["tasks"][task]["latency_s"], value(r, task)), fontsize=5)
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("one request, s", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Accuracy against latency: the Pareto front", fontsize=10)
    fig.tight_layout()
    return save_png(fig, plt, out)


PLOTS = {"accuracy_size": plot_accuracy_size, "drop_heatmap": plot_drop_heatmap, "latency_fronts": plot_latency_fronts}


TITLE = "# Accuracy against size and speed, per task"


def is_report_text(path: Path) -> bool:
    """tradeoff.md or tradeoff.csv as ``write_report`` writes them: an earlier report a rerun replaces."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return False
    return first == TITLE or first.startswith("model,imatrix,level,task,")


def claim_report(outdir: Path, *, png: bool = True) -> None:
    """The report's files may be written: none is a file of someone else's (checked before a sweep)."""
    from .report import is_plot

    names = [f"{n}.png" for n in PLOTS] if png else []
    for name in names + ["tradeoff.md", "tradeoff.csv"]:
        claim_output(outdir / name, step="tradeoff", owned=is_plot if name.endswith(".png") else is_report_text)


def write_report(table: dict, outdir: Path, *, tolerance: float = DEFAULT_TOLERANCE, png: bool = True) -> list[Path]:
    claim_report(outdir, png=png)
    with output_dir(outdir):  # a failure leaves no empty report folder
        plots = [fn(table, outdir / f"{name}.png") for name, fn in PLOTS.items()] if png else []
        written = list(plots)
        for name, text in (("tradeoff.md", markdown(table, tolerance=tolerance, plots=plots)),
                           ("tradeoff.csv", csv_text(table))):
            with atomic_path(outdir / name, owned=is_report_text) as tmp:
                tmp.write_text(text, encoding="utf-8")
            written.append(outdir / name)
    return written
