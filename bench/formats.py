"""The bench printers: one flat row schema feeds Markdown and CSV; JSON and JSONL are the records.

    md     tables for people: every figure, thread scaling, the roofline, the machine
    csv    one row per figure, the columns of ``COLUMNS``
    json   {"machine": ..., "results": [Result, ...]}
    jsonl  one Result per line, exactly as the results file holds them
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from radlite_edge import machine as machine_mod
from radlite_edge.results import BenchParams, Result

FORMATS = ("md", "csv", "json", "jsonl")
MEMORY_BOUND = 0.6  # at or above this share of its roofline a decode is limited by memory, not the cores

COLUMNS = (
    "model", "level", "file_gib", "test", "metric", "threads", "n_prompt", "n_gen", "n_depth", "n", "stat",
    "value", "stdev", "unit", "samples", "kv_mib", "bandwidth_gbps", "ceiling_tok_s", "roofline", "speedup",
    "efficiency", "other_cpu",
)
BUSY = 0.05  # other processes took more than this share of the CPUs: the figure is not the device's alone

_LABELS = {
    "load_cold_s": "load, cold cache", "load_warm_s": "load, warm cache", "peak_rss_bytes": "peak RSS",
    "kv_cache_bytes": "KV cache", "ttft_s": "time to first token", "total_s": "total", "read_gbps": "read bandwidth",
}


def throughput_records(results: Iterable[Result]) -> list[Result]:
    """The records ``radlite bench`` writes (a results file holds other benchmarks too)."""
    return [r for r in results if isinstance(r.params, BenchParams)]


def level_of(r: Result) -> str | None:
    """The level as tables show it: a run without llama.cpp's weight repacking is a series of its own."""
    if isinstance(r.params, BenchParams) and r.params.repack is False:
        return f"{r.level} (no repack)"
    return r.level


def file_key(r: Result) -> str | None:
    """Which file a record measured, by its path: two files of one model and level (a ladder's
    radiology/ and generic/ Q2_K) are two series, never one file's thread steps, while a file
    re-made in place stays one series whose latest figure replaces the older."""
    return r.model_id.path if r.model_id else None


def _key(r: Result) -> tuple:
    p = r.params
    return (r.model, level_of(r), r.benchmark, r.metric, p.n_prompt, p.n_gen, p.n_depth, file_key(r))


def model_labels(results: Sequence[Result]) -> dict[int, str]:
    """id(record) -> the model column: the model's name, followed by the file's folder where
    several files share that name and level (by two folders where the folders' names clash)."""
    files: dict[tuple, set] = defaultdict(set)
    for r in results:
        files[(r.model, level_of(r))].add(file_key(r))
    out = {}
    for r in results:
        paths = files[(r.model, level_of(r))]
        if len(paths) < 2 or r.model_id is None:
            out[id(r)] = r.model
            continue
        folder = Path(r.model_id.path).parent
        clash = sum(Path(p).parent.name == folder.name for p in paths if p) > 1
        out[id(r)] = f"{r.model} ({folder.parent.name + '/' if clash else ''}{folder.name}/)"
    return out


def _scaling(results: Sequence[Result]) -> dict[int, tuple[float, float]]:
    """id(record) -> (speed-up, parallel efficiency) against the fewest threads of its series."""
    series: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        if r.metric == "tok_s":
            series[_key(r)].append(r)
    out = {}
    for rows in series.values():
        base = min(rows, key=lambda r: r.params.threads)
        for r in rows:
            speedup = r.value / base.value if base.value else float("nan")
            out[id(r)] = (speedup, speedup / (r.params.threads / base.params.threads))
    return out


