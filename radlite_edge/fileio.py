"""Outputs: where a verb may write, and how, so that nothing already there is lost (DESIGN.md).

One policy for every verb that writes (``claim_output``): an output that is an input, lies
inside an input folder or holds an input is refused; an existing file or folder is replaced
only when this step made it (its manifest says so, or it is in the step's own format); any
other case is one line naming the path. A half-written output never carries its final name
(``atomic_path``, ``atomic_dir``), a second writer of the same output is refused
(``locks.output_lock``), and what a killed run left half-written is swept on the next run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import UserError
from .locks import hold, locked_append, release  # noqa: F401 (locked_append: finetune imports it from here)

# What an output is, for the policy: a file written whole; a folder written whole (an HF
# checkpoint, an adapter); a folder that named files are written into (a ladder, a results folder).
FILE, FOLDER, INTO = "file", "folder", "into"
PART = ".part"  # the suffix of everything half-written (a file, a folder, a folder moved aside)


def _default_mode(directory: bool) -> int:
    # mkstemp/mkdtemp create owner-only entries; outputs get the usual umask-based mode
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


# ------------------------------------------------------------------ paths


def shown(path: Path | str) -> str:
    """A path as a one-line message can show it, bytes that are not UTF-8 as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_text(value: str, *, what: str) -> str:
    """A command-line value (a path, a report) is UTF-8: a file name in another encoding would
    fail deep inside a step, where it is written into a file or a message."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{what} {shown(value)}: not UTF-8 (a file name in another encoding?): rename the file, "
                        "or give the text in UTF-8") from None
    return value


def check_link(path: Path | str, *, what: str) -> None:
    """A symbolic link that loops back on itself is refused in one line (following it fails everywhere)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{what} {shown(path)}: a symbolic link that loops back on itself: give the real "
                            "path, or remove the link") from None


def resolve(path: Path | str, *, what: str = "path") -> Path:
    """``path`` made absolute with its links followed; a link loop is one line, not a RuntimeError."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError):
        raise UserError(f"{what} {shown(path)}: a symbolic link that loops back on itself: give the real path, "
                        "or remove the link") from None


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


# ------------------------------------------------------------------ the output policy


def made_by(path: Path, step: str) -> bool:
    """The manifest beside ``path`` says ``step`` made it."""
    from . import manifest

    record = manifest.load(path)
    return isinstance(record, dict) and record.get("step") == step


def first_record(path: Path) -> object:
    """The first non-empty line of a JSONL file, parsed (None if there is none or it is not JSON);
    what a recognizer of a step's own JSONL output looks at."""
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    return json.loads(line)
    except (OSError, ValueError):
        return None
    return None


def json_object(path: Path, *, limit: int = 64 << 20) -> dict | None:
    """A JSON file's top-level object (None if it is not one, or too big to be ours)."""
    try:
        if path.stat().st_size > limit:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def records_with(*keys: str) -> Callable[[Path], bool]:
    """A recognizer of a JSONL output whose records carry ``keys`` (an empty file counts: nothing to lose)."""

    def owned(path: Path) -> bool:
        if path.is_file() and path.stat().st_size == 0:
            return True
        record = first_record(path)
        return isinstance(record, dict) and all(k in record for k in keys)

    return owned


def _is_own(path: Path, step: str | None, owned: Callable[[Path], bool] | None) -> bool:
    return (step is not None and made_by(path, step)) or (owned is not None and owned(path))


def _maker(step: str | None) -> str:
    return f"radlite {step}" if step else "this step"


def _overlap(output: Path, out: Path, source: Path, *, flag: str, kind: str) -> None:
    src = resolve(source, what="input")
    same = out == src or (out.exists() and src.exists() and os.path.samefile(out, src))
    if same:
        raise UserError(f"{flag} {shown(output)} would overwrite the input {shown(source)}: choose another path")
    if src in out.parents:
        raise UserError(f"{flag} {shown(output)} lies inside the input {'folder ' * src.is_dir()}{shown(source)}: "
                        "writing there would overwrite the input; choose a path outside it")
    if kind != FILE and out in src.parents:
        raise UserError(f"{flag} {shown(output)} holds the input {shown(source)}: writing there would overwrite "
                        "the input; choose a folder that does not contain it")


def _check_existing(output: Path, *, flag: str, kind: str, step: str | None,
                    owned: Callable[[Path], bool] | None) -> None:
    what = _maker(step)
    if kind == INTO:
        if output.exists() and not output.is_dir():
            raise UserError(f"{flag} {shown(output)} is a file, not a directory: give a folder to write into")
        return
    if kind == FILE:
        if output.is_dir():
            raise UserError(f"{flag} {shown(output)} is a folder: give a file name")
        if output.exists() and not output.is_file():
            raise UserError(f"{flag} {shown(output)} is not a regular file (a device or a pipe): give a file name")
        if output.is_file() and not _is_own(output, step, owned):
            raise UserError(f"{flag} {shown(output)} exists and is not an earlier output of {what}: "
                            "choose another name, or move it away first")
        return
    if output.exists() and not output.is_dir():
        raise UserError(f"{flag} {shown(output)} is a file: give a folder name")
    if output.is_dir() and any(output.iterdir()) and not _is_own(output, step, owned):
        raise UserError(f"{flag} {shown(output)} is a folder with other files in it, not made by {what}: "
                        "choose a new or empty folder")


