"""``radlite <verb>``: the one command-line entry point.

Each area of the toolkit registers its own verbs (``models``, ``ladder``, ``tasks``,
``bench``, ``assistant``, ``demo``), taking every choice and default from the library constant that owns
it. This module holds what they share: the parser root, and the one place where a
``UserError`` from anywhere below becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from .. import __version__
from ..errors import UserError
from . import assistant, bench, demo, finetune, ladder, models, tasks, tradeoff
from .render import err

AREAS = (models, ladder, tasks, finetune, bench, tradeoff, assistant, demo)  # the order of the verbs in --help


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake reported in one line like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="radlite", description="RadLite Edge: radiology LMs from checkpoint to the edge")
    p.add_argument("--version", action="version", version=f"radlite-edge {__version__}")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for area in AREAS:
        area.register(sub)
    return p


def check_arguments(args: argparse.Namespace) -> None:
    """Every text a verb was given, checked once for what would fail deep inside any verb: a file
    name that is not UTF-8 (it cannot be written into a GGUF, a JSON record or a message) and a
    symbolic link that loops back on itself."""
    from ..fileio import check_link, check_text

    for name, value in vars(args).items():
        for text in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(text, str) and name != "func":
                what = name.replace("_", "-")
                check_text(text, what=what)
                check_link(text, what=what)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        check_arguments(args)
        return func(args)
    except UserError as e:
        err.print(f"radlite {args.verb}: error: {e}", markup=False, highlight=False, soft_wrap=True)
        return e.exit_code
    except KeyboardInterrupt:
        err.print(f"radlite {args.verb}: interrupted; {getattr(args, 'interrupt_note', 'no partial output was kept')}",
                  markup=False, highlight=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
