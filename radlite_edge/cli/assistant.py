"""``radlite run`` and ``radlite serve``: the task-routed assistant from the shell and over HTTP.

Without ``--routes`` every task goes to the embedded default: the merged fine-tuned SmolLM2
F16 (``models/smollm2-135m-radlite-F16.gguf``) where it has been made, else the SmolLM2 base
Q4_1 with the shipped adapter (``adapters/smollm2-135m-radlite``) exported once as a GGUF
LoRA beside the base. The exporter lives in convert/, which only the CLI may import (a
kiosk that serves its own routes file never needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import UserError
from ..fileio import records_with
from ..routes import DECODINGS, Routes, load_routes, uniform_routes
from ..tasks.labels import TASK_NAMES
from . import values
from .render import err, out, parse_size, plain, print_json

MERGED_DEFAULT = Path("models/smollm2-135m-radlite-F16.gguf")
ADAPTER_DEFAULT = Path("adapters/smollm2-135m-radlite")
LORA_FILE = "smollm2-135m-radlite-lora.gguf"
_SOURCE_TREE = Path(__file__).resolve().parents[2]


def _find(relative: Path) -> Path | None:
    for root in (Path.cwd(), _SOURCE_TREE):
        if (root / relative).exists():
            return (root / relative).resolve()
    return None


def default_routes(decoding: str = "grammar") -> Routes:
    """Every task to the embedded default, saying which form of it serves."""
    merged = _find(MERGED_DEFAULT)
    if merged is not None:
        return uniform_routes(merged, decoding=decoding,
                              source=f"the embedded default: merged fine-tuned SmolLM2-135M F16 ({merged})")
    from ..embedded import smollm2

    base = smollm2()
    adapter = _find(ADAPTER_DEFAULT)
    if adapter is None:
        raise UserError(f"the embedded default's adapter {ADAPTER_DEFAULT} is not here: run from the source tree, "
                        "or give --routes")
    lora = _lora_home(base)
    _export_default_lora(base, adapter, lora)
    return uniform_routes(base, lora, decoding=decoding,
                          source=f"the embedded default: SmolLM2-135M Q4_1 + its fine-tuned adapter as GGUF LoRA ({lora})")


def _exported(lora: Path) -> bool:
    return lora.is_file() and (lora.parent / (lora.name + ".manifest.json")).is_file()


def _writable(folder: Path) -> bool:
    from ..fileio import check_writable_dir

    try:
        check_writable_dir(folder)
    except UserError:
        return False
    return True


def _lora_home(base: Path) -> Path:
    """Where the default adapter's GGUF LoRA is kept: beside the base, or in the user's cache where
    the base's folder is read-only (a kiosk's image); nothing the user named is written."""
    beside = base.parent / LORA_FILE
    if _exported(beside) or _writable(base.parent):
        return beside
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "radlite-edge" / LORA_FILE
    if _exported(cache) or _writable(cache.parent):
        return cache
    raise UserError(f"the embedded default's adapter is exported once as a GGUF LoRA, but {base.parent} and "
                    f"{cache.parent} are read-only: set XDG_CACHE_HOME to a writable folder, or give --routes")


def _export_default_lora(base: Path, adapter: Path, lora: Path) -> None:
    """The shipped peft adapter as GGUF LoRA (kept up to date by its manifest); the HF base it
    needs for shapes is imported from the GGUF into a temporary folder when it is not at hand."""
    import tempfile

    from ..convert.gguf_to_hf import import_gguf
    from ..convert.lora_gguf import export_lora

    if _exported(lora):
        return
    plain(err, f"exporting {adapter.name} as GGUF LoRA to {lora} (once)")
    with tempfile.TemporaryDirectory(prefix="radlite-base.") as tmp:
        hf = _find(Path("models/smollm2-135m")) or import_gguf(base, Path(tmp) / "hf").path
        export_lora(adapter, hf, lora, outtype="f32")


def _routes(args: argparse.Namespace) -> Routes:
    if args.routes and args.decoding:
        raise UserError("--decoding applies to the default routes; a routes file sets each route's decoding")
    return load_routes(args.routes) if args.routes else default_routes(args.decoding or "grammar")


def _assistant(args: argparse.Namespace, routes: Routes | None = None):
    """The assistant over the routes, every setting checked against them; the routes are named
    only then, so that a refusal stays one line."""
    from ..assistant import Assistant

    routes = routes or _routes(args)
    assistant = Assistant(routes, ram=args.ram, n_ctx=args.ctx, n_threads=args.threads, timeout=args.timeout,
                          speculative=args.speculative, flash_attn=args.flash_attn)
    plain(err, f"routes: {routes.source}")
    return assistant


def _read_report(args: argparse.Namespace) -> str:
    """The report, read and checked before the routes (and their models) are."""
    if args.report not in (None, "-"):
        report = args.report
    elif sys.stdin.isatty():
        raise UserError("no report: give it as an argument, on stdin, or --batch a JSONL file")
    else:
        try:
            report = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("the report on stdin is not UTF-8 text") from None
    if not report.strip():
        raise UserError("an empty report: give the report text")
    return report


is_answers_file = records_with("id", "task", "text", "route")  # what --batch -o writes


def _read_batch(path: Path, default_task: str | None) -> list[dict]:
    """Every line checked before any work: {"report": ..., "task"?: ..., "id"?: ...}."""
    if not path.is_file():
        raise UserError(f"--batch {path}: no such file")
    jobs = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"--batch {path}: not UTF-8 text") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"--batch {path} line {n}: invalid JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("report"), str) or not item["report"].strip():
            raise UserError(f"--batch {path} line {n}: give an object with a non-empty \"report\" string")
        task = item.get("task", default_task)
        if task is not None and task not in TASK_NAMES:
            raise UserError(f"--batch {path} line {n}: unknown task {task!r}: choose from {', '.join(TASK_NAMES)}")
        jobs.append({"id": item.get("id", n), "report": item["report"], "task": task})
    if not jobs:
        raise UserError(f"--batch {path}: no requests in it")
    return jobs


def _served(routes: Routes) -> list[Path]:
    return [p for r in routes.routes.values() for p in (r.model, r.adapter) if p is not None]


def _run_batch(args: argparse.Namespace) -> int:
    """--batch: every line and the output checked before a model loads (the output against the
    requests, the routes file and every routed file); the answers file appears whole when the last
    answer is in, and one run at a time writes it."""
    from ..fileio import FILE, atomic_path, claim_output
    from ..locks import output_lock

    if args.report is not None:
        raise UserError("give a report or --batch, not both")
    if args.output is None:
        raise UserError("--batch needs -o OUT.jsonl")
    jobs = _read_batch(Path(args.batch), args.task)
    read, routes = [Path(args.batch)], None
    if args.routes:  # a routes file is only read
        routes = _routes(args)
        read += [Path(args.routes), *_served(routes)]
    output = claim_output(args.output, read, step="run", kind=FILE, owned=is_answers_file)
    if routes is None:  # the default routes export the adapter once: only for an output known good
        routes = _routes(args)
        claim_output(output, _served(routes), step="run", kind=FILE, owned=is_answers_file)
    with output_lock(output, what="radlite run"), _assistant(args, routes) as assistant, \
            atomic_path(output, owned=is_answers_file) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for job in jobs:
                answer = assistant.answer(job["report"], job["task"], truncate=args.truncate)
                f.write(json.dumps({"id": job["id"], **answer.to_dict(paths=True)}) + "\n")
    plain(err, f"{args.output}: {len(jobs)} answers")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    if args.batch:
        return _run_batch(args)
    if args.output:
        raise UserError("-o goes with --batch; a single answer goes to stdout")
    report = _read_report(args)
    with _assistant(args) as assistant:
        answer = assistant.answer(report, args.task, truncate=args.truncate)
    if args.json:
        print_json(answer.to_dict(paths=True))
        return 0
    plain(out, f"task: {answer.task}")
    for key, value in answer.fields.items():
        plain(out, f"{key}: {json.dumps(value) if not isinstance(value, str) else value}")
    plain(out, f"answer: {answer.text}")
    plain(err, f"{answer.prompt_tokens} prompt + {answer.tokens} answer tokens in {answer.seconds:.2f} s"
               + (" (report truncated to fit the context)" if answer.truncated else ""))
    return 0


def _api_key(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--api-key-file {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if len(key) < 16 or any(c.isspace() for c in key):
        raise UserError(f"--api-key-file {path}: give one token of at least 16 characters without spaces")
    return key


def cmd_serve(args: argparse.Namespace) -> int:
    from ..server import ServeLimits, is_loopback, serve

    key = _api_key(args.api_key_file)
    if not is_loopback(args.host) and key is None:
        raise UserError(f"--host {args.host} opens the assistant beyond this machine: give --api-key-file (a bearer "
                        "token clients must send), or bind 127.0.0.1")
    limits = ServeLimits(max_body_bytes=args.max_body, max_report_chars=args.max_report_chars,
                         timeout=args.timeout or ServeLimits.timeout)
    with _assistant(args) as assistant:
        serve(assistant, host=args.host, port=args.port, api_key=key, limits=limits,
              announce=lambda line: plain(err, line))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--routes", help="routes file (radlite-routes/1); default: every task to the embedded default")
    p.add_argument("--decoding", choices=DECODINGS, help="for the default routes: grammar (label tasks held to "
                                                          "their labels, the default) or strict (free generation)")
    p.add_argument("--ram", type=parse_size, help="memory for models (e.g. 4G): below the routes' models, they load "
                                                  "on demand and the least recently used is closed")
    p.add_argument("-t", "--threads", type=values.threads, default=min(4, os.cpu_count() or 1))
    p.add_argument("-c", "--ctx", type=values.tokens, default=2048, help="context per model (the published 2048)")
    p.add_argument("--timeout", type=values.duration, help="seconds a request may take (e.g. 30, 30s, 500ms)")
    p.add_argument("--speculative", action="store_true",
                   help="prompt-lookup drafts for NER, temporal and abnormality answers, used only where the "
                        "answer stays identical: --flash-attn, -t 1, no LoRA adapter on the route, and a "
                        "bit-for-bit probe (docs/ASSISTANT.md has its speed: never the 1.5x goal); "
                        "off by default")
    p.add_argument("--flash-attn", action="store_true",
                   help="flash attention: answers then equal greedy decoding with it, not the notebook's call; "
                        "with quantized models without adapters at -t 1 the extractive tasks can speculate")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("run", help="answer one report (argument or stdin) or a JSONL batch with the routed models")
    r.add_argument("report", nargs="?", help="the report text; - or absent: stdin. A leading [TASK: x] routes it")
    r.add_argument("--task", choices=TASK_NAMES, metavar="TASK", help="the task (default: the [TASK: x] tag, "
                                                                      "else radiology_qa, as the published router)")
    r.add_argument("--batch", help="JSONL in: one {\"report\", \"task\"?, \"id\"?} per line")
    r.add_argument("-o", "--output", help="JSONL out for --batch")
    r.add_argument("--truncate", action="store_true", help="cut a report too long for the context (else refused)")
    r.add_argument("--json", action="store_true")
    _common(r)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("serve", help="the assistant over HTTP: JSON API, OpenAI-compatible chat, one web page")
    s.add_argument("--host", default="127.0.0.1", help="address to bind; any but loopback needs --api-key-file")
    s.add_argument("--port", type=values.bounded("port", 1, 65535), default=8080)
    s.add_argument("--api-key-file", help="file holding the bearer token clients must send")
    s.add_argument("--max-body", type=parse_size, default=256 * 1024, help="largest request body (default 256K)")
    s.add_argument("--max-report-chars", type=values.bounded("characters", 1, 1_000_000), default=32_000)
    _common(s)
    s.set_defaults(func=cmd_serve, interrupt_note="server stopped")