def claim_output(output: Path | str, inputs: Iterable[Path | str] = (), *, step: str | None, kind: str = FILE,
                 flag: str = "-o", owned: Callable[[Path], bool] | None = None) -> Path:
    """Check ``output`` against the policy before any work; returns it as a ``Path``.

    ``step`` names the verb that makes the output, as its manifest names it; ``owned``
    recognizes the step's own earlier output where there is no manifest (a routes file, a JSONL
    of answers). Leftovers of a killed earlier run of the output are removed.
    """
    text = str(output)
    if not text.strip():
        raise UserError(f"{flag}: an empty path: give a {'folder' if kind != FILE else 'file'} name")
    check_text(text, what=flag)
    output = Path(output)
    if kind != INTO and output.name in ("", ".", ".."):
        raise UserError(f"{flag} {shown(output)}: give a {'file' if kind == FILE else 'folder'} name of its own, "
                        "not a folder that is already there")
    out = resolve(output, what=flag)
    for source in inputs:
        _overlap(output, out, Path(source), flag=flag, kind=kind)
    _check_existing(output, flag=flag, kind=kind, step=step, owned=owned)
    if kind == INTO:
        check_writable_dir(output)
    else:
        check_writable_dir(output.parent if str(output.parent) else Path("."))
        clean_stale_parts(output)
    return output


def refuse_overwrite(output: Path, inputs: list[Path], *, flag: str = "-o") -> None:
    """The policy's input check alone: ``output`` is not an input and does not lie in an input folder."""
    out = resolve(output, what=flag)
    for source in inputs:
        _overlap(Path(output), out, Path(source), flag=flag, kind=FILE)


# ------------------------------------------------------------------ half-written outputs


def _parts(final: Path) -> list[Path]:
    # tempfile's names: the prefix, eight random characters, the suffix; "model" must not match
    # what "model.gguf" left
    pattern = re.compile(rf"\.{re.escape(final.name)}\.[a-z0-9_]{{8}}(\.old|\.scratch)?{re.escape(PART)}")
    try:
        return [p for p in final.parent.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return []


def clean_stale_parts(final: Path) -> list[Path]:
    """Remove what killed runs left half-written for ``final`` (``.NAME.*.part``); those a live run
    holds stay. Returns what was removed."""
    removed = []
    for part in _parts(Path(final)):
        fd = hold(part)
        if fd is None:
            continue
        try:
            if part.is_dir() and not part.is_symlink():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)
            removed.append(part)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def atomic_path(final: Path, *, step: str | None = None,
                owned: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` on success.

    On any exception the temporary file is removed, so a failed or interrupted run
    leaves neither a partial file nor a stray temporary one. With ``step`` or ``owned``, an
    existing ``final`` that is not the step's own is kept and the run refused (see ``claim_output``).
    """
    final = Path(final)
    if final.is_dir():
        raise UserError(f"output path {shown(final)} is a directory: give a file name")
    made = make_dir(final.parent if str(final.parent) else Path("."))
    clean_stale_parts(final)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=PART, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, _default_mode(False))
    held = hold(tmp)
    try:
        yield tmp
        if (step is not None or owned is not None) and final.exists():
            _check_existing(final, flag="output", kind=FILE, step=step, owned=owned)
        if final.exists() and not final.is_file():
            raise UserError(f"output path {shown(final)} is not a regular file: give a file name")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_if_empty(made)
        raise
    finally:
        release(held)


def _replaceable(final: Path, new: Path, step: str | None, owned: Callable[[Path], bool] | None) -> bool:
    names = {p.name for p in final.iterdir()}
    if not names or _is_own(final, step, owned):
        return True
    # a caller that names no step: only a folder whose every file the new one writes again
    return step is None and owned is None and names <= {p.name for p in new.iterdir()}


def _swap_in(tmp: Path, final: Path, step: str | None, owned: Callable[[Path], bool] | None) -> None:
    """Put the finished folder ``tmp`` in ``final``'s place; an old ``final`` goes only when it is this
    step's own, and is moved aside under a ``.part`` name first, so a kill at any point leaves
    either folder whole and nothing the next run does not sweep."""
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise UserError(f"output {shown(final)} is a file: give a folder name")
    if final.exists() and not _replaceable(final, tmp, step, owned):
        raise UserError(f"output {shown(final)} is a folder with other files in it, not made by "
                        f"{_maker(step)}: choose a new or empty folder")
    if step is not None:
        _mark(final, step)
    if not final.exists():
        os.replace(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old" + PART, dir=final.parent))
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _mark(final: Path, step: str) -> None:
    """A manifest saying ``step`` makes ``final``, before the folder takes its name: a kill between
    the rename and the full manifest still leaves a folder the next run knows as its own."""
    from . import manifest

    if not made_by(final, step):
        path = manifest.manifest_path(final)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"step": step, "output": {"file": final.name}}, indent=2) + "\n")


@contextlib.contextmanager
def atomic_dir(final: Path, *, step: str | None = None,
               owned: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory of files (an HF checkpoint).

    An existing ``final`` is replaced only when it is the step's own: its manifest names ``step``,
    ``owned`` recognizes it, or (for a caller that names neither) the new folder writes every
    file it holds. Anything else is refused and left as it was.
    """
    final = Path(final)
    if not final.name or final.name in (".", ".."):
        raise UserError(f"output {shown(final)}: give a folder name of its own")
    made = make_dir(final.parent if str(final.parent) else Path("."))
    clean_stale_parts(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=PART, dir=final.parent))
    os.chmod(tmp, _default_mode(True))
    held = hold(tmp)
    try:
        yield tmp
        _swap_in(tmp, final, step, owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        remove_if_empty(made)
        raise
    finally:
        release(held)


@contextlib.contextmanager
def scratch_dir(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final`` for a step's intermediate files (GBs: not /tmp), named
    so that the next run of the same output sweeps it if this run is killed."""
    final = Path(final)
    made = make_dir(final.parent if str(final.parent) else Path("."))
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".scratch" + PART, dir=final.parent))
    held = hold(tmp)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        release(held)
        remove_if_empty(made)


def sha256_file(path: Path, *, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