def rows(results: Sequence[Result]) -> list[dict[str, object]]:
    """The one flat schema (``COLUMNS``) every table printer reads."""
    scaling = _scaling(results)
    labels = model_labels(results)
    out = []
    for r in results:
        p = r.params
        speedup, efficiency = scaling.get(id(r), (None, None))
        kv = p.kv_bytes
        out.append({
            "model": labels[id(r)], "level": level_of(r),
            "file_gib": p.file_bytes / 2**30 if p.file_bytes else None,
            "test": r.benchmark, "metric": r.metric, "threads": p.threads, "n_prompt": p.n_prompt,
            "n_gen": p.n_gen, "n_depth": p.n_depth, "n": r.n, "stat": r.stat, "value": r.value,
            "stdev": r.spread, "unit": r.unit, "samples": ";".join(f"{x:.6g}" for x in (r.samples or [])),
            "kv_mib": kv / 2**20 if kv is not None else None, "bandwidth_gbps": p.bandwidth_gbps,
            "ceiling_tok_s": p.ceiling_tok_s, "roofline": p.roofline_fraction,
            "speedup": speedup, "efficiency": efficiency, "other_cpu": p.other_cpu_share,
        })
    return out


# ------------------------------------------------------------------ csv


def is_rendered(path: Path) -> bool:
    """A file ``render`` (or ``radlite report``'s Markdown and CSV) wrote, in any of the formats: an
    earlier output that a rerun may replace."""
    from radlite_edge.fileio import first_record, json_object

    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return False
    if first == ",".join(COLUMNS) or first in (f"# {t}" for t in MARKDOWN_TITLES):
        return True
    if first.startswith("{") and first.rstrip().endswith("}"):
        record = first_record(path)
        return isinstance(record, dict) and {"benchmark", "metric", "value"} <= set(record)
    data = json_object(path) if first.startswith("{") else None
    return data is not None and {"machine", "results"} <= set(data)


