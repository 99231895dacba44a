"""The importance matrix: per input column, the mean square of the activations entering
each weight matrix of the transformer blocks, measured on calibration text.

Computed as llama.cpp's ``llama-imatrix`` computes it: the model runs in llama.cpp on the
text, one window of ``chunk_size`` tokens at a time from an empty cache, with an eval
callback that sees every MUL_MAT whose weight is a ``blk.*`` tensor and adds up x² per
input column (and the number of rows). So the activations are those of the F16 model
the quantizer reads, with llama.cpp's own graph, and the tensor names are GGUF names.

Written in llama.cpp's imatrix GGUF format (``tools/imatrix/imatrix.cpp``): general.type
``imatrix``, ``imatrix.datasets`` / ``imatrix.chunk_count`` / ``imatrix.chunk_size``, and
per weight ``<name>.in_sum2`` (F32, ne = [columns, matrices]: raw sums of squares) and
``<name>.counts`` (F32, ne = [1, matrices]: rows summed); dense models have one matrix
per weight, stored 1-D as llama-imatrix stores it. The gguf library adds
``general.architecture``, which llama.cpp's reader ignores. The quantizer gets
sums / counts, as ``llama-quantize`` passes them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import gguf
import numpy as np

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import FILE, atomic_path, claim_output, scratch_dir
from radlite_edge.limits import check_context
from radlite_edge.llm import Interrupts, captured_llama_log
from radlite_edge.synth.corpus import radiology_corpus
from radlite_edge.token_windows import joined_pieces, text_pieces, token_windows

from .inspect_gguf import open_complete, open_model

# The embedded tokenizer is trained on the corpus drawn with seed 0; calibration draws
# seed 1, and the fidelity benchmark holds out seed 2.
CALIBRATION_SEED = 1
CALIBRATION_REPORTS = 6000
DEFAULT_CHUNK = 512
DEFAULT_CHUNKS = 64
# llama.cpp's collector ignores smaller batches (imatrix.cpp: "why are small batches ignored")
_MIN_ROWS = 16

# ---------------------------------------------------------------- llama.cpp's tensors


class _Tensor(ctypes.Structure):
    """``struct ggml_tensor`` (ggml.h), read-only; checked against ggml at first use."""


_Tensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * 4),
    ("nb", ctypes.c_size_t * 4),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * 16),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(_Tensor) * 10),
    ("view_src", ctypes.POINTER(_Tensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * 64),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]
_GGML_TYPE_F32 = 0


@functools.lru_cache(maxsize=1)
def _ggml() -> ctypes.CDLL:
    import llama_cpp
    from llama_cpp._ctypes_extensions import load_shared_library

    lib = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
    lib.ggml_get_name.argtypes = [ctypes.c_void_p]
    lib.ggml_get_name.restype = ctypes.c_void_p
    lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
    lib.ggml_op_desc.restype = ctypes.c_char_p
    lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
    lib.ggml_nbytes.restype = ctypes.c_size_t
    lib.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_buffer_is_host.restype = ctypes.c_bool
    lib.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    lib.ggml_backend_tensor_get.restype = None
    return lib


def _weight_name(raw: bytes) -> str:
    # A weight copied to another backend is named "<backend>#<name>#<n>" (imatrix.cpp)
    name = raw.decode()
    parts = name.split("#")
    return parts[1] if len(parts) == 3 else name


class _Collector:
    """The eval callback: sums of x² per input column of every block weight's MUL_MAT."""

    def __init__(self) -> None:
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}
        self.error: BaseException | None = None
        self._ops: dict[int, bytes] = {}
        self._checked = False
        import llama_cpp

        self.c_callback = llama_cpp.ggml_backend_sched_eval_callback(self._eval)

    def _check_layout(self, ptr: int, t: _Tensor) -> None:
        lib = _ggml()
        if lib.ggml_get_name(ptr) != ptr + _Tensor.name.offset or (
                t.type == _GGML_TYPE_F32 and lib.ggml_nbytes(ptr) != _nbytes(t)):
            raise RuntimeError("struct ggml_tensor in this llama.cpp build differs from convert/imatrix.py's _Tensor")
        self._checked = True

    def _op(self, ptr: int, t: _Tensor) -> bytes:
        if t.op not in self._ops:
            self._ops[t.op] = _ggml().ggml_op_desc(ptr)
        return self._ops[t.op]

    def _eval(self, ptr: int, ask: bool, user_data) -> bool:
        try:
            t = _Tensor.from_address(ptr)
            if not self._checked:
                self._check_layout(ptr, t)
            return self._wants(ptr, t) if ask else self._collect(t)
        except BaseException as e:  # an exception cannot cross the C callback: keep it for later
            self.error = e
            return False

    def _wants(self, ptr: int, t: _Tensor) -> bool:
        if self._op(ptr, t) != b"MUL_MAT":
            return False
        src0, src1 = t.src[0].contents, t.src[1].contents
        if src1.ne[1] < _MIN_ROWS or src1.type != _GGML_TYPE_F32:
            return False
        return _weight_name(src0.name).startswith("blk.")

    def _collect(self, t: _Tensor) -> bool:
        src0, src1 = t.src[0].contents, t.src[1].contents
        name = _weight_name(src0.name)
        if src0.ne[2] * src0.ne[3] != 1:
            raise UserError(f"{name}: 3-D weights (mixture of experts) are not supported by radlite imatrix")
        x = _as_array(src1)
        ne0 = int(src1.ne[0])
        rows = x.reshape(-1, ne0)
        acc = self.sums.get(name)
        if acc is None:
            acc = self.sums[name] = np.zeros(ne0, dtype=np.float64)
            self.counts[name] = 0
        elif acc.size != ne0:
            raise RuntimeError(f"{name}: activations of {ne0} columns after {acc.size}")
        acc += np.einsum("ij,ij->j", rows, rows, dtype=np.float64)
        self.counts[name] += rows.shape[0]
        return True


