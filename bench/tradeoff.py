"""``radlite tradeoff``: task accuracy against size, speed and memory, per model × level × task.

For each input model the sweep makes (or finds) a quantization ladder, once per importance-
matrix source (our radiology text, generic English text, none), and measures every file:

- per task: the strict metric with its 95 % interval (the paper's scoring) and the grammar-
  constrained one (the deployment mode), beside the task's trivial floors (``radlite eval``);
- fidelity to the model's F16: mean KLD and top-1 agreement (``radlite fidelity``);
- file size and bits per weight; decode speed (tg tok/s, median of repeats); the peak RSS of a
  process that loads it with the published context; one request's latency per task.

Each measurement is a *cell* whose record is appended to ``<run>/cells.jsonl`` when it is done,
keyed on the file's digest and the settings it depends on: a rerun (after a kill, or with more
tasks) skips finished cells, and two variants that are the same bytes (Q8_0 ignores the
importance matrix) are measured once. Evaluations keep their own per-sample records under
``<run>/eval/``, so a killed task resumes at the sample where it stopped.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from radlite_edge.errors import UserError
from radlite_edge.fileio import check_text, make_dir, output_dir
from radlite_edge.locks import drop_partial_line, locked_append
from radlite_edge.gguf_file import gguf_type
from radlite_edge.identity import ModelId, identify_model
from radlite_edge.levels import get_level

from .tradeoff_measure import measure_eval, measure_file, measure_latency, measure_runtime_rss, measure_speed

IMATRIX_SOURCES = ("radiology", "generic", "none")
# The ladder of the issue, largest first (F16 is the reference every drop is measured from).
DEFAULT_LADDER = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "IQ4_XS", "Q3_K_M", "Q3_K_S", "Q2_K",
                  "IQ3_XXS", "IQ2_XS")
REFERENCE_LEVELS = ("F32", "BF16", "F16")  # what a ladder is quantized from
# llama.cpp's Q8_0 quantizer takes no importance weights: one file serves every source, made
# under "none" (the imatrix sources would differ only in the metadata naming their imatrix).
IMATRIX_BLIND = ("Q8_0",)
GIVEN = "given"  # the importance matrix of a file we did not make is unknown to us
DECODINGS = ("strict", "grammar")
CELLS_FILE = "cells.jsonl"
DEFAULT_FIDELITY_WINDOWS = 32
DEFAULT_FIDELITY_CTX = 512
LATENCY_SAMPLES = 3  # requests timed per task; the median is the cell's latency
# cells whose values depend on the machine and on its load, not on the file alone: a user measures
# them again on a quiet machine (or on the device) without redoing the evaluations
REMEASURABLE = ("speed", "latency")


@dataclass(frozen=True)
class Variant:
    """One file the sweep measures."""

    model: str  # the model's name (identity), one line per model in the plots
    level: str
    imatrix: str  # radiology | generic | none | given
    path: Path

    @property
    def key(self) -> str:
        return f"{self.model}/{self.imatrix}/{self.level}"


@dataclass(frozen=True)
class SweepSpec:
    tasks: tuple[str, ...]
    n: int
    levels: tuple[str, ...] = DEFAULT_LADDER
    imatrix: tuple[str, ...] = IMATRIX_SOURCES
    # levels at which the other sources are compared with the first (None: every level); the
    # full ladder is made with the first source only, which keeps a sweep's cost down
    imatrix_levels: tuple[str, ...] | None = None
    decodings: tuple[str, ...] = DECODINGS
    threads: int | None = None
    seed: int = 0
    fidelity_windows: int = DEFAULT_FIDELITY_WINDOWS
    n_ctx: int = 2048  # the published deployment context (RADLITE.md): RSS and latency are measured in it
    imatrix_chunks: int | None = None  # calibration chunks of 512 tokens (None: radlite imatrix's default)
    latency_samples: int = LATENCY_SAMPLES


@dataclass
class Cell:
    """One finished measurement, as ``cells.jsonl`` holds it."""

    variant: str  # Variant.key of the variant it was measured for (the first, when bytes are shared)
    cell: str  # file | fidelity | speed | eval:<task>:<decoding> | latency:<task> | runtime
    key: str  # what makes it the same measurement: digest + settings
    model_id: dict | None
    values: dict[str, object]
    seconds: float
    when: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)

    @classmethod
    def from_json(cls, line: str) -> "Cell":
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return cls(**data)


def read_cells(path: Path) -> list[Cell]:
    out = []
    if Path(path).is_file():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            try:
                out.append(Cell.from_json(line))
            except (ValueError, TypeError):
                continue  # a line cut by a kill: that cell runs again
    return out


@dataclass
class SweepResult:
    run: Path
    variants: list[Variant]
    cells: list[Cell]
    made: int = 0  # cells measured by this run
    reused: int = 0  # cells found done
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    measured: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (variant key, cell) -> its record
    data: str = ""  # which samples: "synthetic test split, n=200 per task"
    missing: int = 0  # cells not measured (report only)


# ------------------------------------------------------------------ the ladder


def generic_text(path: Path) -> Path:
    """Generic English calibration text: the Python documentation's topic pages that ship with
    every Python (``pydoc_data``), prose with no radiology in it. Deterministic, offline."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def _is_reference(model: ModelId) -> bool:
    return model.level in REFERENCE_LEVELS


