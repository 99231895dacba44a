"""LoRA training speed: today's recipe beside the fast one, same data, seed and steps, one run.

    python -m benchmarks.train_speed [--config finetune/configs/smollm2-135m.toml] [--steps 40]
        [--data data/train-speed] [--variant NAME:key=value,...]... [--set key=value]...

Each recipe trains in a process of its own through ``radlite finetune``'s own code (the
Trainer, its length-grouped batches, the JSONL log), for ``--steps`` updates, with no
evaluation or checkpoint in between:

- plain: the model's own loss over every position's logits, torch's LoRA dropout
  (``answer_only_logits = false``, ``numpy_dropout = false``): the recipe before the speed-ups;
- fast: the config as it is (logits at the answer tokens, numpy's dropout masks).

``--variant`` adds recipes (config settings, plus ``threads=N`` for torch's intra-op threads
and ``env.NAME=VALUE`` for the child's environment), e.g. ``bf16:bf16=true``,
``r8:r=8,alpha=16``, ``top-half:layers_to_transform=15-29``, ``answer-only:numpy_dropout=false``.

Per recipe: tokens/s per step (real tokens, padding left out; median, stdev and min–max over the
steps after ``--warmup``), the whole run's tokens/s, tokens per CPU-second of its process
(every thread, spin-waits included), peak RSS of its process, the loss at the last step and the
largest per-step loss difference from the first recipe (the same batches, so the curves can be
compared step by step). ``other CPU`` is what other processes used while it trained: on a
shared machine tokens/s are only comparable where it is near zero; tokens per CPU-second of
recipes run on one thread (``--set threads=1``) hold up better, as no thread waits for another.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

from radlite_edge import machine
from radlite_edge.results import Result, append_jsonl

PLAIN = {"answer_only_logits": False, "numpy_dropout": False}
RECIPES = {"plain": PLAIN, "fast": {}}


def _value(text: str):
    """A setting's value as TOML would read it (numbers, true/false, lists); ``a-b`` a list of ints."""
    if "-" in text and all(part.isdigit() for part in text.split("-", 1)):
        lo, hi = map(int, text.split("-", 1))
        return list(range(lo, hi + 1))
    try:
        return json.loads(text)
    except ValueError:
        return text


def _settings(text: str) -> dict:
    out = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{item!r}: give key=value")
        out[key.strip()] = _value(value.strip())
    return out


def _variant(text: str) -> tuple[str, dict]:
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME:key=value,...")
    return name, _settings(rest)


