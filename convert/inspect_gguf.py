"""What a GGUF file holds: architecture, metadata, tensors by type, size, bits per weight."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from radlite_edge.gguf_file import open_complete, open_model, open_reader

__all__ = ["GGUFSummary", "open_complete", "open_model", "open_reader", "summarize", "tensor_array"]

_ARRAY_PREVIEW = 4


@dataclass
class GGUFSummary:
    path: Path
    arch: str
    metadata: dict[str, object]
    n_tensors: int
    n_params: int
    file_bytes: int
    by_type: dict[str, dict[str, int]]  # type -> {"tensors", "params", "bytes"}

    @property
    def bits_per_weight(self) -> float:
        tensor_bytes = sum(t["bytes"] for t in self.by_type.values())
        return 8.0 * tensor_bytes / max(self.n_params, 1)

    def to_dict(self) -> dict:
        return {
            "path": str(self.path), "arch": self.arch, "n_tensors": self.n_tensors, "n_params": self.n_params,
            "file_bytes": self.file_bytes, "bits_per_weight": round(self.bits_per_weight, 4),
            "by_type": self.by_type, "metadata": self.metadata,
        }


def _value(field: gguf.ReaderField) -> object:
    if not field.types:
        return None
    if field.types[0] == gguf.GGUFValueType.ARRAY:
        n = len(field.data)
        items = [field.contents(i) for i in range(min(n, _ARRAY_PREVIEW))]
        return {"array_length": n, "first": items}
    return field.contents()


def summarize(path: Path) -> GGUFSummary:
    reader = open_complete(path)
    metadata = {name: _value(f) for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"tensors": 0, "params": 0, "bytes": 0})
    n_params = 0
    for t in reader.tensors:
        row = by_type[t.tensor_type.name]
        row["tensors"] += 1
        row["params"] += int(t.n_elements)
        row["bytes"] += int(t.n_bytes)
        n_params += int(t.n_elements)
    return GGUFSummary(
        path=Path(path), arch=str(metadata.get("general.architecture", "?")), metadata=metadata,
        n_tensors=len(reader.tensors), n_params=n_params, file_bytes=Path(path).stat().st_size, by_type=dict(by_type),
    )


def tensor_array(reader: gguf.GGUFReader, name: str) -> np.ndarray:
    """A tensor's float32 values (dequantized with the gguf library)."""
    for t in reader.tensors:
        if t.name == name:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
            return np.asarray(data, dtype=np.float32).reshape(tuple(reversed([int(d) for d in t.shape])))
    raise KeyError(name)
