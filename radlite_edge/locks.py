"""One writer per output: a second run into the same output is refused in one line instead of
doing all the work and mixing its output with the first's (DESIGN.md)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterator

from .errors import UserError


def hold(path: Path) -> int | None:
    """A lock on a half-written file or folder while its run is alive (released by the kernel when
    the process dies, however it dies): how the next run tells a live one's from a dead one's."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


@contextlib.contextmanager
def output_lock(final: Path, *, what: str, wait: bool = False) -> Iterator[None]:
    """Hold ``final`` (a file or a folder) for one run; a second run that takes the same lock is refused
    (``wait``: it waits, for an output that runs share and each holds for an instant).

    The lock is a ``.NAME.lock`` file beside the output, removed when the run ends; a run killed
    outright leaves it unlocked, and the next run takes it over.
    """
    from .fileio import make_dir, remove_if_empty, shown

    final = Path(final)
    made = make_dir(final.parent if str(final.parent) else Path("."))
    lock = final.with_name(f".{final.name}.lock")
    try:
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UserError(f"{shown(final)}: another {what} is writing it now; wait for it to finish or "
                                "choose another output") from None
            # the run before may have removed the file between our open and our lock: lock the new one
            try:
                if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
    except BaseException:
        remove_if_empty(made)
        raise
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)
        remove_if_empty(made)


@contextlib.contextmanager
def locked_append(path: Path, *, what: str) -> Iterator:
    """``path`` open for appending, locked for the block; a second writer is refused in one line.

    Two runs appending to one file would both do all the work and interleave their records.
    A file this call created and nothing was written to is removed again (no debris).
    """
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
