"""Verbs of the nine radiology tasks: data (synthetic suite, public datasets) and eval."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import engine
from ..errors import UserError
from ..eval_records import EvalMode
from ..tasks.loaders import GENERIC_FORMATS, LOADERS
from ..tasks.prompts import PROFILES
from ..tasks.samples import SPLITS
from ..tasks.synthetic import DEFAULT_N, GENERALIZATION
from . import values
from .render import err, eval_table, out, plain, print_json, rate_callback, rate_progress


def cmd_data(args: argparse.Namespace) -> int:
    from ..fileio import INTO, atomic_path, claim_output, output_dir
    from ..tasks import loaders
    from ..tasks.samples import write_jsonl
    from ..tasks.synthetic import check_disjoint, distinct_inputs, make_suite

    outdir = claim_output(args.output, [args.file] if args.data_verb == "load" else [], step="data", kind=INTO)
    check = None
    if args.data_verb == "synth":
        samples = make_suite(args.n, seed=args.seed, n_train=args.train)  # raises if any input crosses splits
        counts = check_disjoint(samples)
        check = (f"leakage check: 0 inputs in two splits ({', '.join(f'{k} {v}' for k, v in counts.items())}; "
                 f"distinct test inputs per task: {min(distinct_inputs(s for s in samples if s.split == 'test').values())}"
                 " or more)")
        name = "synthetic"
    else:
        samples = loaders.load(args.format, Path(args.file), split=args.split, mapping=args.map)
        name = f"{args.format}-{Path(args.file).stem}"
    by_split: dict[str, list] = {}
    for s in samples:
        by_split.setdefault(s.split, []).append(s)
    paths = {split: claim_output(outdir / f"{name}.{split}.jsonl", step="data", owned=is_samples_file)
             for split in sorted(by_split)}
    written = {}
    with output_dir(outdir):
        for split, items in sorted(by_split.items()):
            path = paths[split]
            with atomic_path(path, owned=is_samples_file) as tmp:
                write_jsonl(tmp, items)
            written[str(path)] = len(items)
    if args.json:
        print_json({"files": written, "check": check})
    else:
        for path, n in written.items():
            plain(out, f"{path}: {n} samples")
        if check:
            plain(out, check)
    return 0


def is_samples_file(path: Path) -> bool:
    """A task-samples JSONL (``radlite data``'s own output, which a rerun may replace)."""
    from ..fileio import records_with

    return records_with("id", "task", "input", "reference")(path)


def _splits(args: argparse.Namespace, present: set[str]) -> list[str]:
    """The splits to score: --splits, else test and generalization where the data has them."""
    if args.splits:
        splits = args.splits.split(",")
        if missing := [x for x in splits if x not in present]:
            raise UserError(f"--splits {args.splits}: {args.data} has no {', '.join(missing)} samples (it holds "
                            f"{', '.join(sorted(present))})")
        return splits
    splits = [x for x in ("test", GENERALIZATION) if x in present]
    if not splits:
        raise UserError(f"--data {args.data}: no test or {GENERALIZATION} samples to score (it holds "
                        f"{', '.join(sorted(present))}): give --splits {sorted(present)[0]} to score those, or "
                        "make a test split (radlite data synth -o DIR)")
    return splits


def cmd_eval(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..eval_records import EvalSettings
    from ..evaluation import check_lora, evaluate
    from ..fileio import INTO, claim_output
    from ..identity import identify_model
    from ..tasks.samples import read_dir

    samples = read_dir(Path(args.data))
    base = EvalSettings(mode=EvalMode(args.mode), few_shot=args.few_shot, n=args.n, seed=args.seed,
                        profile=args.prompt_profile)
    decodings = {"strict": (False,), "grammar": (True,), "both": (False, True)}[args.decoding]
    ids = [identify_model(Path(model)) for model in args.models]  # every file checked before the first one runs
    claim_output(args.output, [*args.models, args.data, *([args.lora] if args.lora else [])], step="eval", kind=INTO)
    if args.lora is not None:
        check_lora(Path(args.lora), base, ids)
    splits = _splits(args, {s.split for s in samples})
    summaries = []
    for model in args.models:
        for split in splits:
            for grammar in decodings:
                with rate_progress() as bar:
                    task = bar.add_task(f"eval {Path(model).name} {split}{' grammar' if grammar else ''}", total=None,
                                        rate=0.0)
                    summaries.append(evaluate(Path(model), samples, Path(args.output), tasks=args.tasks,
                                              settings=replace(base, grammar=grammar), n_threads=args.threads,
                                              n_parallel=args.parallel, n_ctx=args.ctx_size,
                                              repack=bool(args.repack), split=split,
                                              lora=None if args.lora is None else Path(args.lora),
                                              progress=rate_callback(bar, task)))
    for note in (n for s in summaries for n in s.notes):
        plain(err, f"note: {note}")
    if args.json:
        print_json([s.to_dict() for s in summaries])
        return 0
    out.print(eval_table(summaries, title=f"RadLite tasks ({base.mode.value} path, {base.few_shot}-shot)"))
    plain(out, f"per-sample records and summaries in {args.output}/")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    dt = sub.add_parser("data", help="task data: the synthetic suite, or public datasets in their own formats")
    dsub = dt.add_subparsers(dest="data_verb", required=True, metavar="VERB", parser_class=type(dt))
    ds = dsub.add_parser("synth", help="write the deterministic synthetic suite of the 9 tasks")
    ds.add_argument("--n", type=values.count, default=DEFAULT_N,
                    help="test and generalization samples per task (val: n/10, at least 8)")
    ds.add_argument("--train", type=values.count, default=None, metavar="N",
                    help="train samples per task, labels balanced (default: n/4, at least 16); e.g. 20000 to fine-tune")
    ds.add_argument("--seed", type=values.seed, default=0)
    ds.add_argument("-o", "--output", required=True, help="directory for the JSONL files")
    ds.add_argument("--json", action="store_true", help="print the files written as JSON")
    ds.set_defaults(func=cmd_data)
    dl = dsub.add_parser("load", help="convert a public dataset file to task samples")
    dl.add_argument("format", choices=list(LOADERS))
    dl.add_argument("file")
    dl.add_argument("--split", default="test", choices=SPLITS)
    dl.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                    help=f"generic {'/'.join(GENERIC_FORMATS)}: task=NAME, input=COL, reference=COL, id=COL "
                         "(repeatable)")
    dl.add_argument("-o", "--output", required=True)
    dl.add_argument("--json", action="store_true", help="print the files written as JSON")
    dl.set_defaults(func=cmd_data)

    ev = sub.add_parser("eval", help="evaluate GGUF models on the 9 tasks (resumable, per-sample records)")
    ev.add_argument("models", nargs="+", metavar="MODEL.gguf")
    ev.add_argument("--tasks", type=values.task_list, default="all", help="comma-separated task names, or all")
    ev.add_argument("--n", type=values.count, default=None, help="samples per task (default: all test samples)")
    ev.add_argument("--few-shot", type=values.few_shot, default=0, metavar="K", help="K examples from the train split")
    ev.add_argument("--data", required=True, help="directory of sample JSONL files (radlite data synth -o DIR)")
    ev.add_argument("-o", "--output", default="results", help="directory for records and summaries")
    ev.add_argument("--mode", choices=[m.value for m in EvalMode], default=EvalMode.FAST.value,
                    help="; ".join(f"{m.value}: {m.help}" for m in EvalMode))
    ev.add_argument("--decoding", choices=("strict", "grammar", "both"), default="strict",
                    help="strict: free generation, an answer that does not parse is wrong (the paper's scoring, the "
                         "default); grammar: label tasks constrained to their label set (the deployment mode); both: "
                         "each, side by side")
    ev.add_argument("--grammar", dest="decoding", action="store_const", const="grammar", help="same as --decoding grammar")
    ev.add_argument("--no-grammar", dest="decoding", action="store_const", const="strict",
                    help="same as --decoding strict")
    ev.add_argument("-t", "--threads", type=values.threads, default=None)
    ev.add_argument("--parallel", type=int, default=engine.DEFAULT_PARALLEL,
                    help=f"sequences decoded together in fast mode, 1 to {engine.MAX_STEP_ROWS} "
                         f"(default {engine.DEFAULT_PARALLEL})")
    ev.add_argument("--repack", type=int, choices=[0, 1], default=int(engine.DEFAULT_REPACK),
                    help="llama.cpp's CPU weight repacking (default 0: the fast path then equals the naive path "
                         "token for token; 1: faster long generations on some CPUs, outputs may fork at near-ties)")
    ev.add_argument("-c", "--ctx-size", type=values.tokens, default=None,
                    help=f"context size (default: the model's training context, at most {engine.DEFAULT_CTX})")
    ev.add_argument("--prompt-profile", choices=PROFILES, default=PROFILES[0],
                    help="radlite: the published interface, byte for byte (default); model: the GGUF's own chat "
                         "template, for models trained on another format")
    ev.add_argument("--splits", type=values.split_list, default=None,
                    help=f"which splits to score, e.g. test,{GENERALIZATION} (default: test, and {GENERALIZATION} "
                         "when the data has it: a score is reported on both)")
    ev.add_argument("--seed", type=values.seed, default=0)
    ev.add_argument("--lora", default=None, metavar="ADAPTER.gguf",
                    help="a GGUF LoRA (radlite export-lora) applied over each model at run time, as the assistant "
                         "runs an adapter route; records and summaries are named MODEL+ADAPTER")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval, interrupt_note="the finished samples are recorded; the same command resumes "
                                                  "from them")