def _ladder_files(folder: Path) -> list[Path]:
    files = [p for p in sorted(folder.glob("*.gguf")) if gguf_type(p) == "model"]
    if not files:
        raise UserError(f"{folder}: no model GGUF files in this ladder folder")
    return files


def check_inputs(inputs: Sequence[Path]) -> None:
    """Before any work: each input exists, a folder holds models, each model has its F16 (or BF16/F32)."""
    levels: dict[str, set[str]] = {}
    for source in map(Path, inputs):
        if not source.exists():
            raise UserError(f"{source}: no such model file or ladder folder")
        for f in _ladder_files(source) if source.is_dir() else [source]:
            mid = identify_model(Path(check_text(str(f), what="model")))  # llama.cpp takes names as UTF-8
            levels.setdefault(mid.name, set()).add(mid.level)
    for name, found in levels.items():
        if not found & set(REFERENCE_LEVELS):
            raise UserError(f"{name}: no F16 (or BF16, F32) among the inputs, only {', '.join(sorted(found))}: give "
                            "the F16 GGUF too, or add it to the ladder (radlite quantize F16.gguf --levels f16 -o DIR)")


def plan_variants(inputs: Sequence[Path], run: Path, spec: SweepSpec, *, on_note: Callable[[str], None],
                  on_step: Callable[[str], None] | None = None) -> list[Variant]:
    """Every file to measure: each F16/BF16/F32 input is quantized into ``run/ladder/<imatrix>/``
    for each importance-matrix source; a ladder folder or a quantized file is measured as given."""
    levels = [get_level(name).name for name in spec.levels]
    variants: list[Variant] = []
    for source in map(Path, inputs):
        if source.is_dir():
            for f in _ladder_files(source):
                mid = identify_model(f)
                variants.append(Variant(mid.name, mid.level, "none" if _is_reference(mid) else GIVEN, f))
            continue
        mid = identify_model(source)
        if not _is_reference(mid):
            variants.append(Variant(mid.name, mid.level, GIVEN, source))
            continue
        variants.append(Variant(mid.name, mid.level, "none", source))
        quantized = [lv for lv in levels if lv not in REFERENCE_LEVELS]
        blind = [lv for lv in quantized if lv in IMATRIX_BLIND]
        jobs = [("none", blind)] if blind else []
        for i, kind in enumerate(spec.imatrix):
            wanted = [lv for lv in quantized if lv not in IMATRIX_BLIND
                      and (i == 0 or spec.imatrix_levels is None or lv in spec.imatrix_levels)]
            if kind == "none" and (needing := [lv for lv in wanted if get_level(lv).needs_imatrix]):
                on_note(f"{mid.name}: {', '.join(needing)} need an importance matrix; not made with imatrix none")
                wanted = [lv for lv in wanted if lv not in needing]
            jobs.append((kind, wanted))
        for kind, wanted in jobs:
            if wanted:
                variants += _quantize(source, mid.name, kind, wanted, run, spec, on_step)
    if not variants:
        raise UserError("nothing to measure: give an F16 GGUF, a ladder folder or quantized GGUF files")
    return variants


