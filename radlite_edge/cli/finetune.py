"""``radlite finetune CONFIG.toml|yaml [--resume]``: LoRA training (finetune/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .render import err, plain, print_json

# short task names for one progress line
TASK_ABBREV = {"rads_assignment": "rads", "impression_generation": "impr", "temporal_comparison": "temp",
               "radiology_ner": "ner", "n_staging": "N", "m_staging": "M", "radiology_nli": "nli",
               "abnormality_detection": "cxr", "radiology_qa": "qa"}


def cmd_finetune(args: argparse.Namespace) -> int:
    from ..finetune.config import FinetuneConfig
    from ..finetune.train import finetune

    config = FinetuneConfig.load(Path(args.config))

    def progress(record: dict) -> None:
        if "loss" in record:
            plain(err, f"step {record['step']}/{record['max_steps']} loss {record['loss']:.4f} "
                       f"{record['tokens_per_s'] or 0:.0f} tok/s ({record['seconds']:.0f} s)")
        elif "eval_loss" in record:
            plain(err, f"step {record['step']}: validation loss {record['eval_loss']:.4f}")
        elif "val_scores" in record:
            scores = " ".join(f"{TASK_ABBREV.get(t, t)} {v:.2f}" for t, v in record["val_scores"].items())
            mark = " (best)" if record.get("best") else " (early stop)" if record.get("early_stop") else ""
            plain(err, f"step {record['step']}: task validation mean {record['val_mean']:.3f}{mark}: {scores} "
                       f"({record['val_seconds']:.0f} s)")

    result = finetune(config, resume=args.resume, progress=progress, say=lambda s: plain(err, s))
    if args.json:
        print_json(result.to_dict())
    else:
        val = f", validation loss {result.val_loss:.4f}" if result.val_loss is not None else ""
        plain(err, f"{result.adapter}: LoRA adapter after {result.steps} steps, {result.tokens:,} tokens in "
                   f"{result.seconds:.0f} s ({result.tokens_per_s:.0f} tok/s){val}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("finetune", help="train a LoRA adapter on the tasks (transformers + peft; needs [finetune])")
    f.add_argument("config", help="TOML or YAML config (finetune/configs/ has one per base)")
    f.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_finetune, interrupt_note="checkpoints so far are kept; --resume continues from the last")
