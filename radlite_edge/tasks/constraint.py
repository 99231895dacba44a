"""Closed output languages of the label tasks, for constrained greedy decoding and as GBNF.

A language is a sequence of segments, each a choice among literal alternatives (a RADS
label; or "No Finding: " + positive|negative|uncertain + newline, fourteen times). The
decoder keeps the text a prefix of some string of the language: among the tokens in the
model's order of preference it takes the first that keeps it so, and it stops as soon as
the text is a complete string that the model does not want to extend. When the model's
own greedy choice already writes a string of the language, every step takes that same
token, so constraining changes only outputs that would not have parsed.

Once the model's choice has left the language, the engine (``Engine.generate``) completes
the answer its own way: it writes the bytes the language forces (``forced``) without
reading the model and picks at branches with a ``reach``. Such an answer is a valid label
but may differ from what llama.cpp's GBNF sampler (the naive path's grammar mode) writes.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import numpy as np


State = tuple[int, int, int]  # (segment, alternative, bytes of it already written)


class OutputLanguage:
    def __init__(self, segments: Sequence[Sequence[str]]):
        self.segments = [tuple(alt.encode() for alt in seg) for seg in segments]
        self._end: State = (len(self.segments), 0, 0)

    @classmethod
    def choice(cls, labels: Sequence[str]) -> "OutputLanguage":
        return cls([labels])

    # The language is run as a small automaton over bytes: a state says how far into which
    # alternative of which segment the text is; a finished alternative moves on to every
    # alternative of the next segment. Advancing the states of the text written so far by a
    # candidate token's bytes costs a few comparisons, whatever the length of the text.

    def _closure(self, states: Iterable[State]) -> frozenset[State]:
        out, todo = set(), list(states)
        while todo:
            s, a, off = todo.pop()
            if s < len(self.segments) and off == len(self.segments[s][a]):
                todo += [(s + 1, b, 0) for b in range(len(self.segments[s + 1]))] if s + 1 < len(self.segments) \
                    else [self._end]
            else:
                out.add((s, a, off))
        return frozenset(out)

    def start(self) -> frozenset[State]:
        return self._closure((0, a, 0) for a in range(len(self.segments[0]))) if self.segments else frozenset([self._end])

    def advance(self, states: frozenset[State], data: bytes) -> frozenset[State]:
        for byte in data:
            states = self._closure((s, a, off + 1) for s, a, off in states
                                   if s < len(self.segments) and self.segments[s][a][off] == byte)
            if not states:
                break
        return states

    def next_bytes(self, states: frozenset[State]) -> set[int]:
        """The bytes that may come next."""
        return {self.segments[s][a][off] for s, a, off in states if s < len(self.segments)}

    def forced(self, states: frozenset[State]) -> bytes:
        """The bytes that must come next, up to where the language branches or may end."""
        data = bytearray()
        while not self.is_end(states):
            nxt = self.next_bytes(states)
            if len(nxt) != 1:
                break
            data += bytes(nxt)
            states = self.advance(states, bytes(nxt))
        return bytes(data)

    def is_end(self, states: frozenset[State]) -> bool:
        return self._end in states

    def can_go_on(self, states: frozenset[State]) -> bool:
        return any(st != self._end for st in states)

    def is_prefix(self, text: bytes) -> bool:
        return bool(self.advance(self.start(), text))

    def is_complete(self, text: bytes) -> bool:
        return self.is_end(self.advance(self.start(), text))

    def can_extend(self, text: bytes) -> bool:
        return self.can_go_on(self.advance(self.start(), text))

    def gbnf(self) -> str:
        """The same language as a llama.cpp GBNF grammar."""
        def lit(s: bytes) -> str:
            return '"' + s.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        rules = [f"seg{i} ::= " + " | ".join(lit(a) for a in seg) for i, seg in enumerate(self.segments)]
        return "root ::= " + " ".join(f"seg{i}" for i in range(len(self.segments))) + "\n" + "\n".join(rules) + "\n"


def constrained_pick(
    logits: np.ndarray,
    states: frozenset[State],
    language: OutputLanguage,
    piece: Callable[[int], bytes],
    is_stop: Callable[[int], bool],
    candidates: Callable[[set[int]], np.ndarray] | None = None,
    reach: int = 0,
) -> tuple[int, frozenset[State]] | None:
    """(next token, the states after it) under ``language``, or None to stop.

    A complete text stops unless the model's own first choice continues it. Otherwise the
    best-scoring token that keeps the text in the language is taken, preferring one of at
    least ``reach`` bytes where there is one; ``candidates`` (first bytes -> token ids
    starting with one of them) spares scanning the whole vocabulary.
    """
    if language.is_end(states):
        top = int(np.argmax(logits))
        after = language.advance(states, piece(top)) if not is_stop(top) and piece(top) else frozenset()
        return (top, after) if after else None
    if candidates is not None:
        pool = np.sort(candidates(language.next_bytes(states)))
    else:
        pool = np.arange(logits.size)
    fallback = None
    for tok in pool[np.argsort(-logits[pool], kind="stable")]:  # ties: lowest id first, as argmax
        tok = int(tok)
        if is_stop(tok):
            continue
        text_piece = piece(tok)
        after = language.advance(states, text_piece) if text_piece else frozenset()
        if after:
            if len(text_piece) >= reach:
                return tok, after
            fallback = fallback or (tok, after)
    return fallback
