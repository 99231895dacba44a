"""llama.cpp's own converter, run side by side with ours (tests and benchmarks).

llama.cpp's ``convert_hf_to_gguf.py`` ships in the llama-cpp-python source
distribution (the same llama.cpp the runtime is built from); ``make llama-cpp-src``
unpacks it under ``build/llama-cpp-src``. Its tokenizer check recognises published
tokenizers by a hash of their output, so for our synthetic tokenizer it is told the
pre-tokenizer name (qwen2), which is what that hash would have selected; nothing else
in its conversion is touched.

    python -m radlite_edge.bench.llama_cpp_ref CHECKPOINT --outfile OUT.gguf --outtype f16
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "RADLITE_LLAMA_CPP_SRC"
DEFAULT = Path("build/llama-cpp-src")


def find_source() -> Path | None:
    """The llama.cpp source tree holding convert_hf_to_gguf.py, if one is at hand."""
    for candidate in (os.environ.get(ENV), DEFAULT, Path(__file__).resolve().parents[1] / DEFAULT):
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
    for candidate in (os.environ.get(TOOLS_ENV), TOOLS_DEFAULT, Path(__file__).resolve().parents[1] / TOOLS_DEFAULT):
        if candidate and (Path(candidate) / name).is_file():
            return (Path(candidate) / name).resolve()
    return None


def command(checkpoint: Path, outfile: Path, outtype: str) -> list[str]:
    return [sys.executable, "-m", "radlite_edge.bench.llama_cpp_ref", str(checkpoint), "--outfile", str(outfile),
            "--outtype", outtype]


def main() -> int:
    src = find_source()
    if src is None:
        print(f"llama.cpp source not found: run `make llama-cpp-src` or set {ENV}", file=sys.stderr)
        return 2
    sys.path[:0] = [str(src), str(src / "gguf-py")]
    import conversion.base as base  # llama.cpp's converter package
    import convert_hf_to_gguf

    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "qwen2"
    return convert_hf_to_gguf.main() or 0


if __name__ == "__main__":
    sys.exit(main())
