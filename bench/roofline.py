"""The decode roofline: memory bandwidth ÷ bytes read per generated token.

Generating one token reads every weight once (the token embedding only for its one
row, unless the output projection is tied to it) and the K and V of every earlier
position. On a CPU whose cores can consume data faster than memory delivers it, that
traffic sets the ceiling; a tg figure far below it means the cores are the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf

from radlite_edge.convert.inspect_gguf import open_complete
from radlite_edge.identity import ModelId, identify_model

from .bandwidth import BandwidthResult, measure

KV_BYTES_PER_VALUE = 2  # llama.cpp's default K and V cache type is F16
PROBE = "read"  # decode only reads its weights: the read probe is the matching roofline


@dataclass(frozen=True)
class ModelBytes:
    """What a GGUF costs in memory traffic, from its header alone."""

    path: Path
    identity: ModelId  # name, level, architecture, size, digest: what every record of this file carries
    arch: str
    n_params: int
    file_bytes: int
    weight_bytes: int  # every tensor's data
    read_per_token: int  # the weights one decode step reads
    kv_bytes_per_token: int  # K and V of one position, all layers
    n_layer: int
    n_vocab: int

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def level(self) -> str:
        return self.identity.level

    def kv_bytes(self, n_tokens: int) -> int:
        return self.kv_bytes_per_token * n_tokens

    def tg_bytes_per_token(self, *, depth: int, n_gen: int) -> float:
        """Mean bytes read per token over a run of ``n_gen`` tokens after ``depth`` cached ones.

        Token i (from 0) attends over depth + i + 1 positions: depth + (n_gen + 1) / 2 on average.
        """
        return self.read_per_token + self.kv_bytes_per_token * (depth + (n_gen + 1) / 2)


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return f.contents() if f is not None else default


def model_bytes(path: Path) -> ModelBytes:
    """Read ``path``'s header; a missing, foreign or truncated file is a one-line UserError."""
    path = Path(path)
    reader = open_complete(path)
    arch = str(_field(reader, gguf.Keys.General.ARCHITECTURE, "?"))
    keys = gguf.Keys.LLM
    n_layer = int(_field(reader, keys.BLOCK_COUNT.format(arch=arch), 0))
    n_embd = int(_field(reader, keys.EMBEDDING_LENGTH.format(arch=arch), 0))
    n_head = int(_field(reader, gguf.Keys.Attention.HEAD_COUNT.format(arch=arch), 1))
    n_head_kv = int(_field(reader, gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=arch), n_head))
    k_len = int(_field(reader, gguf.Keys.Attention.KEY_LENGTH.format(arch=arch), n_embd // max(n_head, 1)))
    v_len = int(_field(reader, gguf.Keys.Attention.VALUE_LENGTH.format(arch=arch), n_embd // max(n_head, 1)))

    by_name = {t.name: t for t in reader.tensors}
    weight_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    embd = by_name.get(gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.TOKEN_EMBD] + ".weight")
    tied = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.OUTPUT] + ".weight" not in by_name
    read = weight_bytes
    n_vocab = 0
    if embd is not None:
        n_vocab = int(embd.shape[-1])  # gguf lists dimensions innermost first
        row = int(embd.n_bytes) // max(n_vocab, 1)
        # Untied: the lookup reads one row. Tied: the output projection reads it all, plus the row.
        read = weight_bytes - int(embd.n_bytes) + row + (int(embd.n_bytes) if tied else 0)
    return ModelBytes(
        path=path, identity=identify_model(path), arch=arch,
        n_params=sum(int(t.n_elements) for t in reader.tensors), file_bytes=path.stat().st_size,
        weight_bytes=weight_bytes, read_per_token=read,
        kv_bytes_per_token=n_layer * n_head_kv * (k_len + v_len) * KV_BYTES_PER_VALUE,
        n_layer=n_layer, n_vocab=n_vocab,
    )


def probe_bandwidth(threads: int, *, reps: int = 5) -> BandwidthResult:
    """The read bandwidth at ``threads``: measure it in the same run as the decode it bounds."""
    return measure(PROBE, threads=threads, reps=reps)


def ceiling_gbps(probes: dict[int, BandwidthResult], threads: int) -> float:
    """The bandwidth a ``threads``-thread decode can draw on: the best rate the probe reached
    with at most that many threads (STREAM reports its best rate; a ceiling is what the memory
    can deliver, and a run with more threads can always leave some idle). On a shared VM a
    probe at 2 threads can come out below the 1-thread one; the median of such a probe put
    decode at 130 % of its "ceiling"."""
    rates = [p.best for t, p in probes.items() if t <= threads]
    if not rates:
        raise ValueError(f"no bandwidth probe at {threads} thread(s) or fewer")
    return max(rates)


def ceiling_tok_s(bytes_per_token: float, gbps: float) -> float:
    return gbps * 1e9 / bytes_per_token


def fraction(tok_s: float, bytes_per_token: float, gbps: float) -> float:
    """The share of the memory roofline a decode speed reaches (1.0: bandwidth-bound)."""
    return tok_s / ceiling_tok_s(bytes_per_token, gbps)
