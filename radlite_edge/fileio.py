"""Atomic outputs: a half-written file never carries its final name (DESIGN.md)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import UserError


def _default_mode(directory: bool) -> int:
    # mkstemp/mkdtemp create owner-only entries; outputs get the usual umask-based mode
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def check_writable_dir(directory: Path, *, what: str = "output") -> None:
    """Fail early, before hours of work, if ``directory`` cannot take a new file."""
    if not directory.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the {what} directory {directory}: {e.strerror}") from None
    if not directory.is_dir():
        raise UserError(f"{what} location {directory} is not a directory")
    # A real probe, not os.access: root passes permission checks but not a read-only
    # or virtual file system.
    try:
        fd, probe = tempfile.mkstemp(prefix=".radlite-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{what} directory {directory} is not writable ({e.strerror}): choose another path with -o") from None


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    On any exception the temporary file is removed, so a failed or interrupted run
    leaves neither a partial file nor a stray temporary one.
    """
    final = Path(final)
    check_writable_dir(final.parent if str(final.parent) else Path("."))
    if final.is_dir():
        raise UserError(f"output path {final} is a directory: give a file name")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _default_mode(False))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory of files (an HF checkpoint)."""
    final = Path(final)
    check_writable_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    os.chmod(tmp, _default_mode(True))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: Path, *, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