def _quantize(source: Path, name: str, kind: str, levels: list[str], run: Path, spec: SweepSpec,
              on_step: Callable[[str], None] | None) -> list[Variant]:
    from radlite_edge.convert.imatrix import make_imatrix
    from radlite_edge.convert.quantize import quantize_ladder

    folder = run / "ladder" / kind
    with output_dir(folder):  # a failure leaves no empty ladder folder
        imatrix = None
        if kind != "none":
            imatrix = folder / f"{name}-imatrix.gguf"
            calib = generic_text(run / "generic-calibration.txt") if kind == "generic" else None
            if on_step:
                on_step(f"imatrix ({kind}) of {name}")
            make_imatrix(source, imatrix, calib=calib, n_threads=spec.threads,
                         **({"max_chunks": spec.imatrix_chunks} if spec.imatrix_chunks else {}))
        if on_step:
            on_step(f"quantize {name} ({kind} imatrix): {', '.join(levels)}")
        return [Variant(name, r.level, kind, Path(r.path))
                for r in quantize_ladder(source, levels, folder, imatrix=imatrix, n_threads=spec.threads, name=name)]


def reference_of(variant: Variant, variants: Sequence[Variant]) -> Variant | None:
    """The model's F16 (or BF16/F32): the file every drop and KLD is measured against."""
    refs = [v for v in variants if v.model == variant.model and v.level in REFERENCE_LEVELS]
    return max(refs, key=lambda v: REFERENCE_LEVELS.index(v.level)) if refs else None


# ------------------------------------------------------------------ the cells


class CellBook:
    """The run's finished cells and the lock on its file: a second sweep into the same run is
    refused, and every cell is on disk the moment it is done."""

    def __init__(self, run: Path) -> None:
        self.path = run / CELLS_FILE
        self.notes: list[str] = []
        self._lock = locked_append(self.path, what="radlite tradeoff")
        self._log = None
        self.done: dict[tuple[str, str], Cell] = {}

    def __enter__(self) -> "CellBook":
        self._log = self._lock.__enter__()
        if dropped := drop_partial_line(self.path):
            self.notes.append(f"{self.path}: dropped a last line cut short by a kill ({dropped} bytes); "
                              "that cell runs again")
        for c in read_cells(self.path):
            self.done[(c.cell, c.key)] = c
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)

    def get(self, cell: str, key: str) -> Cell | None:
        return self.done.get((cell, key))

    def add(self, c: Cell) -> None:
        self.done[(c.cell, c.key)] = c
        self._log.write(c.to_json() + "\n")
        self._log.flush()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


# ------------------------------------------------------------------ the sweep


def _cell_plan(variant: Variant, ref: Variant | None, spec: SweepSpec, grammar_tasks: set[str]) -> list[str]:
    cells = ["file", "speed"]
    if ref is not None and ref.path != variant.path:
        cells.append("fidelity")
    for task in spec.tasks:
        for decoding in spec.decodings:
            # free-text tasks decode the same with and without the label grammar: one cell serves both
            if decoding == "grammar" and task not in grammar_tasks:
                continue
            cells.append(f"eval:{task}:{decoding}")
        cells.append(f"latency:{task}")
    return cells


def _cell_rank(cell: str) -> int:
    if cell in ("file", "speed", "fidelity"):
        return 0
    if cell.endswith(":strict"):
        return 1
    return 2 if cell.startswith("eval:") else 3


def _task_cost(cell: str) -> int:
    """Short-answer tasks first: the label tasks' scores for every file come before the long answers'."""
    from radlite_edge.tasks import TASKS

    parts = cell.split(":")
    return TASKS[parts[1]].max_tokens if len(parts) > 1 and parts[1] in TASKS else 0


def _cell_key(cell: str, model: ModelId, ref: ModelId | None, spec: SweepSpec) -> str:
    parts = [model.digest]
    if cell == "fidelity":
        parts += [ref.digest if ref else "", f"w{spec.fidelity_windows}", f"c{DEFAULT_FIDELITY_CTX}"]
    elif cell.startswith("eval:"):
        parts += [f"n{spec.n}", f"s{spec.seed}"]
    elif cell == "speed":
        parts += [f"t{spec.threads}", f"c{spec.n_ctx}"]
    elif cell.startswith("latency:"):
        parts += [f"t{spec.threads}", f"c{spec.n_ctx}"] + ([f"r{spec.latency_samples}"]
                                                          if spec.latency_samples != LATENCY_SAMPLES else [])
    return "|".join(parts)


