"""Carry a long ``radlite tradeoff`` sweep across machines: what to commit, and how to go on.

The sweep on the fine-tuned default needs more hours than one working session, and a session's
``runs/`` folder does not outlive it. Two facts make a committed sweep hard to resume:

- the importance matrix is not reproducible across hosts (its sums of squares come from
  llama.cpp's matmuls, whose SIMD path differs between CPUs), so a ladder quantized with a
  recomputed matrix is other bytes; quantizing with the *same* matrix is reproducible;
- a cell is keyed on its file's identity, which for files above ``manifest.HASH_LIMIT`` is the
  header's digest, the size and the mtime (as make does): a fresh file has a new mtime, and two
  levels quantized with different matrices can share header and size.

So ``save`` copies the run's cells and importance matrices into the docs folder with the
sha256 of every file they were measured on, and ``restore`` goes the other way: it checks the
F16 by sha256 and gives it its recorded mtime, puts the matrices and cells into the run (the
sweep then quantizes the same ladder from them), and once the ladder exists (``--ladder``, after
``radlite tradeoff ... --report-only``) gives each file the mtime its cells recorded, only where
the file's sha256 is the one recorded: a file with other bytes keeps its own mtime and is
measured anew, never matched to another file's cells.

    python -m benchmarks.tradeoff_resume save RUN DOCS --f16 models/smollm2-135m-radlite-F16.gguf
    python -m benchmarks.tradeoff_resume restore RUN DOCS --f16 models/smollm2-135m-radlite-F16.gguf
    radlite tradeoff models/smollm2-135m-radlite-F16.gguf -o RUN ... --report-only
    python -m benchmarks.tradeoff_resume restore RUN DOCS --f16 ... --ladder
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from radlite_edge.bench.tradeoff import read_cells
from radlite_edge.fileio import atomic_path, sha256_file
from radlite_edge.gguf_file import gguf_type
from radlite_edge.identity import digest_mtime_ns

SUMS = "SHA256SUMS"
CELLS = "cells.jsonl"
F16_NAME = "models/{name}"  # how the F16 is named in SHA256SUMS


def _read_sums(docs: Path) -> dict[str, str]:
    sums = {}
    for line in (docs / SUMS).read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            sums[name.strip()] = digest
    return sums


def _ladder_name(path: Path, run: Path) -> str:
    return path.resolve().relative_to(run.resolve()).as_posix()


def _recorded_mtimes(cells_path: Path) -> dict[str, int]:
    """The mtime each measured file had, by its path's tail (``ladder/<kind>/<file>`` or the F16's
    name), from the ``file`` cells' keys (the files' ``head:`` digests)."""
    out = {}
    for c in read_cells(cells_path):  # in file order: a later record of a path wins
        mid = c.model_id or {}
        mtime = digest_mtime_ns(c.key) if c.cell == "file" else None
        if mtime is None or not mid.get("path"):
            continue
        path = Path(mid["path"])
        tail = "/".join(path.parts[-3:]) if "ladder" in path.parts else path.name
        out[tail] = mtime
    return out


def save(run: Path, docs: Path, f16: Path) -> None:
    docs.mkdir(parents=True, exist_ok=True)
    lines = [f"{sha256_file(f16)}  {F16_NAME.format(name=f16.name)}"]
    for kind_dir in sorted((run / "ladder").iterdir()):
        for p in sorted(kind_dir.glob("*.gguf")):
            lines.append(f"{sha256_file(p)}  {_ladder_name(p, run)}")
            if gguf_type(p) == "imatrix":
                dest = docs / "imatrix" / kind_dir.name
                dest.mkdir(parents=True, exist_ok=True)
                for src in (p, p.with_name(p.name + ".manifest.json")):
                    shutil.copy2(src, dest / src.name)
    with atomic_path(docs / SUMS) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with atomic_path(docs / CELLS) as tmp:
        shutil.copyfile(run / CELLS, tmp)
    print(f"saved {len(lines)} checksums, the importance matrices and "
          f"{sum(1 for _ in open(run / CELLS, encoding='utf-8'))} cells to {docs}")


def restore(run: Path, docs: Path, f16: Path, *, ladder: bool) -> int:
    if missing := [str(docs / n) for n in (SUMS, CELLS) if not (docs / n).is_file()]:
        print(f"{', '.join(missing)}: no saved sweep here (python -m benchmarks.tradeoff_resume save makes one)",
              file=sys.stderr)
        return 2
    sums = _read_sums(docs)
    mtimes = _recorded_mtimes(docs / CELLS)
    if ladder:
        kept = other = 0
        for p in sorted((run / "ladder").glob("*/*.gguf")):
            name = _ladder_name(p, run)
            if gguf_type(p) != "model":
                continue
            tail = "/".join(Path(name).parts[-3:])
            if sums.get(name) == sha256_file(p) and tail in mtimes:
                os.utime(p, ns=(mtimes[tail], mtimes[tail]))
                kept += 1
            else:
                other += 1
                print(f"{name}: not the bytes the saved cells measured; measured anew")
        print(f"{kept} ladder files are the saved ones (their cells are reused), {other} are new")
        return 0
    want = sums.get(F16_NAME.format(name=f16.name))
    if want is None or f16.name not in mtimes or not f16.is_file() or sha256_file(f16) != want:
        print(f"{f16}: not the F16 the saved sweep measured (sha256 differs from {docs / SUMS})", file=sys.stderr)
        return 2
    stamp = mtimes[f16.name]
    os.utime(f16, ns=(stamp, stamp))
    for kind_dir in sorted((docs / "imatrix").iterdir()) if (docs / "imatrix").is_dir() else []:
        dest = run / "ladder" / kind_dir.name
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted(kind_dir.iterdir()):
            shutil.copy2(src, dest / src.name)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / CELLS).exists():
        shutil.copyfile(docs / CELLS, run / CELLS)
    print(f"{f16} has its recorded mtime; importance matrices and cells are in {run}: run the sweep with "
          "--report-only to quantize the ladder, then this command again with --ladder")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("save", "restore"))
    ap.add_argument("run", type=Path)
    ap.add_argument("docs", type=Path)
    ap.add_argument("--f16", type=Path, required=True)
    ap.add_argument("--ladder", action="store_true", help="restore: the ladder has been quantized; match its files")
    a = ap.parse_args(argv)
    if a.action == "save":
        save(a.run, a.docs, a.f16)
        return 0
    return restore(a.run, a.docs, a.f16, ladder=a.ladder)


if __name__ == "__main__":
    sys.exit(main())
