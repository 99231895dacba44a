"""Closed output languages of the label tasks, for constrained greedy decoding and as GBNF.

A language is a sequence of segments, each a choice among literal alternatives (a RADS
label; or "No Finding: " + positive|negative|uncertain + newline, fourteen times). The
decoder keeps the text a prefix of some string of the language: among the tokens in the
model's order of preference it takes the first that keeps it so, and it stops as soon as
the text is a complete string that the model does not want to extend. When the model's
own greedy choice already writes a string of the language, every step takes that same
token, so constraining changes only outputs that would not have parsed.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


class OutputLanguage:
    def __init__(self, segments: Sequence[Sequence[str]]):
        self.segments = [tuple(alt.encode() for alt in seg) for seg in segments]

    @classmethod
    def choice(cls, labels: Sequence[str]) -> "OutputLanguage":
        return cls([labels])

    def _walk(self, text: bytes, i: int = 0) -> tuple[bool, bool, bool]:
        """(is a prefix of the language, is complete, can be extended) for ``text`` from segment i."""
        if i == len(self.segments):
            return (not text, not text, False)
        prefix = complete = extend = False
        for alt in self.segments[i]:
            if text.startswith(alt):
                p, c, e = self._walk(text[len(alt):], i + 1)
                prefix, complete, extend = prefix or p, complete or c, extend or e
            elif alt.startswith(text):
                prefix = extend = True
        return prefix, complete, extend

    def is_prefix(self, text: bytes) -> bool:
        return self._walk(text)[0]

    def is_complete(self, text: bytes) -> bool:
        return self._walk(text)[1]

    def can_extend(self, text: bytes) -> bool:
        return self._walk(text)[2]

    def gbnf(self) -> str:
        """The same language as a llama.cpp GBNF grammar."""
        def lit(s: bytes) -> str:
            return '"' + s.decode().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        rules = [f"seg{i} ::= " + " | ".join(lit(a) for a in seg) for i, seg in enumerate(self.segments)]
        return "root ::= " + " ".join(f"seg{i}" for i in range(len(self.segments))) + "\n" + "\n".join(rules) + "\n"


def constrained_pick(
    logits: np.ndarray,
    text: bytes,
    language: OutputLanguage,
    piece: Callable[[int], bytes],
    is_stop: Callable[[int], bool],
) -> int | None:
    """The next token under ``language``, or None to stop (the text is then complete)."""
    complete = language.is_complete(text)
    if complete and not language.can_extend(text):
        return None
    top = np.argpartition(-logits, 64)[:64] if logits.size > 64 else np.arange(logits.size)
    for order in (top[np.argsort(-logits[top], kind="stable")], np.argsort(-logits, kind="stable")):
        for tok in order:
            tok = int(tok)
            if is_stop(tok):
                if complete:
                    return None
                continue
            text_piece = piece(tok)
            if text_piece and language.is_prefix(text + text_piece):
                return tok
            if complete:  # the model prefers to write something else: the label ends here
                return None
    return None
