"""The quantization levels: one table, the only place a level is described (DESIGN.md).

``maker`` says which code can produce the level: ``gguf`` levels are written straight
from a checkpoint by ``radlite convert`` (the gguf library's quantizers, or our C
kernels that equal them byte for byte); every level can be made by llama.cpp's own
quantizer from an F16/BF16 GGUF (``radlite quantize``). ``tensor_type`` is the GGML
type that ``radlite convert`` gives 2-D weights; 1-D tensors always stay F32.
"""

from __future__ import annotations

from dataclasses import dataclass

from gguf import GGMLQuantizationType as QT
from gguf import LlamaFileType as FT

from .errors import UserError


@dataclass(frozen=True)
class Level:
    name: str  # as users type it, upper case (Q4_K_M)
    ftype: FT  # llama.cpp's file type
    maker: str  # "gguf" (convert can write it) or "llama.cpp" (quantizer only)
    needs_imatrix: bool
    tensor_type: QT | None  # the 2-D weight type when convert writes it


LEVELS: tuple[Level, ...] = (
    Level("F32", FT.ALL_F32, "gguf", False, QT.F32),
    Level("F16", FT.MOSTLY_F16, "gguf", False, QT.F16),
    Level("BF16", FT.MOSTLY_BF16, "gguf", False, QT.BF16),
    Level("Q8_0", FT.MOSTLY_Q8_0, "gguf", False, QT.Q8_0),
    Level("Q6_K", FT.MOSTLY_Q6_K, "llama.cpp", False, None),
    Level("Q5_K_M", FT.MOSTLY_Q5_K_M, "llama.cpp", False, None),
    Level("Q5_1", FT.MOSTLY_Q5_1, "gguf", False, QT.Q5_1),
    Level("Q5_0", FT.MOSTLY_Q5_0, "gguf", False, QT.Q5_0),
    Level("Q4_K_M", FT.MOSTLY_Q4_K_M, "llama.cpp", False, None),
    Level("Q4_K_S", FT.MOSTLY_Q4_K_S, "llama.cpp", False, None),
    Level("Q4_1", FT.MOSTLY_Q4_1, "gguf", False, QT.Q4_1),
    Level("Q4_0", FT.MOSTLY_Q4_0, "gguf", False, QT.Q4_0),
    Level("IQ4_XS", FT.MOSTLY_IQ4_XS, "llama.cpp", False, None),
    Level("Q3_K_M", FT.MOSTLY_Q3_K_M, "llama.cpp", False, None),
    Level("Q3_K_S", FT.MOSTLY_Q3_K_S, "llama.cpp", False, None),
    Level("Q2_K", FT.MOSTLY_Q2_K, "llama.cpp", False, None),
    Level("IQ3_XXS", FT.MOSTLY_IQ3_XXS, "llama.cpp", True, None),
    Level("IQ2_XS", FT.MOSTLY_IQ2_XS, "llama.cpp", True, None),
)

_BY_NAME = {level.name: level for level in LEVELS}


def get_level(name: str) -> Level:
    """Look a level up by name, case-insensitively; a typo gets the list of names."""
    key = name.strip().upper()
    if key not in _BY_NAME:
        known = ", ".join(level.name.lower() for level in LEVELS)
        raise UserError(f"unknown quantization level {name!r}: choose one of {known}")
    return _BY_NAME[key]


def level_for_ftype(ftype: int) -> Level | None:
    """The level whose llama.cpp file type (``general.file_type``) is ``ftype``, if it is in the table."""
    return next((level for level in LEVELS if int(level.ftype) == int(ftype)), None)


def convert_levels() -> tuple[Level, ...]:
    """The levels ``radlite convert --outtype`` can write from a checkpoint."""
    return tuple(level for level in LEVELS if level.maker == "gguf")