def _nbytes(t: _Tensor) -> int:
    """ggml_nbytes of an F32 tensor: the span from its first to its last element, strides included."""
    if any(int(n) == 0 for n in t.ne):
        return 0
    return 4 + sum((int(t.ne[i]) - 1) * int(t.nb[i]) for i in range(4))


def _as_array(t: _Tensor) -> np.ndarray:
    """The F32 tensor's values as an (ne3, ne2, ne1, ne0) view, copied off a device if needed."""
    lib = _ggml()
    size = _nbytes(t)
    if lib.ggml_backend_buffer_is_host(t.buffer):
        raw = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(t.data))
    else:
        raw = np.empty(size, dtype=np.uint8)
        lib.ggml_backend_tensor_get(ctypes.addressof(t), raw.ctypes.data, 0, size)
    shape = tuple(int(t.ne[i]) for i in (3, 2, 1, 0))
    strides = tuple(int(t.nb[i]) for i in (3, 2, 1, 0))
    return np.lib.stride_tricks.as_strided(raw.view(np.float32), shape=shape, strides=strides, writeable=False)


# ------------------------------------------------------------------ the matrix


@dataclass
class ImatrixData:
    """Raw sums of squares and row counts per weight, as the imatrix GGUF stores them."""

    sums: dict[str, np.ndarray]  # weight name -> float64 [columns]
    counts: dict[str, int]  # weight name -> rows summed
    chunk_size: int
    chunk_count: int
    datasets: list[str] = field(default_factory=list)

    def means(self) -> dict[str, np.ndarray]:
        """What the quantizer takes: the mean square per column, in float32 arithmetic as
        llama-quantize's load_imatrix does it (a count of 0 gives ones)."""
        return {name: s.astype(np.float32) / np.float32(self.counts[name]) if self.counts[name]
                else np.ones(s.shape, np.float32) for name, s in self.sums.items()}


def calibration_pieces(calib: Path | None) -> tuple[Iterator[str], str]:
    """The calibration text in pieces, and its name for ``imatrix.datasets``."""
    if calib is not None:
        return text_pieces(calib), str(calib)
    name = f"radlite synthetic radiology reports (seed {CALIBRATION_SEED}, {CALIBRATION_REPORTS} reports)"
    return joined_pieces(radiology_corpus(CALIBRATION_REPORTS, seed=CALIBRATION_SEED)), name


def _tokenizer(vocab) -> Callable[[str], list[int]]:
    import llama_cpp

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        n_max = len(data) + 16
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, n_max, False, False)
        if n < 0:
            raise RuntimeError(f"llama_tokenize needed {-n} tokens for {len(data)} bytes")
        return list(buf[:n])

    return tokenize


