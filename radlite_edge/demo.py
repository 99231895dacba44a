"""``radlite demo``: the whole path on the embedded default, in about a minute.

Synthesizes the tiny Qwen2 and Qwen3 checkpoints, converts each to F16 and Q8_0 GGUF,
loads every file in llama.cpp and answers one RADS request in the published RadLite
prompt (the task registry's, through the default prompt profile). The tiny models have random weights: the answer is
noise, the point is that every step of the pipeline runs and is measured.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .convert.hf_to_gguf import convert_checkpoint
from .fileio import make_dir
from .convert.inspect_gguf import summarize
from .synth.models import SPECS, is_current, write_checkpoint
from .tasks import TASKS
from .tasks.interface import PUBLISHED

DEMO_REPORT = ("Thyroid ultrasound. Findings: 14 mm solid hypoechoic nodule in the right thyroid lobe, "
               "taller-than-wide, smooth margins, punctate echogenic foci.")


def run_demo(outdir: Path, *, n_threads: int, console: Console) -> int:
    from llama_cpp import Llama

    make_dir(outdir)
    table = Table(title="RadLite Edge demo (tiny random models: the text is noise, the pipeline is real)")
    for col in ("model", "level", "MiB", "bits/w", "convert s", "tok/s"):
        table.add_column(col, justify="left" if col in ("model", "level") else "right", no_wrap=True)
    table.add_column("answer", no_wrap=True, overflow="ellipsis", max_width=24)
    for name in ("tiny-qwen2", "tiny-qwen3"):
        spec = SPECS[name]
        ckpt = outdir / name
        if not is_current(ckpt, spec, seed=0, shard_bytes=None):
            write_checkpoint(spec, ckpt, seed=0)
        for level in ("f16", "q8_0"):
            gguf_path = outdir / f"{name}-{level.upper()}.gguf"
            result = convert_checkpoint(ckpt, gguf_path, outtype=level, n_threads=n_threads)
            summary = summarize(gguf_path)
            llm = Llama(str(gguf_path), n_ctx=512, n_threads=n_threads, seed=0, verbose=False)
            t0 = time.perf_counter()
            rads = TASKS["rads_assignment"]
            reply = llm.create_completion(rads.prompt(DEMO_REPORT), max_tokens=rads.max_tokens, temperature=0.0,
                                          stop=list(PUBLISHED.generation.stop))
            seconds = time.perf_counter() - t0
            n_gen = reply["usage"]["completion_tokens"]
            text = reply["choices"][0]["text"] or ""
            table.add_row(name, level.upper(), f"{summary.file_bytes / 2**20:.2f}", f"{summary.bits_per_weight:.2f}",
                          f"{result.seconds:.2f}", f"{n_gen / seconds:.0f}", repr(text[:40]))
            llm.close()
    console.print(table)
    _demo_eval(outdir, n_threads=n_threads, console=console)
    console.print(f"files in {outdir}/ — inspect one with: radlite inspect {outdir}/tiny-qwen2-Q8_0.gguf")
    return 0


def _demo_eval(outdir: Path, *, n_threads: int, console: Console) -> None:
    """The 9 RadLite tasks on a few synthetic samples, both tiny models at Q8_0."""
    from .cli.render import eval_table
    from .evaluation import EvalSettings, evaluate
    from .tasks.synthetic import make_suite

    samples = make_suite(3, seed=0, n_train=4)
    summaries = [evaluate(outdir / f"{name}-Q8_0.gguf", samples, outdir / "eval", settings=EvalSettings(n=3),
                          n_threads=n_threads, n_parallel=3, n_ctx=1024)
                 for name in ("tiny-qwen2", "tiny-qwen3")]
    console.print(eval_table(summaries, digits=2, interval=False,
                             title="the 9 RadLite tasks, 3 synthetic samples each (random weights: scores near chance)"))