# Files scored in one fidelity pass are all open at once: the batch stops at this many bytes of
# candidates (a full-size ladder's quantized files together outgrow the measuring machine's RAM).
FIDELITY_BATCH_BYTES = 4 << 30


def _fidelity_values(row, facts: dict, ref: Variant) -> dict:
    return {"kld_mean": max(0.0, row.kld_mean), "top1": row.top1, "ppl_ratio": row.ppl_ratio,
            "positions": facts["positions"], "reference": ref.key}


def _fidelity_batch(first: Variant, ref: Variant, plans: Sequence, ids: dict, book: "CellBook",
                    spec: SweepSpec) -> list[tuple[Variant, str]]:
    """``first`` and the next files whose fidelity cell against ``ref`` is still missing, within
    :data:`FIDELITY_BATCH_BYTES`; each with its cell key."""
    batch: list[tuple[Variant, str]] = []
    total = 0
    seen = set()
    for v, r, cell in plans:
        if cell != "fidelity" or r is None or r.key != ref.key or v.key in seen:
            continue
        if batch or v.key == first.key:
            key = _cell_key(cell, ids[v.key], ids[ref.key], spec)
            size = ids[v.key].bytes
            if batch and (book.get(cell, key) is not None or total + size > FIDELITY_BATCH_BYTES):
                continue
            seen.add(v.key)
            batch.append((v, key))
            total += size
    return batch


def run_sweep(inputs: Sequence[Path], run: Path, spec: SweepSpec, samples: Sequence, *,
              on_note: Callable[[str], None] = lambda s: None,
              on_step: Callable[[str], None] | None = None,
              on_cell: Callable[[int, int, str], None] | None = None, measure: bool = True,
              remeasure: Sequence[str] = ()) -> SweepResult:
    """Measure every cell not yet done (``measure=False``: none, only the table of what is done);
    returns the run's variants and all its cells. Cells of the kinds in ``remeasure`` (``speed``,
    ``latency``: the machine-bound ones) are measured again even when done; the new record is
    appended and, read last, replaces the old one."""
    if bad := set(remeasure) - set(REMEASURABLE):
        raise UserError(f"cannot re-measure {', '.join(sorted(bad))}: give {' or '.join(REMEASURABLE)}")
    from radlite_edge.bench.fidelity import measure_fidelity
    from radlite_edge.tasks import TASKS

    t0 = time.perf_counter()
    run = Path(run)
    make_dir(run)
    by_task = {t: [s for s in samples if s.task == t and s.split == "test"] for t in spec.tasks}
    missing = [t for t, ss in by_task.items() if not ss]
    if missing:
        raise UserError(f"no test samples for {', '.join(missing)} in the data")
    grammar_tasks = {t for t in spec.tasks if TASKS[t].language is not None}
    sources = sorted({s.source for ss in by_task.values() for s in ss})
    result = SweepResult(run, [], [], data=f"{', '.join(sources)} test split, up to {spec.n} samples per task")
    with CellBook(run) as book:
        result.notes += book.notes
        variants = plan_variants(inputs, run, spec, on_note=lambda s: (result.notes.append(s), on_note(s)),
                                 on_step=on_step)
        result.variants = variants
        ids = {v.key: identify_model(v.path) for v in variants}
        plans = [(v, reference_of(v, variants), c) for v in variants
                 for c in _cell_plan(v, reference_of(v, variants), spec, grammar_tasks)]
        # cheap facts first, then the strict scores of every file, then the rest: a sweep cut short
        # (or --report-only) still has the trade-off's core for every level
        plans.sort(key=lambda p: (_cell_rank(p[2]), _task_cost(p[2])))
        plans.append((None, None, "runtime"))
        made_here: set[tuple[str, str]] = set()
        for i, (v, ref, cell) in enumerate(plans):
            if v is None:
                key = f"runtime|{sys.version_info[:2]}"
                mid = None
            else:
                mid = ids[v.key]
                key = _cell_key(cell, mid, ids[ref.key] if ref else None, spec)
            if on_cell:
                on_cell(i, len(plans), f"{v.key if v else 'runtime'} {cell}")
            again = measure and cell.split(":")[0] in remeasure and (cell, key) not in made_here
            if (found := book.get(cell, key)) is not None and not again:
                if (cell, key) not in made_here:  # a batched fidelity cell made earlier in this loop
                    result.reused += 1
                result.measured[(v.key if v else "", cell)] = found
                continue
            if not measure:
                result.missing += 1
                continue
            c0 = time.perf_counter()
            if cell == "runtime":
                values = measure_runtime_rss()
            elif cell == "file":
                values = measure_file(v.path)
            elif cell == "speed":
                values = measure_speed(v.path, spec)
            elif cell == "fidelity":
                # the reference's logits are the half of a fidelity cell's cost: every file still
                # missing its cell against this reference is scored in the same pass over the text
                batch = _fidelity_batch(v, ref, plans, ids, book, spec)
                rows, facts = measure_fidelity(ref.path, [b.path for b, _ in batch], ctx=DEFAULT_FIDELITY_CTX,
                                               max_windows=spec.fidelity_windows, n_threads=spec.threads)
                share = (time.perf_counter() - c0) / len(batch)
                for (b, b_key), row in zip(batch[1:], rows[1:]):
                    c = Cell(variant=b.key, cell=cell, key=b_key, model_id=ids[b.key].to_dict(),
                             values=_fidelity_values(row, facts, ref), seconds=share, when=_now())
                    book.add(c)
                    made_here.add((cell, b_key))
                    result.made += 1
                values = _fidelity_values(rows[0], facts, ref)
            elif cell.startswith("eval:"):
                _, task, decoding = cell.split(":")
                values = measure_eval(v.path, task, decoding, by_task[task], run / "eval" / v.imatrix, spec)
            else:
                values = measure_latency(v.path, cell.split(":", 1)[1], by_task[cell.split(":", 1)[1]], spec)
            seconds = share if cell == "fidelity" else time.perf_counter() - c0
            c = Cell(variant=v.key if v else "", cell=cell, key=key, model_id=mid.to_dict() if mid else None,
                     values=values, seconds=seconds, when=_now())
            book.add(c)
            made_here.add((cell, key))
            result.measured[(v.key if v else "", cell)] = c
            result.made += 1
        if on_cell:
            on_cell(len(plans), len(plans), "done")
        result.cells = list(book.done.values())
    result.seconds = time.perf_counter() - t0
    write_table(result, spec)
    return result