def compute_imatrix(
    model_path: Path,
    pieces: Iterable[str],
    *,
    chunk_size: int = DEFAULT_CHUNK,
    max_chunks: int | None = DEFAULT_CHUNKS,
    n_threads: int | None = None,
    dataset: str = "",
    progress: Callable[[int], None] | None = None,
) -> ImatrixData:
    """Run ``model_path`` in llama.cpp over the text's windows and collect the matrix.

    ``progress(chunks_done)`` after each window. Only whole windows count, as in
    llama-imatrix; a text shorter than one window is a user error.
    """
    import llama_cpp

    if chunk_size < _MIN_ROWS:
        raise UserError(f"--chunk {chunk_size}: llama.cpp collects batches of {_MIN_ROWS} tokens or more")
    n_threads = n_threads or 1
    collector = _Collector()
    llama_cpp.llama_backend_init()
    model = ctx = None
    batch = None
    with captured_llama_log() as log, Interrupts() as stop:
        try:
            model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), llama_cpp.llama_model_default_params())
            if not model:
                why = "; ".join(log.errors()[-2:]) or "see llama.cpp's log"
                raise UserError(f"{model_path}: llama.cpp cannot load it ({why})")
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = chunk_size
            cparams.n_seq_max = 1
            cparams.n_threads = cparams.n_threads_batch = n_threads
            cparams.no_perf = True
            cparams.cb_eval = collector.c_callback
            cparams.cb_eval_user_data = None
            ctx = llama_cpp.llama_init_from_model(model, cparams)
            if not ctx:
                raise RuntimeError(f"llama.cpp could not make a context: {log.errors()}")
            vocab = llama_cpp.llama_model_get_vocab(model)
            bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
            batch = llama_cpp.llama_batch_init(chunk_size, 0, 1)
            memory = llama_cpp.llama_get_memory(ctx)
            n_chunks = 0
            windows = token_windows(_tokenizer(vocab), pieces, chunk_size, first_token=bos, max_windows=max_chunks)
            for window in windows:
                for i, token in enumerate(window):
                    batch.token[i] = token
                    batch.pos[i] = i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    # every position: llama.cpp skips the last layer's rows whose outputs are unused
                    batch.logits[i] = 1
                batch.n_tokens = len(window)
                llama_cpp.llama_memory_clear(memory, True)
                rc = llama_cpp.llama_decode(ctx, batch)
                stop.check()
                if collector.error is not None:
                    raise collector.error
                if rc != 0:
                    raise RuntimeError(f"llama_decode returned {rc}: {log.errors()}")
                n_chunks += 1
                if progress:
                    progress(n_chunks)
        finally:
            if batch is not None:
                llama_cpp.llama_batch_free(batch)
            if ctx:
                llama_cpp.llama_free(ctx)
            if model:
                llama_cpp.llama_model_free(model)
    if n_chunks == 0:
        raise UserError(f"{dataset or 'the calibration text'}: shorter than one chunk of {chunk_size} tokens: "
                        f"give a longer text or a smaller --chunk")
    return ImatrixData(collector.sums, collector.counts, chunk_size, n_chunks, [dataset] if dataset else [])


# ----------------------------------------------------------------- the file

_SUMS, _COUNTS = ".in_sum2", ".counts"


def write_imatrix(data: ImatrixData, out: Path, *, arch: str) -> None:
    """llama.cpp's imatrix GGUF, names sorted as llama-imatrix sorts them; atomic."""
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(tmp, arch=arch)
        try:
            writer.add_type(gguf.GGUFType.IMATRIX)
            writer.add_array(gguf.Keys.IMatrix.DATASETS, list(data.datasets))
            writer.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, data.chunk_count)
            writer.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, data.chunk_size)
            for name in sorted(data.sums):
                # one matrix per weight: ggml stores these [columns] and [1], as llama-imatrix's file has them
                writer.add_tensor(name + _SUMS, data.sums[name].astype(np.float32))
                writer.add_tensor(name + _COUNTS, np.array([data.counts[name]], dtype=np.float32))
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file()
        finally:
            writer.close()


def read_imatrix(path: Path) -> ImatrixData:
    """An imatrix GGUF (ours or llama-imatrix's); anything else is a user error naming the file."""
    path = Path(path)
    reader = open_complete(path)
    kind = reader.fields.get(gguf.Keys.General.TYPE)
    kind = kind.contents() if kind is not None else None
    if kind != gguf.GGUFType.IMATRIX:
        raise UserError(f"{path}: not an importance matrix (general.type {kind!r}): make one with radlite imatrix")
    tensors = {t.name: t for t in reader.tensors}
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for tname, t in tensors.items():
        if not tname.endswith(_SUMS):
            continue
        name = tname[: -len(_SUMS)]
        c = tensors.get(name + _COUNTS)
        if c is None or t.tensor_type != gguf.GGMLQuantizationType.F32 or c.tensor_type != gguf.GGMLQuantizationType.F32:
            raise UserError(f"{path}: entry {name} lacks F32 sums and counts: the file is damaged")
        if int(c.n_elements) != 1:
            raise UserError(f"{path}: {name} has {int(c.n_elements)} matrices: 3-D (expert) weights are not supported")
        sums[name] = np.asarray(t.data, dtype=np.float64).reshape(-1)
        counts[name] = int(round(float(np.asarray(c.data).reshape(-1)[0])))
    if not sums:
        raise UserError(f"{path}: an importance matrix with no entries")

    def field_value(key: str, default):
        f = reader.fields.get(key)
        return f.contents() if f is not None else default

    return ImatrixData(sums, counts, int(field_value(gguf.Keys.IMatrix.CHUNK_SIZE, 0)),
                       int(field_value(gguf.Keys.IMatrix.CHUNK_COUNT, 0)),
                       list(field_value(gguf.Keys.IMatrix.DATASETS, [])))


