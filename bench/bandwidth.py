"""The memory-bandwidth roofline, measured by the C extension's STREAM-like probe."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from radlite_edge import _native

KINDS = ("read", "copy", "triad")


@dataclass(frozen=True)
class BandwidthResult:
    kind: str
    threads: int
    array_bytes: int
    gbps: tuple[float, ...]  # one figure per repetition

    @property
    def best(self) -> float:
        return max(self.gbps)

    @property
    def median(self) -> float:
        return statistics.median(self.gbps)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.gbps) if len(self.gbps) > 1 else 0.0


def measure(kind: str = "triad", *, threads: int = 1, array_bytes: int = 256 << 20, reps: int = 5) -> BandwidthResult:
    """GB/s of ``kind`` over arrays far larger than any cache; bytes counted as STREAM does."""
    if kind not in KINDS:
        raise ValueError(f"unknown probe {kind!r}: {', '.join(KINDS)}")
    figures = _native.bandwidth(kind, n_threads=threads, n_bytes=array_bytes, reps=reps)
    return BandwidthResult(kind, threads, array_bytes, tuple(figures))
