"""Verbs of the measurements: bench (throughput, memory, thread scaling) and report."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from ..bench.formats import FORMATS
from ..bench.grid import GridSpec
from ..bench.report import DEFAULT_REPORT_DIR, REPORT_FORMATS
from ..errors import UserError
from ..results import DEFAULT_RESULTS
from ..synth.models import FULL_SIZE_MODELS
from ..tasks.prompts import PROFILES
from ..limits import MAX_CHUNK_TOKENS, MAX_THREADS
from . import values
from .render import err, out, plain, print_json

_GRID_DEFAULTS = {f.name: f.default for f in dataclasses.fields(GridSpec) if f.default is not dataclasses.MISSING}


def _csv_of(values: tuple) -> str:
    return ",".join(str(int(v)) for v in values)


def _repack_list(text: str) -> tuple[bool, ...]:
    from ..bench.grid import parse_list

    values = parse_list(text, what="--repack")
    if not set(values) <= {0, 1}:
        raise UserError(f"--repack: {text!r}: each value is 0 or 1")
    return tuple(bool(v) for v in values)


def _models(args: argparse.Namespace) -> list[Path]:
    from ..bench.roofline import model_bytes

    models = [Path(m) for m in args.models]
    for path in models:  # a typo must not cost the time of making the synthetic models first
        model_bytes(path)
    if args.levels and not args.synthetic:
        raise UserError("--levels goes with --synthetic (the levels of the synthetic models to make)")
    if args.synthetic:
        from ..bench.synthetic import ensure_models

        if not args.levels:
            raise UserError("--synthetic needs --levels, e.g. --levels q4_k_m,q8_0")
        models += ensure_models(args.synthetic.split(","), args.levels.split(","), Path(args.models_dir),
                                say=lambda s: plain(err, s))
    return models


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import formats
    from ..bench.dashboard import Dashboard, ProgressLines
    from ..bench.grid import default_threads, parse_list, run_grid, task_requests
    from ..fileio import atomic_path, claim_output
    from ..machine import one_line
    from ..results import append_jsonl, is_results_file

    models = _models(args)
    if args.results:
        claim_output(args.results, models, step="bench", flag="--results", owned=is_results_file)
    if args.file is not None:
        claim_output(args.file, models, step="bench", flag="--file", owned=formats.is_rendered)
    spec = GridSpec(
        models=tuple(models),
        threads=(parse_list(args.threads, what="-t", minimum=1, maximum=MAX_THREADS) if args.threads
                 else default_threads()),
        n_prompt=parse_list(args.n_prompt, what="-p", maximum=MAX_CHUNK_TOKENS),
        n_gen=parse_list(args.n_gen, what="-n", maximum=MAX_CHUNK_TOKENS),
        depth=parse_list(args.depth, what="-d", maximum=MAX_CHUNK_TOKENS), reps=args.reps, requests=task_requests(args.tasks),
        n_batch=args.batch_size, n_ubatch=args.ubatch_size, flash_attn=bool(args.flash_attn),
        repack=_repack_list(args.repack), load=not args.no_load, rss=not args.no_rss, warmup=not args.no_warmup,
        prompt_profile=args.prompt_profile,
    )
    if args.tui:
        with Dashboard(err, one_line()) as dashboard:
            results = run_grid(spec, on_event=dashboard)
    else:
        results = run_grid(spec, on_event=ProgressLines(err, one_line()))
    if args.results:
        append_jsonl(Path(args.results), results)
        plain(err, f"{len(results)} records appended to {args.results}")
    text = formats.render(results, "json" if args.json else args.output_format)
    if args.file:
        with atomic_path(Path(args.file), owned=formats.is_rendered) as tmp:
            tmp.write_text(text)
    else:
        out.print(text, markup=False, highlight=False, end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..bench.report import make_report

    result = make_report([Path(p) for p in args.results], Path(args.output),
                         formats_wanted=[f.strip() for f in args.formats.split(",") if f.strip()], run=args.run)
    if args.json:
        print_json(result.to_dict())
    else:
        plain(out, f"{result.n_records} records of {len(result.runs)} run(s) → "
                   + ", ".join(str(f) for f in result.files))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    g = _GRID_DEFAULTS
    b = sub.add_parser("bench", help="tok/s, load time, memory and thread scaling against the memory roofline")
    b.add_argument("models", nargs="*", metavar="MODEL.gguf", help="GGUF files to measure")
    b.add_argument("-t", "--threads", help="thread counts, e.g. 1,2,4 (default: 1, 2, 4, … up to every CPU)")
    b.add_argument("-p", "--n-prompt", default=_csv_of(g["n_prompt"]),
                   help=f"prompt lengths for pp tests (0: none; default {_csv_of(g['n_prompt'])})")
    b.add_argument("-n", "--n-gen", default=_csv_of(g["n_gen"]),
                   help=f"generation lengths for tg tests (0: none; default {_csv_of(g['n_gen'])})")
    b.add_argument("-d", "--depth", default=_csv_of(g["depth"]),
                   help=f"tokens already in the KV cache before each test (default {_csv_of(g['depth'])})")
    b.add_argument("-r", "--reps", type=int, default=g["reps"], help=f"repetitions per test (default {g['reps']})")
    b.add_argument("-b", "--batch-size", type=values.tokens, default=g["n_batch"],
                   help=f"logical batch (default {g['n_batch']}, as llama-bench)")
    b.add_argument("-ub", "--ubatch-size", type=values.tokens, default=g["n_ubatch"],
                   help=f"physical batch (default {g['n_ubatch']})")
    b.add_argument("-fa", "--flash-attn", type=int, choices=[0, 1], default=int(g["flash_attn"]),
                   help=f"flash attention (default {int(g['flash_attn'])}, llama-cpp-python's default)")
    b.add_argument("--repack", default=_csv_of(g["repack"]),
                   help="llama.cpp's CPU weight repacking, as llama-bench --repack: 1, 0 or 1,0 for both side by "
                        f"side (default {_csv_of(g['repack'])}, llama.cpp's default; 0 saves the repacked copy's "
                        "memory)")
    b.add_argument("--tasks", type=values.task_list, default="all",
                   help="time one RadLite request per task: all, none, or names (default all)")
    b.add_argument("--prompt-profile", choices=PROFILES, default=g["prompt_profile"],
                   help="how the task requests are rendered: radlite, the published interface (default), or model, "
                        "the GGUF's own chat template")
    b.add_argument("--synthetic",
                   help=f"also measure full-size random models: {', '.join(FULL_SIZE_MODELS)} (comma list)")
    b.add_argument("--levels", help="levels of the --synthetic models, e.g. q4_k_m,q8_0 (made once, cached)")
    b.add_argument("--models-dir", default="models", help="cache of the --synthetic models (default: models)")
    b.add_argument("--no-load", action="store_true", help="skip the cold/warm load times")
    b.add_argument("--no-rss", action="store_true", help="skip the peak-RSS probe (a process of its own)")
    b.add_argument("--no-warmup", action="store_true", help="skip the warm-up run before each test")
    b.add_argument("--tui", action="store_true", help="a live dashboard while it runs (else plain progress lines)")
    b.add_argument("-o", "--output-format", choices=FORMATS, default=FORMATS[0],
                   help=f"what to print on stdout at the end (default {FORMATS[0]})")
    b.add_argument("--file", help="write that output to FILE instead of stdout")
    b.add_argument("--json", action="store_true", help="same as -o json")
    b.add_argument("--results", default=str(DEFAULT_RESULTS),
                   help=f"results JSONL to append to ('' for none; default {DEFAULT_RESULTS})")
    b.set_defaults(func=cmd_bench)

    rp = sub.add_parser("report", help="render bench results as Markdown, CSV and PNG plots")
    rp.add_argument("results", nargs="*", default=[str(DEFAULT_RESULTS)], help="results JSONL files")
    rp.add_argument("-o", "--output", default=str(DEFAULT_REPORT_DIR),
                    help=f"directory to write into (default {DEFAULT_REPORT_DIR})")
    rp.add_argument("--formats", default=",".join(REPORT_FORMATS),
                    help=f"any of {','.join(REPORT_FORMATS)} (png needs the [report] extra)")
    rp.add_argument("--run", default="all", help="all (latest figure of each kind), latest, or a run id")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_report)