def check_fits(data: ImatrixData, model: gguf.GGUFReader, *, imatrix_path: Path, model_path: Path) -> None:
    """Refuse an importance matrix made for another model: names, column counts, coverage."""
    weights = {t.name: t for t in model.tensors if len(t.shape) >= 2}
    where = f"{imatrix_path} was made for another model"
    foreign = [n for n in data.sums if n not in weights]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise UserError(f"{where}: {model_path} has no tensor {foreign[0]}{more}; make one with radlite imatrix {model_path}")
    for name, s in data.sums.items():
        columns = int(weights[name].shape[0])
        if s.size != columns:
            raise UserError(f"{where}: {name} has {s.size} columns there and {columns} in {model_path}; "
                            f"make one with radlite imatrix {model_path}")
    missing = [n for n in weights if n.startswith("blk.") and n not in data.sums]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{where}: it has no entry for {missing[0]}{more} of {model_path}; "
                        f"make one with radlite imatrix {model_path}")


# ------------------------------------------------------------- the command


@dataclass
class ImatrixResult:
    path: Path
    model: str
    n_entries: int
    n_tokens: int
    chunk_count: int
    chunk_size: int
    datasets: list[str]
    seconds: float
    skipped: bool = False

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def _source_inputs(source: Path) -> list[Path]:
    if source.is_dir():
        return [p for p in source.iterdir() if p.suffix in (".json", ".safetensors")]
    return [source]


def make_imatrix(
    source: Path,
    out: Path,
    *,
    calib: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    max_chunks: int | None = DEFAULT_CHUNKS,
    n_threads: int | None = None,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImatrixResult:
    """``radlite imatrix``: from a GGUF, or an HF checkpoint folder (converted to a temporary F16 GGUF)."""
    t0 = time.perf_counter()
    source, out = Path(source), Path(out)
    if not source.exists():
        raise UserError(f"{source}: no such model file or checkpoint folder")
    if calib is not None and Path(calib).is_dir():
        raise UserError(f"--calib {calib} is a folder: give one calibration text file")
    if calib is not None and not Path(calib).is_file():
        raise UserError(f"--calib {calib}: no such calibration text file")
    claim_output(out, [source] + ([Path(calib)] if calib else []), step="imatrix", kind=FILE)
    pieces, dataset = calibration_pieces(calib)
    inputs = manifest.identify(_source_inputs(source) + ([Path(calib)] if calib else []))
    params = {"chunk_size": chunk_size, "max_chunks": max_chunks, "dataset": dataset}
    if not force and manifest.is_up_to_date(out, step="imatrix", inputs=inputs, params=params):
        previous = manifest.load(out)["result"]
        return ImatrixResult(**{**previous, "path": out, "seconds": time.perf_counter() - t0, "skipped": True})

    # a checkpoint folder is converted to a temporary F16 beside the output (it may be GBs: not /tmp)
    folder_input = scratch_dir(out) if source.is_dir() else contextlib.nullcontext(None)
    with folder_input as tmp:
        model_path = source
        if tmp is not None:
            from .hf_to_gguf import convert_checkpoint

            model_path = Path(tmp) / f"{source.name}-F16.gguf"
            convert_checkpoint(source, model_path, outtype="f16", n_threads=n_threads)
        reader = open_model(model_path)
        arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
        trained = reader.fields.get(gguf.Keys.LLM.CONTEXT_LENGTH.format(arch=arch))
        check_context(chunk_size, int(trained.contents()) if trained else None, what="--chunk")
        del reader
        data = compute_imatrix(model_path, pieces, chunk_size=chunk_size, max_chunks=max_chunks,
                               n_threads=n_threads, dataset=dataset, progress=progress)
    write_imatrix(data, out, arch=arch)
    result = ImatrixResult(path=out, model=source.name, n_entries=len(data.sums),
                           n_tokens=max(data.counts.values()), chunk_count=data.chunk_count,
                           chunk_size=data.chunk_size, datasets=data.datasets, seconds=time.perf_counter() - t0)
    manifest.write(out, step="imatrix", inputs=inputs, params=params, seconds=result.seconds, result=result.to_dict())
    return result
