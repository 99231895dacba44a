"""One validation per kind of value, shared by every verb (argparse types).

A bad value ends in argparse's one line and exit code 2 before any work; values that need
the model to judge (a context size against its training context) are checked by the
library where the model is read (``radlite_edge.limits``).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from ..limits import MAX_CHUNK_TOKENS, MAX_COUNT, MAX_RANK, MAX_THREADS


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}: {text!r} is not an integer") from None


def bounded(what: str, lo: int, hi: int) -> Callable[[str], int]:
    """An integer from ``lo`` to ``hi``: the argparse type of one kind of value."""

    def parse(text: str) -> int:
        value = _int(text, what)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} {value}: give {lo} to {hi}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


threads = bounded("threads", 1, MAX_THREADS)
count = bounded("count", 1, MAX_COUNT)  # samples, chunks, windows, repetitions: at least one
few_shot = bounded("examples", 0, 16)
seed = bounded("seed", 0, 2**32 - 1)
rank = bounded("rank", 1, MAX_RANK)
tokens = bounded("tokens", 1, MAX_CHUNK_TOKENS)  # a context, chunk or batch size


def positive(what: str, *, hi: float = 1e9) -> Callable[[str], float]:
    """A finite number above 0 and at most ``hi`` (inf, nan and 0 would run and then mean nothing)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: {text!r} is not a number") from None
        if not math.isfinite(value) or not 0 < value <= hi:
            raise argparse.ArgumentTypeError(f"{what} {text}: give a number above 0, at most {hi:g}")
        return value

    parse.__name__ = what
    return parse


def duration(text: str) -> float:
    """Seconds, as 2, 2s or 500ms: finite, above 0, at most a day."""
    t = text.strip().lower().removesuffix("s")
    try:
        value = float(t[:-1]) / 1000 if t.endswith("m") else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 2s, 500ms)") from None
    if not math.isfinite(value) or not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration above 0 and at most a day (e.g. 2s, 500ms)")
    return value


alpha = positive("alpha", hi=1e6)  # a LoRA alpha: scale = alpha / r
tok_s = positive("tok/s", hi=1e6)


def task_list(text: str) -> str:
    if not text.strip().strip(","):
        raise argparse.ArgumentTypeError("an empty task list: give task names, or all")
    return text


def names_from(allowed: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of names out of ``allowed`` (lower-cased)."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(x.strip().lower() for x in text.split(",") if x.strip())
        if not names or any(x not in allowed for x in names):
            raise argparse.ArgumentTypeError(f"{text!r}: give {what} from {', '.join(allowed)}")
        return names

    return parse


def split_list(text: str) -> str:
    from ..tasks.samples import SPLITS

    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in SPLITS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: give splits from {', '.join(SPLITS)}")
    return ",".join(names)


def level_list(text: str) -> tuple[str, ...]:
    """Comma-separated quantization levels, each checked against the levels table."""
    from ..errors import UserError
    from ..levels import get_level

    try:
        names = tuple(get_level(x).name for x in text.split(",") if x.strip())
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not names:
        raise argparse.ArgumentTypeError("an empty level list: give levels, e.g. f16,q8_0,q4_k_m")
    return names
