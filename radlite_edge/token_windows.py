"""Text to fixed-size token windows, streamed: a long text never sits in memory whole.

The importance matrix and the fidelity benchmark both read a text as windows of
``size`` tokens, each evaluated from an empty cache. The text is read in pieces of
about ``_PIECE_CHARS`` characters cut at line ends and tokenized piece by piece, so
memory holds one piece and less than one window of tokens, whatever the text's length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import UserError

_PIECE_CHARS = 1 << 14


def text_pieces(path: Path) -> Iterator[str]:
    """The file's text in pieces of whole lines; a file that is not UTF-8 text is a user error."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such text file")
    piece: list[str] = []
    size = 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "\x00" in line:
                    raise UserError(f"{path}: binary data, not text: give a UTF-8 text file")
                piece.append(line)
                size += len(line)
                if size >= _PIECE_CHARS:
                    yield "".join(piece)
                    piece, size = [], 0
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}): give a UTF-8 text file") from None
    if piece:
        yield "".join(piece)


def joined_pieces(texts: Iterable[str]) -> Iterator[str]:
    """Documents (one string each) as pieces of about ``_PIECE_CHARS``, one document per line."""
    piece: list[str] = []
    size = 0
    for text in texts:
        piece.append(text + "\n")
        size += len(text) + 1
        if size >= _PIECE_CHARS:
            yield "".join(piece)
            piece, size = [], 0
    if piece:
        yield "".join(piece)


def token_windows(
    tokenize: Callable[[str], list[int]],
    pieces: Iterable[str],
    size: int,
    *,
    first_token: int | None = None,
    keep_partial: bool = False,
    max_windows: int | None = None,
) -> Iterator[list[int]]:
    """Consecutive windows of ``size`` tokens; ``first_token`` (a BOS) replaces each window's first.

    A last window shorter than ``size`` is dropped unless ``keep_partial`` (llama.cpp's
    imatrix drops it; the fidelity benchmark scores it).
    """
    if size < 2:
        raise UserError(f"window of {size} tokens: need at least 2")
    buffer: list[int] = []
    start = 0  # windows are cut from buffer[start:]; the consumed head is dropped per piece
    produced = 0
    for piece in pieces:
        del buffer[:start]
        start = 0
        buffer.extend(tokenize(piece))
        while len(buffer) - start >= size:
            window = buffer[start:start + size]
            start += size
            if first_token is not None:
                window[0] = first_token
            yield window
            produced += 1
            if max_windows is not None and produced >= max_windows:
                return
    rest = buffer[start:]
    if keep_partial and len(rest) >= 2:
        if first_token is not None:
            rest[0] = first_token
        yield rest
