"""What a model file is: the one identity that accuracy, fidelity and speed records share.

Every record of a measurement carries the ``ModelId`` of the file it measured, so results
of one file made by different verbs (eval, fidelity, bench) join on ``digest``, and two
different files that happen to share a name never do. The digest is the file's sha256 up
to ``manifest.HASH_LIMIT`` bytes; above it (multi-GB weights, where hashing would cost
more than many measurements) it is the size, the modification time and the sha256 of the
first megabyte (the header and metadata), as make-style tools identify large inputs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import gguf

from .errors import UserError
from .fileio import resolve, sha256_file
from .gguf_file import open_model
from .levels import LEVELS, Level, get_level, level_for_ftype
from .manifest import HASH_LIMIT

_HEAD_BYTES = 1 << 20
_LEVEL_SUFFIX = re.compile(r"^(.*?)[-._]([A-Za-z0-9_]+)$")


@dataclass(frozen=True)
class ModelId:
    name: str  # general.name, else the file name less its level
    level: str  # the levels table's name for the file type (Q4_K_M), else the file name's suffix, else "?"
    arch: str  # general.architecture
    bytes: int
    digest: str  # "sha256:…" of the whole file, or "head:…" for files above HASH_LIMIT
    path: str  # where it was measured (for people; joins use the digest)
    n_ctx_train: int | None = None  # the context it was trained on ({arch}.context_length)

    @property
    def label(self) -> str:
        return f"{self.name} {self.level}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelId":
        return cls(**data)


def level_from_file_name(path: Path) -> Level | None:
    """The level a file name ends in (``qwen2.5-3b-Q4_K_M.gguf`` -> Q4_K_M), if any."""
    stem = Path(path).name.removesuffix(".gguf").upper()
    return next((lv for lv in sorted(LEVELS, key=lambda lv: -len(lv.name)) if stem.endswith(lv.name)), None)


def name_from_file(path: Path) -> str:
    """The file name without its level suffix: ``qwen2.5-3b-F16.gguf`` -> ``qwen2.5-3b``."""
    stem = Path(path).name.removesuffix(".gguf")
    m = _LEVEL_SUFFIX.match(stem)
    if m:
        try:
            get_level(m.group(2))
            return m.group(1)
        except UserError:
            pass
    return stem


def file_digest(path: Path) -> str:
    st = Path(path).stat()
    if st.st_size <= HASH_LIMIT:
        return "sha256:" + sha256_file(path)
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(_HEAD_BYTES)).hexdigest()
    return f"head:{head}:{st.st_size}:{st.st_mtime_ns}"


def digest_mtime_ns(digest: str) -> int | None:
    """The mtime a ``head:`` digest (of :func:`file_digest`) recorded; None for a content digest."""
    if not digest.startswith("head:"):
        return None
    return int(digest.rsplit(":", 1)[1])


def identify_model(path: Path) -> ModelId:
    """The identity of a model GGUF; a file that is not one is refused in one line."""
    path = resolve(path, what="model")
    if path.is_dir():
        raise UserError(f"{path}: a folder, not a model file")
    if not path.is_file():
        raise UserError(f"{path}: no such model file")
    st = path.stat()
    return _identify(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=256)  # keyed on size and mtime too: a file replaced in place is identified again
def _identify(path: str, size: int, mtime_ns: int) -> ModelId:
    reader = open_model(Path(path))

    def field(key: str) -> object:
        f = reader.fields.get(key)
        return f.contents() if f is not None else None

    ftype = field(gguf.Keys.General.FILE_TYPE)
    level = level_for_ftype(int(ftype)) if ftype is not None else None
    level = level or level_from_file_name(Path(path))
    name = str(field(gguf.Keys.General.NAME) or "") or name_from_file(Path(path))
    arch = str(field(gguf.Keys.General.ARCHITECTURE))
    n_ctx_train = field(gguf.Keys.LLM.CONTEXT_LENGTH.format(arch=arch))
    return ModelId(name=name, level=level.name if level else "?", arch=arch, bytes=size,
                   digest=file_digest(Path(path)), path=path, n_ctx_train=int(n_ctx_train) if n_ctx_train else None)
