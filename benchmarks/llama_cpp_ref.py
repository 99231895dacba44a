"""llama.cpp's own tools, run side by side with ours (tests and benchmarks).

llama.cpp's ``convert_hf_to_gguf.py`` ships in the llama-cpp-python source
distribution (the same llama.cpp the runtime is built from); ``make llama-cpp-src``
unpacks it under ``build/llama-cpp-src``, and ``make llama-bench`` / ``make
llama-quantize`` build its tools under ``build/llama-bench-build/bin``.

The converter runs in its own process, with PYTHONPATH naming the llama.cpp source and
its gguf-py (``command`` gives the argv and that environment). Its tokenizer check
recognises published tokenizers by a hash of their output, so for our synthetic
tokenizer it is told the pre-tokenizer name (qwen2), which is what that hash would have
selected; nothing else in its conversion is touched.

    python -m benchmarks.llama_cpp_ref CHECKPOINT --outfile OUT.gguf --outtype f16
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV = "RADLITE_LLAMA_CPP_SRC"
DEFAULT = Path("build/llama-cpp-src")
ROOT = Path(__file__).resolve().parents[1]  # the repository, which holds build/ and benchmarks/
_MODULE = "benchmarks.llama_cpp_ref"
_RUNNER = "RADLITE_LLAMA_CPP_RUNNER"  # set in the converter's own process


def find_source() -> Path | None:
    """The llama.cpp source tree holding convert_hf_to_gguf.py, if one is at hand."""
    for candidate in (os.environ.get(ENV), DEFAULT, ROOT / DEFAULT):
        if not candidate:
            continue
        root = Path(candidate)
        for p in (root, root / "vendor/llama.cpp", *sorted(root.glob("*/vendor/llama.cpp"))):
            if (p / "convert_hf_to_gguf.py").is_file():
                return p.resolve()
    return None


TOOLS_ENV = "RADLITE_LLAMA_CPP_BIN"
TOOLS_DEFAULT = Path("build/llama-bench-build/bin")  # make llama-bench / make llama-quantize


def find_tool(name: str) -> Path | None:
    """A llama.cpp tool (llama-quantize, llama-imatrix, ...) built from the same sources, if built."""
    for candidate in (os.environ.get(TOOLS_ENV), TOOLS_DEFAULT, ROOT / TOOLS_DEFAULT):
        if candidate and (Path(candidate) / name).is_file():
            return (Path(candidate) / name).resolve()
    return None


def environment(src: Path) -> dict[str, str]:
    """This process's environment with llama.cpp's converter (and gguf-py) importable.

    The llama.cpp paths come first, as its own scripts expect; this repository after them
    (for ``benchmarks``); PYTHONSAFEPATH keeps the working directory off sys.path."""
    env = dict(os.environ)
    paths = [str(src), str(src / "gguf-py"), str(ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(PYTHONPATH=os.pathsep.join(paths), PYTHONSAFEPATH="1", **{_RUNNER: "1"})
    return env


def command(checkpoint: Path, outfile: Path, outtype: str) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) that run llama.cpp's converter on ``checkpoint``; raises if no source is at hand."""
    src = find_source()
    if src is None:
        raise FileNotFoundError(f"llama.cpp source not found: run `make llama-cpp-src` or set {ENV}")
    argv = [sys.executable, "-m", _MODULE, str(checkpoint), "--outfile", str(outfile), "--outtype", outtype]
    return argv, environment(src)


def _convert() -> int:
    """llama.cpp's converter's main, in a process whose PYTHONPATH names its source."""
    import conversion.base as base  # llama.cpp's converter package
    import convert_hf_to_gguf

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    return convert_hf_to_gguf.main() or 0


def main(argv: list[str] | None = None) -> int:
    if os.environ.get(_RUNNER):
        return _convert()
    src = find_source()
    if src is None:
        print(f"llama.cpp source not found: run `make llama-cpp-src` or set {ENV}", file=sys.stderr)
        return 2
    args = sys.argv[1:] if argv is None else argv
    return subprocess.run([sys.executable, "-m", _MODULE, *args], env=environment(src)).returncode


if __name__ == "__main__":
    sys.exit(main())
