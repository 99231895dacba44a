"""``radlite demo``: the main job on the embedded default (the README's first command)."""

from __future__ import annotations

import argparse
from pathlib import Path

from . import values
from .render import count_progress, out


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import print_summary, run_demo

    args.interrupt_note = f"what each step finished is kept in {args.output}/; run the demo again to go on"
    with count_progress() as bar:
        task = bar.add_task("demo", total=None)
        result = run_demo(Path(args.output), n_threads=args.threads, console=out, n=args.n, levels=args.levels,
                          shape=args.shape,
                          on_cell=lambda i, n, what: bar.update(task, completed=i, total=n, description=what))
    print_summary(result, out)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from ..demo import DEMO_LEVELS, DEMO_N, default_threads
    from ..synth.models import SPECS

    d = sub.add_parser("demo", help="the whole pipeline on the fine-tuned embedded default: import → merge → "
                                    "ladder → fidelity, scores, speed → trade-off report → the assistant")
    d.add_argument("-o", "--output", default="runs/demo", help="run folder (a second run reuses what is done)")
    d.add_argument("-t", "--threads", type=values.threads, default=default_threads())
    d.add_argument("--n", type=values.count, default=DEMO_N,
                   help=f"test samples per task (default {DEMO_N}: a demo's n, stated beside every score)")
    d.add_argument("--levels", type=values.level_list, default=DEMO_LEVELS, help=f"the ladder (default {','.join(DEMO_LEVELS)})")
    d.add_argument("--shape", choices=sorted(n for n, s in SPECS.items() if not s.tiny),
                   help="the speed and memory half at full size, random weights (nothing scored)")
    d.set_defaults(func=cmd_demo)
