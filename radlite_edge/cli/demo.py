"""``radlite demo``: the main job on the embedded default."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from . import values
from .render import out


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(Path(args.output), n_threads=args.threads, console=out)


def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("demo", help="the main job on the embedded default: synth → convert → inspect → generate")
    d.add_argument("-o", "--output", default="runs/demo")
    d.add_argument("-t", "--threads", type=values.threads, default=min(4, os.cpu_count() or 1))
    d.set_defaults(func=cmd_demo)
