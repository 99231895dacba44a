"""Opening a GGUF file: refused in one clear line when it is not one, is cut short, or is
not a model. Every reader of GGUF files in the toolkit starts here."""

from __future__ import annotations

from pathlib import Path

import gguf

from .errors import UserError


def open_reader(path: Path) -> gguf.GGUFReader:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: a folder, not a GGUF file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise UserError(f"{path}: not a GGUF file (magic {magic!r})")
    try:
        return gguf.GGUFReader(path)
    except (ValueError, IndexError, KeyError, OSError) as e:
        raise UserError(f"{path}: corrupt or truncated GGUF ({e})") from None


def open_complete(path: Path) -> gguf.GGUFReader:
    """``open_reader``, and a truncated file (tensor data past its end) is refused too."""
    reader = open_reader(path)
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    size = Path(path).stat().st_size
    if end > size:
        raise UserError(f"{path}: truncated GGUF (tensor data ends at {end}, file has {size} bytes)")
    return reader


def open_model(path: Path) -> gguf.GGUFReader:
    """``open_complete``, and a GGUF that is not a model (an imatrix, a LoRA adapter) is refused."""
    reader = open_complete(path)
    kind = reader.fields.get(gguf.Keys.General.TYPE)
    if kind is not None and kind.contents() != gguf.GGUFType.MODEL:
        raise UserError(f"{path}: a GGUF of type {kind.contents()!r}, not a model")
    return reader


def gguf_type(path: Path) -> str:
    """A GGUF's ``general.type``: "model" (also when unstated, as in older files), "imatrix", "adapter"."""
    return gguf_type_and_arch(path)[0]


def gguf_type_and_arch(path: Path) -> tuple[str, str | None]:
    """``general.type`` (as ``gguf_type``) and ``general.architecture`` (None where unstated)."""
    fields = open_complete(path).fields
    kind, arch = fields.get(gguf.Keys.General.TYPE), fields.get(gguf.Keys.General.ARCHITECTURE)
    return (str(kind.contents()) if kind is not None else gguf.GGUFType.MODEL,
            str(arch.contents()) if arch is not None else None)
