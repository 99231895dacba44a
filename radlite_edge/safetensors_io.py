"""Streaming safetensors: read and write one tensor (or one slab of rows) at a time.

The ``safetensors`` package maps a whole file and has no numpy bf16; checkpoints of
several GB must pass through a few hundred MB. So the header is parsed here, every
tensor's byte range is checked against the file size up front (a truncated download is
named before any work starts), and data is read with ``pread`` into fresh buffers:
file pages are not mapped, so they do not count in the process's resident memory.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from .errors import UserError

# safetensors dtype -> (bytes per element, numpy dtype of the raw bits)
DTYPES: dict[str, tuple[int, np.dtype]] = {
    "F32": (4, np.dtype("<f4")),
    "F16": (2, np.dtype("<f2")),
    "BF16": (2, np.dtype("<u2")),
}

_MAX_HEADER = 100 * 1024 * 1024
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    path: Path
    offset: int  # absolute byte offset in ``path``
    nbytes: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round to nearest even, as torch and ggml do (NaN stays NaN)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), rounded)


def read_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, byte offset where the data starts), validated."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise UserError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", head)
            if n == 0 or n > _MAX_HEADER or 8 + n > size:
                raise UserError(f"{path}: not a safetensors file or truncated (header length {n}, file size {size})")
            raw = f.read(n)
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path}: corrupt safetensors header (not valid JSON)") from None
    if not isinstance(header, dict):
        raise UserError(f"{path}: corrupt safetensors header (not a JSON object)")
    return header, 8 + n


def _entries_of_file(path: Path) -> dict[str, TensorEntry]:
    header, data_start = read_header(path)
    size = path.stat().st_size
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}: corrupt header entry for tensor {name}") from None
        if dtype not in DTYPES:
            raise UserError(f"{path}: tensor {name} has dtype {dtype}; only F32, F16 and BF16 checkpoints are supported")
        itemsize = DTYPES[dtype][0]
        n_el = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != n_el * itemsize:
            raise UserError(f"{path}: tensor {name} spans {end - begin} bytes but its shape {list(shape)} needs {n_el * itemsize}")
        if data_start + end > size:
            raise UserError(
                f"{path}: truncated: tensor {name} ends at byte {data_start + end} but the file has {size} bytes; "
                "re-download or re-copy the checkpoint"
            )
        entries[name] = TensorEntry(name, dtype, shape, path, data_start + begin, end - begin)
    return entries


class Checkpoint:
    """The tensors of an HF checkpoint directory, single-file or sharded."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        if not self.directory.exists():
            raise UserError(f"checkpoint directory {self.directory} does not exist")
        if not self.directory.is_dir():
            raise UserError(f"checkpoint {self.directory} is not a directory (give the folder holding config.json)")
        self.entries: dict[str, TensorEntry] = {}
        index = self.directory / INDEX_NAME
        single = self.directory / SINGLE_NAME
        if index.is_file():
            self._load_index(index)
        elif single.is_file():
            self.entries = _entries_of_file(single)
        else:
            files = sorted(self.directory.glob("*.safetensors"))
            if not files:
                raise UserError(f"{self.directory}: no model.safetensors or {INDEX_NAME} found")
            for f in files:
                self.entries.update(_entries_of_file(f))

    def _load_index(self, index: Path) -> None:
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{index}: corrupt index (no weight_map)") from None
        by_file: dict[str, list[str]] = {}
        for name, fname in weight_map.items():
            by_file.setdefault(fname, []).append(name)
        for fname, names in sorted(by_file.items()):
            shard = self.directory / fname
            if not shard.is_file():
                raise UserError(f"{index}: shard {fname} is listed but missing from {self.directory}")
            found = _entries_of_file(shard)
            missing = [n for n in names if n not in found]
            if missing:
                raise UserError(f"{shard}: tensor {missing[0]} is listed in the index but absent from the shard")
            for n in names:
                self.entries[n] = found[n]

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return list(self.entries)

    def read_raw(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        """Rows [row_start, row_stop) of a tensor in its stored dtype (bf16 as uint16 bits)."""
        e = self.entries[name]
        itemsize, npdtype = DTYPES[e.dtype]
        rows = e.shape[0] if e.shape else 1
        row_stop = rows if row_stop is None else row_stop
        per_row = e.n_elements // rows if rows else 0
        start = e.offset + row_start * per_row * itemsize
        count = (row_stop - row_start) * per_row
        out = np.empty(count, dtype=npdtype)
        buf = memoryview(out).cast("B")
        fd = os.open(e.path, os.O_RDONLY)
        try:
            done = 0
            while done < len(buf):
                n = os.preadv(fd, [buf[done:]], start + done)
                if n <= 0:
                    raise UserError(f"{e.path}: truncated while reading tensor {name}")
                done += n
        finally:
            os.close(fd)
        shape = (row_stop - row_start, *e.shape[1:]) if e.shape else ()
        return out.reshape(shape)

    def read_f32(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        raw = self.read_raw(name, row_start, row_stop)
        if self.entries[name].dtype == "BF16":
            return bf16_bits_to_f32(raw)
        return raw.astype(np.float32, copy=False)

    def row_slabs(self, name: str, max_elements: int) -> Iterator[tuple[int, int]]:
        """(start, stop) row ranges whose element count stays under ``max_elements``."""
        e = self.entries[name]
        rows = e.shape[0] if e.shape else 1
        per_row = max(1, e.n_elements // max(rows, 1))
        step = max(1, max_elements // per_row)
        for start in range(0, rows, step):
            yield start, min(rows, start + step)


# ------------------------------------------------------------------ writing


@dataclass(frozen=True)
class PlannedTensor:
    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return (int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1) * DTYPES[self.dtype][0]


class SafetensorsWriter:
    """Write a safetensors file whose tensors arrive in plan order, in row slabs.

    The header is computed from the plan and written first, so nothing but the slab
    being written is ever in memory.
    """

    def __init__(self, path: Path, plan: Sequence[PlannedTensor], metadata: dict[str, str] | None = None):
        self.plan = list(plan)
        header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
        offset = 0
        for t in self.plan:
            header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + t.nbytes]}
            offset += t.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)
        self._f = open(path, "wb")
        self._f.write(struct.pack("<Q", len(raw)))
        self._f.write(raw)
        self._i = 0
        self._left = self.plan[0].nbytes if self.plan else 0

    def write(self, data: np.ndarray) -> None:
        """Append the next slab of the current tensor (bf16 given as uint16 bits)."""
        t = self.plan[self._i]
        want = DTYPES[t.dtype][1]
        if data.dtype != want:
            raise ValueError(f"{t.name}: slab has dtype {data.dtype}, expected {want}")
        if data.nbytes > self._left:
            raise ValueError(f"{t.name}: {data.nbytes} bytes given, {self._left} left")
        np.ascontiguousarray(data).tofile(self._f)
        self._left -= data.nbytes
        while self._left == 0 and self._i < len(self.plan):
            self._i += 1
            self._left = self.plan[self._i].nbytes if self._i < len(self.plan) else -1

    def close(self) -> None:
        self._f.close()
        if self._i < len(self.plan):
            raise ValueError(f"tensor {self.plan[self._i].name} was not (fully) written")

    def __enter__(self) -> "SafetensorsWriter":
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._f.close()


def write_index(directory: Path, weight_map: dict[str, str], total_size: int) -> None:
    (directory / INDEX_NAME).write_text(
        json.dumps({"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2) + "\n"
    )


def split_into_shards(plan: Iterable[PlannedTensor], max_bytes: int) -> list[list[PlannedTensor]]:
    shards: list[list[PlannedTensor]] = [[]]
    size = 0
    for t in plan:
        if shards[-1] and size + t.nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(t)
        size += t.nbytes
    return shards
