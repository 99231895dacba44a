"""The JSON manifest beside every output: what went in, how, with what tools, how long.

A step whose manifest matches its inputs and parameters is skipped (DESIGN.md), so a
long pipeline resumes after a crash. Small inputs (configs, tokenizers) are identified
by sha256; multi-GB weight files by size and modification time, as make does, so that
checking costs nothing next to the step itself.
"""

from __future__ import annotations

import json
import time
from importlib import metadata
from pathlib import Path
from typing import Iterable

from .fileio import atomic_path, sha256_file

HASH_LIMIT = 64 << 20  # files up to this size are identified by content


def manifest_path(output: Path) -> Path:
    return output.with_name(output.name + ".manifest.json")


def output_bytes(output: Path) -> int:
    """A file's size, or the summed size of the files of an output folder (a checkpoint)."""
    if output.is_dir():
        return sum(p.stat().st_size for p in sorted(output.rglob("*")) if p.is_file())
    return output.stat().st_size


def folder_files(*folders: Path) -> list[Path]:
    """The files directly in these folders: the inputs of a step that reads checkpoints or adapters."""
    return [p for d in folders for p in sorted(Path(d).iterdir()) if p.is_file()]


def identify(paths: Iterable[Path]) -> list[dict[str, object]]:
    out = []
    for p in sorted(Path(x) for x in paths):
        st = p.stat()
        entry: dict[str, object] = {"file": p.name, "bytes": st.st_size}
        if st.st_size <= HASH_LIMIT:
            entry["sha256"] = sha256_file(p)
        else:
            entry["mtime_ns"] = st.st_mtime_ns
        out.append(entry)
    return out


def _tools() -> dict[str, str | None]:
    versions = {}
    for dist in ("radlite-edge", "gguf", "numpy", "llama-cpp-python"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def load(output: Path) -> dict | None:
    try:
        return json.loads(manifest_path(output).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_up_to_date(output: Path, *, step: str, inputs: list[dict], params: dict) -> bool:
    m = load(output)
    if m is None or not output.exists():
        return False
    return (m.get("step") == step and m.get("inputs") == inputs and m.get("params") == params
            and m.get("output", {}).get("bytes") == output_bytes(output))


def write(output: Path, *, step: str, inputs: list[dict], params: dict, seconds: float, result: dict) -> None:
    record = {
        "step": step, "inputs": inputs, "params": params, "tools": _tools(),
        "output": {"file": output.name, "bytes": output_bytes(output)}, "seconds": round(seconds, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "result": result,
    }
    with atomic_path(manifest_path(output)) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
