"""``radlite report``: the bench records of a results file as Markdown, CSV and PNG plots.

Plots (matplotlib, the ``[report]`` extra, imported only for them):
- ``tok_s_vs_threads.png``: pp and tg tok/s against threads, a line per model and level;
- ``tok_s_vs_size.png``: tg tok/s against the bytes read per token, with the memory
  roofline (measured bandwidth ÷ bytes) as a line per thread count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from radlite_edge.errors import UserError
from radlite_edge.fileio import INTO, atomic_path, claim_output, output_dir
from radlite_edge.results import DEFAULT_RESULTS, Result, TestKind, read_jsonl

from . import formats

REPORT_FORMATS = ("md", "csv", "png")
DEFAULT_REPORT_DIR = Path("runs/report")


@dataclass
class ReportResult:
    files: list[Path]
    n_records: int
    runs: list[str]

    def to_dict(self) -> dict:
        return {"files": [str(f) for f in self.files], "n_records": self.n_records, "runs": self.runs}


def load_records(paths: Sequence[Path], run: str = "all") -> list[Result]:
    """The bench records of ``paths``; of figures measured more than once, the latest is kept."""
    records: list[Result] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: no such results file (radlite bench appends to {DEFAULT_RESULTS})")
        try:
            records += read_jsonl(path)
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{path}: {e}") from None
    records = formats.throughput_records(records)
    if run == "latest" and records:
        last = max(records, key=lambda r: r.time).params.run
        records = [r for r in records if r.params.run == last]
    elif run != "all":
        records = [r for r in records if r.params.run == run]
    latest: dict[tuple, Result] = {}
    for r in sorted(records, key=lambda r: r.time):
        key = (r.machine.get("cpu"), r.model, formats.level_of(r), r.benchmark, r.metric, r.params.threads,
               formats.file_key(r))
        latest.pop(key, None)  # re-inserted: the dict keeps the order of the latest measurements
        latest[key] = r
    if not latest:
        raise UserError(f"no bench records{'' if run == 'all' else f' of run {run}'} in "
                        f"{', '.join(map(str, paths))}: run radlite bench first")
    return list(latest.values())


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed, none assumed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("PNG plots need matplotlib: pip install 'radlite-edge[report]', "
                        "or leave png out of --formats") from None
    return plt


def plot_threads(records: Sequence[Result], out: Path) -> Path:
    plt = pyplot()
    labels = formats.model_labels(records)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, test in zip(axes, (TestKind.PP, TestKind.TG)):
        series: dict[tuple, list[Result]] = defaultdict(list)
        for r in records:
            if r.params.test is test and r.metric == "tok_s" and not r.params.n_depth:
                series[(labels[id(r)], formats.level_of(r), r.benchmark, formats.file_key(r) or "")].append(r)
        for (model, level, name, _), rs in sorted(series.items()):
            rs.sort(key=lambda r: r.params.threads)
            ax.errorbar([r.params.threads for r in rs], [r.value for r in rs],
                        yerr=[r.spread or 0 for r in rs], marker="o", capsize=3, label=f"{model} {level} {name}")
        ax.set_xlabel("threads")
        ax.set_ylabel("tok/s")
        ax.set_title("prompt processing" if test is TestKind.PP else "token generation")
        threads = sorted({r.params.threads for rs in series.values() for r in rs})
        if threads:
            ax.set_xticks(threads)
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    fig.suptitle("tok/s vs threads (mean ± sd)")
    fig.tight_layout()
    return save_png(fig, plt, out)


def plot_size(records: Sequence[Result], out: Path) -> Path:
    plt = pyplot()
    import numpy as np

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    tg = [r for r in records if r.params.test is TestKind.TG and r.params.bytes_per_token]
    threads = sorted({r.params.threads for r in tg})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, t in enumerate(threads):
        rs = [r for r in tg if r.params.threads == t]
        color = colors[i % len(colors)]
        gb = np.array([r.params.bytes_per_token / 1e9 for r in rs])
        ax.scatter(gb, [r.value for r in rs], color=color, label=f"tg, {t} thread(s)", zorder=3)
        for r, x in zip(rs, gb):
            ax.annotate(f"{r.model} {formats.level_of(r)}", (x, r.value), fontsize=6, xytext=(3, 3), textcoords="offset points")
        bw = float(np.median([r.params.bandwidth_gbps for r in rs]))
        xs = np.linspace(max(gb.min() * 0.7, 1e-3), gb.max() * 1.3, 100)
        ax.plot(xs, bw / xs, color=color, linestyle="--", label=f"roofline {bw:.0f} GB/s ÷ size, {t} thread(s)")
    ax.set_xlabel("GB read per generated token (weights + KV)")
    ax.set_ylabel("tok/s")
    ax.set_title("token generation vs model size, against the memory roofline")
    ax.grid(alpha=0.3)
    if tg:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, plt, out)


def is_plot(path: Path) -> bool:
    """A PNG that matplotlib wrote (it names itself in the file's first chunks): an earlier plot."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return head.startswith(b"\x89PNG\r\n\x1a\n") and b"Matplotlib" in head


def save_png(fig, plt, out: Path) -> Path:
    try:
        with atomic_path(out, owned=is_plot) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return out


def _write(out: Path, text: str) -> Path:
    with atomic_path(out, owned=formats.is_rendered) as tmp:
        tmp.write_text(text)
    return out


REPORT_FILES = {"md": ("report.md",), "csv": ("report.csv",), "png": ("tok_s_vs_threads.png", "tok_s_vs_size.png")}


def make_report(results: Sequence[Path], outdir: Path, *, formats_wanted: Sequence[str] = REPORT_FORMATS,
                run: str = "all") -> ReportResult:
    unknown = [f for f in formats_wanted if f not in REPORT_FORMATS]
    if unknown:
        raise UserError(f"--formats {','.join(unknown)}: choose from {', '.join(REPORT_FORMATS)}")
    outdir = claim_output(outdir, results, step="report", kind=INTO)
    for fmt in formats_wanted:
        for name in REPORT_FILES[fmt]:
            claim_output(outdir / name, step="report", owned=is_plot if fmt == "png" else formats.is_rendered)
    records = load_records(results, run)
    if "png" in formats_wanted:
        pyplot()  # fail before writing anything when matplotlib is missing
    with output_dir(outdir):
        return _report(records, outdir, formats_wanted)


def _report(records: Sequence[Result], outdir: Path, formats_wanted: Sequence[str]) -> ReportResult:
    files = []
    if "md" in formats_wanted:
        files.append(_write(outdir / "report.md", formats.to_markdown(records, title=formats.MARKDOWN_TITLES[1])))
    if "csv" in formats_wanted:
        files.append(_write(outdir / "report.csv", formats.to_csv(records)))
    if "png" in formats_wanted:
        files.append(plot_threads(records, outdir / "tok_s_vs_threads.png"))
        files.append(plot_size(records, outdir / "tok_s_vs_size.png"))
    runs = sorted({str(r.params.run) for r in records})
    return ReportResult(files, len(records), runs)