def joined_rows(result: SweepResult, spec: SweepSpec) -> list[dict]:
    """One row per variant, every cell's values joined in: what the report and the recommender read."""
    from radlite_edge.tasks import TASKS

    m = result.measured
    rows = []
    for v in result.variants:
        ref = reference_of(v, result.variants)
        row: dict = {"model": v.model, "level": v.level, "imatrix": v.imatrix, "path": str(v.path), "key": v.key,
                     "reference": ref.key if ref else None, "tasks": {}}
        for cell in ("file", "speed", "fidelity"):
            if (v.key, cell) in m:
                row.update({k: val for k, val in m[(v.key, cell)].values.items() if k != "reference"})
        if ref is not None and ref.path == v.path:
            row.update({"kld_mean": 0.0, "top1": 1.0, "ppl_ratio": 1.0})
        for task in spec.tasks:
            entry: dict = {}
            for decoding in spec.decodings:
                c = m.get((v.key, f"eval:{task}:{decoding}"))
                if c is None and TASKS[task].language is None:  # one eval served both (see _cell_plan)
                    c = m.get((v.key, f"eval:{task}:strict"))
                if c is not None:
                    entry[decoding] = c.values
            if (c := m.get((v.key, f"latency:{task}"))) is not None:
                entry.update(c.values)
            row["tasks"][task] = entry
        row["model_id"] = m[(v.key, "file")].model_id if (v.key, "file") in m else None
        rows.append(row)
    return rows


TABLE_FILE = "tradeoff.json"


def write_table(result: SweepResult, spec: SweepSpec) -> Path:
    from radlite_edge.fileio import atomic_path
    from radlite_edge.machine import describe

    runtime = result.measured.get(("", "runtime"))
    data = {"format": "radlite-tradeoff/1", "spec": {**asdict(spec)}, "machine": describe(),
            "runtime_rss_bytes": runtime.values["runtime_rss_bytes"] if runtime else None,
            "data": result.data, "seconds": result.seconds,
            "cell_seconds": sum(c.seconds for c in result.measured.values()),
            "rows": joined_rows(result, spec),
            "notes": result.notes + ([f"{result.missing} cells not measured yet (a report of what is done): run "
                                      "the same radlite tradeoff command again to go on"] if result.missing else [])}
    path = result.run / TABLE_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    return path
