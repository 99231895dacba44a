"""LoRA merge cost: radlite (torch-free, streaming) beside peft, on the full-size shapes.

    python -m benchmarks.merge_speed [--models models] [-r 1]

Makes (once, cached) the Qwen2.5-3B-shaped random checkpoint and a random r=64/alpha=128
adapter on all 7 projections (the RadLite recipe), then measures in one session, each in
its own process (peak RSS from ``wait4`` through a small launcher):

- ``radlite convert BASE --adapter A --outtype f16``: merge while converting, no
  intermediate checkpoint;
- ``radlite merge``: a merged HF checkpoint;
- peft: ``PeftModel.from_pretrained(...).merge_and_unload()`` then ``save_pretrained``, the
  route the RadLite notebook takes before llama.cpp's converter.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from radlite_edge import machine
from radlite_edge.bench.measure import run_measured
from radlite_edge.bench.throughput import warm_page_cache
from radlite_edge.results import Result, append_jsonl
from radlite_edge.synth.adapters import write_adapter
from radlite_edge.synth.models import SPECS, is_current, vocab_size_of, write_checkpoint


PEFT_ROUTE = """
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base, adapter, out = sys.argv[1:]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(out)
"""


def _inputs(models: Path, console: Console) -> tuple[Path, Path]:
    spec = SPECS["qwen2.5-3b"]
    base = models / spec.name
    if not is_current(base, spec, seed=0, shard_bytes=4 << 30):
        console.print(f"writing {base} (about a minute)")
        write_checkpoint(spec, base, seed=0, shard_bytes=4 << 30)
    adapter = models / f"{spec.name}-lora-r64"
    if not (adapter / "adapter_model.safetensors").is_file():
        console.print(f"writing {adapter}")
        write_adapter(spec, vocab_size_of(spec), adapter, rank=64, alpha=128.0)
    return base, adapter


def _warm(paths: list[Path]) -> None:
    """Read the inputs once so every route starts from the same warm page cache."""
    for d in paths:
        for f in d.glob("*.safetensors"):
            warm_page_cache(f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("-r", "--reps", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-peft", action="store_true", help="leave out the peft route (it needs ~7 GB of RAM)")
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    console = Console(soft_wrap=True)
    base, adapter = _inputs(args.models, console)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="radlite-merge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    console.print(f"machine: {machine.one_line()}")
    console.print(f"base {base} · adapter {adapter} (r=64, alpha=128, 7 projections) · {args.reps} rep(s)")

    cli = [sys.executable, "-m", "radlite_edge.cli"]
    routes = [
        ("radlite convert --adapter (→ GGUF F16)", lambda o: [*cli, "convert", str(base), "--adapter", str(adapter),
                                                             "-o", str(o) + ".gguf", "--outtype", "f16", "--force"]),
        ("radlite merge (→ HF bf16)", lambda o: [*cli, "merge", "--base", str(base), "--adapter", str(adapter),
                                                "-o", str(o)]),
    ]
    if not args.skip_peft:
        routes.append(("peft merge_and_unload + save_pretrained (→ HF bf16)",
                       lambda o: [sys.executable, "-c", PEFT_ROUTE, str(base), str(adapter), str(o)]))
    table = Table(title="LoRA merge, full-size Qwen2.5-3B shape + r=64 adapter (median of reps)")
    for col in ("route", "wall s", "peak RSS GiB"):
        table.add_column(col)
    records, peaks = [], {}
    for label, make in routes:
        walls, rss = [], []
        for rep in range(args.reps):
            _warm([base, adapter])
            out = work / f"out-{len(records)}-{rep}"
            wall, peak = run_measured(make(out))
            walls.append(wall)
            rss.append(peak)
            shutil.rmtree(out, ignore_errors=True)
            Path(str(out) + ".gguf").unlink(missing_ok=True)
            Path(str(out) + ".gguf.manifest.json").unlink(missing_ok=True)
        peaks[label] = statistics.median(rss)
        console.print(f"{label}: {statistics.median(walls):.1f} s, {statistics.median(rss) / 2**30:.3f} GiB")
        table.add_row(label, f"{statistics.median(walls):.1f}", f"{statistics.median(rss) / 2**30:.3f}")
        params = {"route": label, "adapter": str(adapter)}
        records.append(Result.from_samples(walls, model="qwen2.5-3b+lora-r64", level="F16/BF16", benchmark="merge",
                                           metric="wall_s", unit="s", params=params))
        records.append(Result.from_samples(rss, model="qwen2.5-3b+lora-r64", level="F16/BF16", benchmark="merge",
                                           metric="peak_rss_bytes", unit="B", params=params))
    console.print(table)
    if len(peaks) == 3:
        labels = list(peaks)
        console.print(f"peak RSS ratio peft / radlite convert --adapter: {peaks[labels[2]] / peaks[labels[0]]:.1f}x; "
                      f"peft / radlite merge: {peaks[labels[2]] / peaks[labels[1]]:.1f}x")
    append_jsonl(args.results, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