def to_csv(results: Sequence[Result]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(results):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def from_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# ----------------------------------------------------------- json, jsonl


def to_json(results: Sequence[Result]) -> str:
    machine = results[0].machine if results else machine_mod.describe()
    return json.dumps({"machine": machine, "results": [r.to_dict() for r in results]}, indent=1) + "\n"


def from_json(text: str) -> list[Result]:
    return [Result.from_dict(d) for d in json.loads(text)["results"]]


def to_jsonl(results: Sequence[Result]) -> str:
    return "".join(json.dumps(r.to_dict()) + "\n" for r in results)


def from_jsonl(text: str) -> list[Result]:
    return [Result.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------- markdown


def label(row: dict[str, object]) -> str:
    if row["metric"] == "tok_s":
        return str(row["test"])
    what = _LABELS.get(str(row["metric"]), str(row["metric"]))
    return f"{row['test']} {what}" if str(row["test"]).startswith("request:") else what


def _num(x: object, digits: int = 3) -> str:
    if x is None or x == "":
        return ""
    x = float(x)  # type: ignore[arg-type]
    if x == 0:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:.0f}"


def format_value(row: dict[str, object]) -> tuple[str, str]:
    value, sd, unit = row["value"], row["stdev"], str(row["unit"])
    scale = 1.0
    if unit == "B":
        scale, unit = 2**30, "GiB"
    text = _num(float(value) / scale)  # type: ignore[arg-type]
    if sd is not None:
        text += f" ± {_num(float(sd) / scale, 2)}"  # type: ignore[arg-type]
    return text, unit


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return lines


MAIN_HEADER = ("model", "level", "GiB", "test", "threads", "depth", "value", "unit", "n", "roofline", "other load")


def machine_lines(machine: dict) -> list[str]:
    m = machine.get
    features = ", ".join(m("llama_cpp_features") or []) or m("llama_cpp_system_info")
    return [
        f"- CPU: {m('cpu')} ({m('arch')}), {m('physical_cores')} cores, {m('logical_cpus')} threads "
        f"({m('usable_cpus')} usable), {m('ram_gib')} GiB RAM",
        f"- OS: {m('os')}, Python {m('python')}",
        f"- llama-cpp-python {m('llama_cpp_python')}, llama.cpp/ggml {m('ggml')}, gguf {m('gguf')}",
        f"- llama.cpp uses: {features}",
    ]


Step = tuple[int, float, "float | None", "float | None"]  # threads, tok/s, step speed-up, step efficiency


def scaling_rows(results: Sequence[Result]) -> list[tuple[str, str, str, list[Step], int]]:
    """(model, level, test, [(threads, tok/s, step speed-up, step efficiency)], best threads) per series."""
    series: dict[tuple, list[Result]] = defaultdict(list)
    for r in results:
        if r.metric == "tok_s":
            series[_key(r)].append(r)
    labels = model_labels(results)
    out = []
    for key, rs in series.items():
        rs = sorted(rs, key=lambda r: r.params.threads)
        steps = []
        for prev, r in zip([None] + rs[:-1], rs):
            if prev is None:
                steps.append((r.params.threads, r.value, None, None))
            else:
                s = r.value / prev.value if prev.value else float("nan")
                steps.append((r.params.threads, r.value, s, s / (r.params.threads / prev.params.threads)))
        best = max(rs, key=lambda r: r.value).params.threads
        out.append((labels[id(rs[0])], key[1], key[2], steps, best))
    return out


MARKDOWN_TITLES = ("radlite bench", "RadLite Edge throughput report")


def to_markdown(results: Sequence[Result], *, title: str = MARKDOWN_TITLES[0]) -> str:
    flat = rows(results)
    machine = results[0].machine if results else machine_mod.describe()
    lines = [f"# {title}", "", *machine_lines(machine), ""]
    body = []
    for row in flat:
        value, unit = format_value(row)
        depth = "" if row["n_depth"] in (None, 0) else str(row["n_depth"])
        gib = _num(row["file_gib"], 3) if row["file_gib"] is not None else ""
        other = row["other_cpu"]
        busy = f"{100 * float(other):.0f}%" if other is not None and float(other) > BUSY else ""  # type: ignore[arg-type]
        body.append((str(row["model"]), str(row["level"]), gib, label(row), str(row["threads"] or ""), depth,
                     value, unit, str(row["n"]), _num(row["roofline"], 2) if row["roofline"] is not None else "",
                     busy))
    lines += _table(MAIN_HEADER, body)
    if any(b[-1] for b in body):
        lines += ["", f"other load: the share of the CPUs other processes used while the test ran, where above "
                      f"{100 * BUSY:.0f}%; such a figure is not the device's alone."]

    scaling = [s for s in scaling_rows(results) if len(s[3]) > 1]
    if scaling:
        lines += ["", "## Thread scaling", "",
                  "Speed-up and parallel efficiency of each step over the previous thread count.", ""]
        body = []
        for model, level, test, steps, best in scaling:
            parts = [f"{t}t {_num(v)}" + (f" (x{_num(s, 3)}, {100 * e:.0f}%)" if s is not None else "")
                     for t, v, s, e in steps]
            body.append((model, level, test, " → ".join(parts), str(best)))
        lines += _table(("model", "level", "test", "tok/s by threads (step speed-up, efficiency)", "best threads"),
                        body)

    tg = [(r, row) for r, row in zip(results, flat) if row["roofline"] is not None]
    if tg:
        lines += ["", "## Roofline", "",
                  "Ceiling = read bandwidth (the C extension's probe, same run) ÷ bytes read per generated token "
                  "(weights + KV cache at that depth).", ""]
        body = []
        for r, row in tg:
            frac = float(row["roofline"])  # type: ignore[arg-type]
            bound = "memory" if frac >= MEMORY_BOUND else "cores"
            body.append((str(row["model"]), str(row["level"]), str(row["test"]), str(row["threads"]),
                         _num(r.params.bytes_per_token / 1e9, 3), _num(row["bandwidth_gbps"]),
                         _num(row["ceiling_tok_s"]), _num(row["value"]), f"{100 * frac:.0f}%", bound))
        lines += _table(("model", "level", "test", "threads", "GB/token", "GB/s", "ceiling tok/s", "tok/s",
                         "of ceiling", "limit"), body)
    return "\n".join(lines) + "\n"


def parse_markdown_table(text: str) -> list[dict[str, str]]:
    """The first table of a Markdown text, as dicts keyed by its header."""
    table: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif table:
            break
    if len(table) < 2:
        return []
    header = table[0]
    return [dict(zip(header, cells)) for cells in table[2:]]


def render(results: Sequence[Result], fmt: str) -> str:
    return {"md": to_markdown, "csv": to_csv, "json": to_json, "jsonl": to_jsonl}[fmt](results)
