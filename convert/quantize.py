"""The quantization ladder: an F16/BF16/F32 GGUF to every level, by llama.cpp's own quantizer.

``llama_model_quantize`` (llama-cpp-python's binding of llama.cpp) does the work, with
the params struct filled as ``llama-quantize`` fills it: the level's ftype from the one
levels table, the thread count, the importance matrix as sums/counts per weight, and
the ``quantize.imatrix.*`` metadata recording where it came from. Every check that can
fail on the user's input runs before the first level is made, so a mistake costs
nothing and leaves nothing behind. Each output is written under a temporary name in
the output folder and renamed when complete, with a manifest beside it; an output whose
manifest matches its inputs is kept.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FILE, atomic_path, check_writable_dir, claim_output, sha256_file
from radlite_edge.identity import name_from_file
from radlite_edge.levels import Level, get_level, level_for_ftype
from radlite_edge.llm import captured_llama_log

from . import imatrix as im
from .inspect_gguf import open_complete, open_model

SOURCE_TYPES = (QT.F32, QT.F16, QT.BF16)  # what llama.cpp quantizes without requantizing
_POLL_S = 0.25


@dataclass
class QuantizeResult:
    path: Path
    level: str
    source: str
    source_sha256: str | None
    imatrix: str | None
    imatrix_sha256: str | None
    bytes: int
    n_params: int
    bits_per_weight: float
    types: dict[str, int]
    seconds: float
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def parse_levels(spec: str | Sequence[str]) -> list[Level]:
    """``q8_0,q4_k_m`` (or a list) to levels, in the order given, each once."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    levels: list[Level] = []
    for name in (n for n in names if n.strip()):
        level = get_level(name)
        if level not in levels:
            levels.append(level)
    if not levels:
        raise UserError("--levels is empty: give one or more levels, e.g. q8_0,q4_k_m")
    return levels


def model_name(source: Path) -> str:
    """The NAME of ``NAME-LEVEL.gguf`` outputs: the input's file name less its level."""
    return name_from_file(source)


def output_path(outdir: Path, name: str, level: Level) -> Path:
    return Path(outdir) / f"{name}-{level.name}.gguf"


def check_source(source: Path) -> gguf.GGUFReader:
    """A complete model GGUF whose weights are still F32/F16/BF16; anything else is refused."""
    reader = open_model(source)
    quantized = Counter(t.tensor_type.name for t in reader.tensors if t.tensor_type not in SOURCE_TYPES)
    if quantized:
        ftype = reader.fields.get(gguf.Keys.General.FILE_TYPE)
        level = level_for_ftype(int(ftype.contents())) if ftype is not None else None
        what = level.name if level else ", ".join(sorted(quantized))
        raise UserError(f"{source} is already quantized ({what}); requantizing loses accuracy: "
                        f"quantize from the F16/BF16 GGUF that radlite convert writes")
    return reader


def _imatrix_entries(means: dict[str, np.ndarray]):
    """The NULL-terminated ``llama_model_imatrix_data`` array, and what keeps its memory alive."""
    import llama_cpp

    entries = (llama_cpp.llama_model_imatrix_data * (len(means) + 1))()
    keep = []
    for i, (name, values) in enumerate(sorted(means.items())):
        values = np.ascontiguousarray(values, dtype=np.float32)
        keep.append(values)
        entries[i].name = name.encode()
        entries[i].data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entries[i].size = values.size
    return entries, keep


def _kv_overrides(items: list[tuple[str, str | int]]):
    """``quantize.imatrix.*`` keys as llama-quantize writes them; terminated by an empty key."""
    import llama_cpp

    kvs = (llama_cpp.llama_model_kv_override * (len(items) + 1))()
    for kv, (key, value) in zip(kvs, items):
        kv.key = key.encode()
        if isinstance(value, int):
            kv.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
            kv.value.val_i64 = value
        else:
            kv.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            kv.value.val_str = value.encode()[:127]
    return kvs


