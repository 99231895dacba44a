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
    """Fail early, before hours of work, if ``directory`` cannot take a new file.

    Nothing is created: a folder that does not exist yet is judged by its nearest existing
    parent, and made only when there is something to write (``make_dir``).
    """
    directory = Path(directory)
    existing = next((d for d in (directory, *directory.parents) if d.exists()), Path("."))
    if not existing.is_dir():
        raise UserError(f"{what} location {existing} is not a directory")
    # A real probe, not os.access: root passes permission checks but not a read-only
    # or virtual file system.
    try:
        fd, probe = tempfile.mkstemp(prefix=".radlite-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        where = directory if existing == directory else f"{directory} (in {existing})"
        raise UserError(f"{what} directory {where} is not writable ({e.strerror}): choose another path") from None


def check_output_file(path: Path, *, flag: str) -> Path:
    """A file a verb will write or append to, checked before any work: named, not a folder, writable."""
    if not str(path).strip():
        raise UserError(f"{flag}: an empty path: give a file name")
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name")
    check_writable_dir(path.parent if str(path.parent) else Path("."))
    return path


def make_dir(directory: Path, *, what: str = "output") -> list[Path]:
    """Create ``directory`` after ``check_writable_dir``; the folders made (outermost first)."""
    check_writable_dir(directory, what=what)
    made = [d for d in (directory, *directory.parents) if not d.exists()][::-1]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the {what} directory {directory}: {e.strerror}") from None
    return made


def remove_if_empty(folders: list[Path]) -> None:
    """Undo ``make_dir``'s folders after a failed run, innermost first, if nothing is in them."""
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def output_dir(directory: Path, *, what: str = "output") -> Iterator[Path]:
    """A writable output folder for the block; if the block fails, folders it created and left empty go."""
    made = make_dir(Path(directory), what=what)
    try:
        yield Path(directory)
    except BaseException:
        remove_if_empty(made)
        raise


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    On any exception the temporary file is removed, so a failed or interrupted run
    leaves neither a partial file nor a stray temporary one.
    """
    final = Path(final)
    if final.is_dir():
        raise UserError(f"output path {final} is a directory: give a file name")
    made = make_dir(final.parent if str(final.parent) else Path("."))
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _default_mode(False))
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_if_empty(made)
        raise


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory of files (an HF checkpoint)."""
    final = Path(final)
    made = make_dir(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    os.chmod(tmp, _default_mode(True))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(made)
        raise


def sha256_file(path: Path, *, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def locked_append(path: Path, *, what: str) -> Iterator:
    """``path`` open for appending, locked for the block; a second writer is refused in one line.

    Two runs appending to one file would both do all the work and interleave their records.
    A file this call created and nothing was written to is removed again (no debris).
    """
    import fcntl

    existed = path.exists()
    f = open(path, "a", encoding="utf-8")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{path}: another {what} is writing it now; wait for it to finish or choose "
                            "another output") from None
        yield f
    finally:
        f.close()
        if not existed and path.is_file() and path.stat().st_size == 0:
            path.unlink()


def drop_partial_line(path: Path) -> int:
    """Cut a last line that a kill left without its newline; the bytes dropped (0 if none).

    Appending after such a line would glue the next record onto it and lose both.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        data = f.seek(0) or f.read()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        return len(data) - keep


def refuse_overwrite(output: Path, inputs: list[Path], *, flag: str = "-o") -> None:
    """An output that is one of the inputs, or lies inside an input folder, would destroy it."""
    out = Path(output).resolve()
    for source in inputs:
        src = Path(source).resolve()
        if out == src or (src.is_dir() and src in out.parents):
            raise UserError(f"{flag} {output} would overwrite the input {source}: choose another path")