def _cpu_busy() -> float:
    """Seconds of CPU time spent by anything on this machine so far (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    idle = ticks[3] + ticks[4]  # idle and iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the child: one recipe


def _child(spec_path: Path, out_path: Path) -> int:
    spec = json.loads(spec_path.read_text())
    settings = {**spec["base"], **spec["settings"]}
    threads = settings.pop("threads", None)
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    from radlite_edge.finetune.config import FinetuneConfig
    from radlite_edge.finetune.train import finetune

    config = FinetuneConfig.load(Path(spec["config"]))
    for key, value in settings.items():
        setattr(config, key, value)
    config.check()
    records = []

    def progress(record):
        if "loss" in record:  # the CPU time of every thread of this process, spin-waits included
            records.append({**record, "cpu_s": time.process_time()})

    finetune(config, progress=progress, say=lambda s: None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out_path.write_text(json.dumps({"records": records, "cpu_s": usage.ru_utime + usage.ru_stime,
                                    "threads": torch.get_num_threads(), "config": asdict(config)}))
    return 0


# ------------------------------------------------------------------ the parent: every recipe


def _run(name: str, settings: dict, args, base: dict, work: Path) -> dict:
    from radlite_edge.bench.measure import run_measured

    env = dict(os.environ)
    settings = dict(settings)
    for key in [k for k in {**base, **settings} if k.startswith("env.")]:
        env[key[4:]] = str(settings.pop(key, base.get(key)))
    spec = work / f"{name}.spec.json"
    out = work / f"{name}.out.json"
    base = {k: v for k, v in base.items() if not k.startswith("env.")}
    spec.write_text(json.dumps({"config": str(args.config), "base": {**base, "output": str(work / name)},
                                "settings": settings}))
    busy0 = _cpu_busy()
    wall, peak = run_measured([sys.executable, "-m", "benchmarks.train_speed", "--child", str(spec), str(out)], env=env)
    busy = _cpu_busy() - busy0
    report = json.loads(out.read_text())
    records = report["records"]
    steps = [{"step": r["step"], "loss": r["loss"], "seconds": r["seconds"], "tokens": r["num_input_tokens_seen"],
              "cpu": r["cpu_s"]} for r in records]
    for prev, cur in zip(steps, steps[1:]):
        cur["dt"], cur["dtokens"], cur["dcpu"] = (cur["seconds"] - prev["seconds"], cur["tokens"] - prev["tokens"],
                                                  cur["cpu"] - prev["cpu"])
    timed = steps[max(args.warmup, 1):]
    rates = [s["dtokens"] / s["dt"] for s in timed if s["dt"] > 0]
    return {"name": name, "settings": settings, "steps": steps, "rates": rates,
            "tok_s": statistics.median(rates), "tok_s_sd": statistics.stdev(rates) if len(rates) > 1 else 0.0,
            "tok_s_whole": sum(s["dtokens"] for s in timed) / sum(s["dt"] for s in timed),
            "tok_cpu_s": sum(s["dtokens"] for s in timed) / sum(s["dcpu"] for s in timed),
            "wall": wall, "peak": peak, "other_cpu": max(0.0, busy - report["cpu_s"]),
            "threads": report["threads"], "config": report["config"]}


def _data(path: Path) -> Path:
    if not any(path.glob("*.jsonl")):
        print(f"writing the synthetic suite to {path} (radlite data synth --n 500)")
        subprocess.run([sys.executable, "-m", "radlite_edge.cli", "data", "synth", "--n", "500", "-o", str(path)],
                       check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 4 and sys.argv[1] == "--child":
        return _child(Path(sys.argv[2]), Path(sys.argv[3]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("finetune/configs/smollm2-135m.toml"))
    ap.add_argument("--data", type=Path, default=Path("data/train-speed"),
                    help="task JSONL folder (made with radlite data synth --n 500 when empty)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the per-step figures")
    ap.add_argument("--recipes", default="plain,fast", help="of plain, fast (comma-separated; '' for none)")
    ap.add_argument("--variant", type=_variant, action="append", default=[], metavar="NAME:key=value,...")
    ap.add_argument("--set", type=_settings, action="append", default=[], metavar="key=value,...",
                    help="a setting for every recipe (e.g. batch_size=4)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--results", type=Path, default=Path("results/bench.jsonl"))
    args = ap.parse_args(argv)
    if args.steps <= args.warmup:
        ap.error("--steps must exceed --warmup")
    from radlite_edge.finetune.config import FinetuneConfig

    recipes = [(name, RECIPES[name]) for name in filter(None, args.recipes.split(","))] + args.variant
    names = [name for name, _ in recipes]
    if not recipes or len(set(names)) != len(names):
        ap.error("give at least one recipe, each name once")
    known = {f.name for f in fields(FinetuneConfig)} | {"threads"}
    for name, settings in [("--set", s) for s in args.set] + recipes:
        unknown = [k for k in settings if k not in known and not k.startswith("env.")]
        if unknown:
            ap.error(f"{name}: unknown setting {unknown[0]!r}")
    base = {"data": str(_data(args.data).resolve()), "max_steps": args.steps, "eval_every": 0, "save_every": 0,
            "val_every": 0, "val_samples": 0}
    for extra in args.set:
        base.update(extra)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="radlite-train-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    config = FinetuneConfig.load(args.config)
    print(f"machine: {machine.one_line()}")
    cpu = machine.describe()
    print(f"{cpu['physical_cores']} cores, {cpu['usable_cpus']} usable CPUs · {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"config {args.config} (r={config.r}, batch {base.get('batch_size', config.batch_size)}, "
          f"lr {config.learning_rate}, samples {base.get('samples', config.samples)}) · data {args.data} · "
          f"{args.steps} steps, the first {args.warmup} left out of the per-step figures")

    runs = []
    for name, settings in recipes:
        t0 = time.perf_counter()
        try:
            run = _run(name, settings, args, base, work)
        except RuntimeError as e:  # one recipe's failure leaves the others' figures
            print(f"{name}: failed: {str(e).strip().splitlines()[-1]}")
            continue
        runs.append(run)
        print(f"{name}: {run['tok_s']:.1f} tok/s median on {run['threads']} torch threads, "
              f"{time.perf_counter() - t0:.0f} s")

    if not runs:
        return 1
    ref = runs[0]
    header = ("recipe", "settings", "tok/s median ± sd (min–max)", "tok/s whole", "speed-up", "tok per CPU-s",
              "peak RSS GiB", f"loss @ {args.steps}", f"max |Δloss| vs {ref['name']}", "other CPU s")
    rows = []
    for run in runs:
        diffs = [abs(a["loss"] - b["loss"]) for a, b in zip(run["steps"], ref["steps"])]
        rows.append((run["name"], ",".join(f"{k}={v}" for k, v in run["settings"].items()) or "-",
                     f"{run['tok_s']:.1f} ± {run['tok_s_sd']:.1f} ({min(run['rates']):.1f}–{max(run['rates']):.1f})",
                     f"{run['tok_s_whole']:.1f}", f"{run['tok_s'] / ref['tok_s']:.2f}x", f"{run['tok_cpu_s']:.1f}",
                     f"{run['peak'] / 2**30:.2f}",
                     f"{run['steps'][-1]['loss']:.4f}", f"{max(diffs):.2e}" if run is not ref else "-",
                     f"{run['other_cpu']:.0f} of {run['wall'] * (cpu['usable_cpus'] or 1):.0f}"))
    print()
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for row in rows:
        print(" | ".join(row))
    print("\nper-step loss (step: " + ", ".join(r["name"] for r in runs) + ")")
    for i, step in enumerate(ref["steps"]):
        print(f"{step['step']:3d}: " + "  ".join(f"{r['steps'][i]['loss']:.4f}" for r in runs if i < len(r["steps"])))

    records = []
    for run in runs:
        params = {"recipe": run["name"], "steps": args.steps, "threads": run["threads"],
                  **{k: v for k, v in run["settings"].items()}, **{k: v for k, v in base.items() if k != "data"}}
        model = Path(run["config"]["base"]).name
        records.append(Result.from_samples(run["rates"], model=model, level="f32" if run["config"]["bf16"] != "true"
                                           else "bf16", benchmark="train-speed", metric="tokens_per_s",
                                           unit="tok/s", keep=True, params=params))
        records.append(Result(model=model, level="", benchmark="train-speed", metric="peak_rss_bytes",
                              value=run["peak"], unit="B", params=params))
    append_jsonl(args.results, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