def llama_quantize(source: Path, dest: Path, level: Level, *, n_threads: int | None,
                   imatrix: tuple[Path, im.ImatrixData] | None = None,
                   on_bytes: Callable[[int], None] | None = None) -> None:
    """One call of llama.cpp's quantizer; its error, if any, becomes a one-line UserError."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.nthread = n_threads or 0
    params.ftype = int(level.ftype)
    alive: list = []  # what the C side reads during the call: it must outlive it
    if imatrix is not None:
        path, data = imatrix
        entries, arrays = _imatrix_entries(data.means())
        kv = [("quantize.imatrix.file", str(path))]
        if data.datasets:
            kv.append(("quantize.imatrix.dataset", data.datasets[0]))
        kv.append(("quantize.imatrix.entries_count", len(data.sums)))
        if data.chunk_count:
            kv.append(("quantize.imatrix.chunks_count", data.chunk_count))
        kvs = _kv_overrides(kv)
        alive += [entries, arrays, kvs]
        params.imatrix = entries
        params.kv_overrides = kvs
    llama_cpp.llama_backend_init()
    done = threading.Event()

    def watch() -> None:  # the quantizer releases the GIL: report the bytes it has written
        while not done.wait(_POLL_S):
            try:
                on_bytes(dest.stat().st_size)
            except OSError:
                pass

    watcher = threading.Thread(target=watch, daemon=True) if on_bytes else None
    with captured_llama_log() as log:
        if watcher:
            watcher.start()
        try:
            rc = llama_cpp.llama_model_quantize(str(source).encode(), str(dest).encode(), ctypes.byref(params))
        finally:
            done.set()
            if watcher:
                watcher.join()
    if rc != 0:
        why = log.errors()[-1] if log.errors() else "see llama.cpp's log"
        raise UserError(f"{source}: llama.cpp could not quantize it to {level.name}: {why}")


def quantize_ladder(
    source: Path,
    levels: str | Sequence[str],
    outdir: Path,
    *,
    imatrix: Path | str | None = None,
    n_threads: int | None = None,
    name: str | None = None,
    force: bool = False,
    on_level: Callable[[Level, Path], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_imatrix: Callable[[int], None] | None = None,
) -> list[QuantizeResult]:
    """Make ``outdir/<name>-<LEVEL>.gguf`` for each level; ``imatrix`` a file, ``"auto"`` or None.

    ``"auto"`` computes the importance matrix on the embedded radiology calibration text
    into ``outdir/<name>-imatrix.gguf`` (kept, with its manifest, for the next run).
    """
    source, outdir = Path(source), Path(outdir)
    wanted = parse_levels(levels)
    reader = check_source(source)
    name = name or model_name(source)
    outputs = [(level, output_path(outdir, name, level)) for level in wanted]
    given = [] if imatrix is None or (isinstance(imatrix, str) and imatrix.lower() == "auto") else [Path(imatrix)]
    for level, out in outputs:
        claim_output(out, [source, *given], step="quantize", kind=FILE)

    imatrix_path: Path | None = None
    imatrix_data: im.ImatrixData | None = None
    auto = isinstance(imatrix, str) and imatrix.lower() == "auto"
    if imatrix is not None and not auto:
        imatrix_path = Path(imatrix)
        imatrix_data = im.read_imatrix(imatrix_path)
        im.check_fits(imatrix_data, reader, imatrix_path=imatrix_path, model_path=source)
    elif imatrix is None:
        needing = [level.name for level in wanted if level.needs_imatrix]
        if needing:
            raise UserError(f"{', '.join(needing)} need{'s' if len(needing) == 1 else ''} an importance matrix: "
                            f"pass --imatrix FILE (from radlite imatrix) or --imatrix auto")
    del reader
    check_writable_dir(outdir)
    if auto:
        imatrix_path = outdir / f"{name}-imatrix.gguf"
        im.make_imatrix(source, imatrix_path, n_threads=n_threads, progress=on_imatrix)
        imatrix_data = im.read_imatrix(imatrix_path)

    imatrix_sha = sha256_file(imatrix_path) if imatrix_path else None
    inputs = manifest.identify([source] + ([imatrix_path] if imatrix_path else []))
    source_sha: str | None = None
    results = []
    for level, out in outputs:
        params = {"level": level.name, "imatrix_sha256": imatrix_sha}
        if on_level:
            on_level(level, out)
        if not force and manifest.is_up_to_date(out, step="quantize", inputs=inputs, params=params):
            previous = manifest.load(out)["result"]
            results.append(QuantizeResult(**{**previous, "path": out, "skipped": True}))
            continue
        if source_sha is None:  # hashed once per run, and only when something is made
            source_sha = sha256_file(source)
        t0 = time.perf_counter()
        with atomic_path(out, step="quantize") as tmp:
            llama_quantize(source, tmp, level, n_threads=n_threads,
                           imatrix=(imatrix_path, imatrix_data) if imatrix_data is not None else None,
                           on_bytes=on_bytes)
        seconds = time.perf_counter() - t0
        result = _describe(out, level, source, source_sha, imatrix_path, imatrix_sha, seconds)
        manifest.write(out, step="quantize", inputs=inputs, params=params, seconds=seconds, result=result.to_dict())
        results.append(result)
    return results


def _describe(out: Path, level: Level, source: Path, source_sha: str, imatrix_path: Path | None,
              imatrix_sha: str | None, seconds: float) -> QuantizeResult:
    reader = open_complete(out)
    types = Counter(t.tensor_type.name for t in reader.tensors)
    n_params = sum(int(t.n_elements) for t in reader.tensors)
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    return QuantizeResult(
        path=out, level=level.name, source=source.name, source_sha256=source_sha,
        imatrix=imatrix_path.name if imatrix_path else None, imatrix_sha256=imatrix_sha,
        bytes=out.stat().st_size, n_params=n_params, bits_per_weight=8.0 * tensor_bytes / max(n_params, 1),
        types=dict(types), seconds=seconds,
    )
