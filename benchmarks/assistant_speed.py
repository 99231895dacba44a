"""The assistant's speed on the embedded default: speculation, adapter switching, HTTP load.

    python -m benchmarks.assistant_speed [--n 8] [--reps 3] [-t 2] [--requests 16] [--quick]

In one run, on this machine (printed):
(a) speculative vs plain decoding of NER, temporal and abnormality answers, per sample side by
    side: the fine-tuned default as ``radlite run`` loads it, with attention as the notebook's
    and with flash attention, and the SmolLM2 Q4_1 base with flash attention. ``exact`` is the
    gate the assistant uses (``speculative.exact_rows``); speculation is run here even where the
    gate is shut, to count how many answers it would change. tokens/s medians with min–max.
(b) adapter switching: the base with two GGUF LoRA settings switched per request (seconds per
    switch, from the first answer after a switch beside one without) vs one merged model per
    route (seconds to load one, RSS of each arrangement).
(c) ``radlite serve`` in this process on loopback: requests/s, p50 and p95 latency at 1, 2
    and 8 concurrent clients mixing tasks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import psutil

from radlite_edge import machine
from radlite_edge.engine import Engine
from radlite_edge.speculative import EXTRACTIVE_TASKS, SpecStats, exact_rows, generate_speculative
from radlite_edge.tasks.registry import get_task
from radlite_edge.tasks.synthetic import make_task_samples


def _spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}–{max(xs):.1f})" if xs else "-"


def speculation(configs, samples, *, threads: int, reps: int, max_tokens: int | None) -> None:
    print("\n(a) speculative vs plain, tokens/s per answer: median (min–max)")
    print("model | flash attn | exact | task | plain tok/s | speculative tok/s | ratio | identical | drafts kept")
    for name, path, lora, fa in configs:
        engine = Engine(path, n_ctx=2048, n_threads=threads, n_parallel=1, flash_attn=fa)
        engine.llm.context_params.n_threads_batch = threads  # batches on the threads given, not every core
        if lora is not None:
            engine.use_lora([(engine.load_lora(lora), 1.0)])
        warm = engine.tokenize(get_task("radiology_ner").prompt(samples["radiology_ner"][0].input))
        engine.generate([warm], max_tokens=8)  # page the mapped weights in before anything is timed
        for task in EXTRACTIVE_TASKS:
            t = get_task(task)
            budget = max_tokens or t.max_tokens
            plain_r, spec_r, same, stats, exact = [], [], 0, SpecStats(), True
            for s in samples[task]:
                prompt = engine.tokenize(t.prompt(s.input))
                exact = exact and exact_rows(engine, prompt)
                for rep in range(reps):
                    a = engine.generate([prompt], max_tokens=budget)[0]
                    b = generate_speculative(engine, prompt, max_tokens=budget, stats=stats if rep == 0 else None)
                    plain_r.append(a.n_tokens / a.seconds)
                    spec_r.append(b.n_tokens / b.seconds)
                same += a.text == b.text
            ratio = statistics.median(spec_r) / statistics.median(plain_r)
            print(f"{name} | {fa} | {exact} | {task} | {_spread(plain_r)} | {_spread(spec_r)} | {ratio:.2f}x | "
                  f"{same}/{len(samples[task])} | {stats.accepted}/{stats.drafted}")
        engine.close()


def _rss() -> int:
    return psutil.Process().memory_info().rss


def switching(base, lora, merged, *, threads: int, reps: int) -> None:
    print("\n(b) adapter switch cost (one NER prompt, 1 answer token)")
    prompt_text = get_task("radiology_ner").prompt(make_task_samples("radiology_ner", 1, seed=5)[0].input)
    rss0 = _rss()
    engine = Engine(base, n_ctx=2048, n_threads=threads, n_parallel=1)
    handle = engine.load_lora(lora)
    prompt = engine.tokenize(prompt_text)
    switched, steady = [], []
    for _ in range(reps):
        for adapters in ([(handle, 1.0)], []):
            engine.use_lora(adapters)
            t0 = time.perf_counter()
            engine.generate([prompt], max_tokens=1)
            switched.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.generate([prompt], max_tokens=1)
            steady.append(time.perf_counter() - t0)
    rss_shared = _rss() - rss0
    engine.close()
    if merged is None:
        print(f"base + GGUF LoRA: switch {statistics.median(switched) - statistics.median(steady):.3f} s "
              f"(first answer {_spread(switched)} s vs {_spread(steady)} s); RSS +{rss_shared / 2**20:.0f} MiB; "
              "no merged model to compare")
        return
    rss1, loads, engines = _rss(), [], []
    for _ in range(2):  # two routes, a merged model each
        t0 = time.perf_counter()
        e = Engine(merged, n_ctx=2048, n_threads=threads, n_parallel=1)
        e.generate([e.tokenize(prompt_text)], max_tokens=1)
        loads.append(time.perf_counter() - t0)
        engines.append(e)
    rss_merged = _rss() - rss1
    for e in engines:
        e.close()
    print(f"base + GGUF LoRA, switched per request: {statistics.median(switched) - statistics.median(steady):.3f} s "
          f"per switch (first answer after a switch {_spread(switched)} s, without {_spread(steady)} s); "
          f"RSS +{rss_shared / 2**20:.0f} MiB for both routes")
    print(f"one merged model per route: {_spread(loads)} s to load one and answer; RSS +{rss_merged / 2**20:.0f} MiB "
          "for two routes")


def http_load(routes, samples, *, threads: int, requests: int, clients: tuple[int, ...], max_tokens: int) -> None:
    import socket

    import uvicorn

    from radlite_edge.assistant import Assistant
    from radlite_edge.server import AssistantServer, ServeLimits

    print(f"\n(c) radlite serve on loopback, {requests} requests per level, tasks mixed, max_tokens {max_tokens}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assistant = Assistant(routes, n_threads=threads)
    app = AssistantServer(assistant, limits=ServeLimits(timeout=600))
    server = uvicorn.Server(uvicorn.Config(app.app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    jobs = [(task, s.input) for task in EXTRACTIVE_TASKS + ("m_staging", "rads_assignment")
            for s in make_task_samples(task, 2, seed=7)]

    def call(i: int) -> float:
        task, report = jobs[i % len(jobs)]
        body = json.dumps({"report": report, "max_tokens": min(max_tokens, get_task(task).max_tokens)}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/tasks/{task}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
        return time.perf_counter() - t0

    call(0)  # load the model outside the timed levels
    print("clients | requests/s | p50 s | p95 s")
    for n in clients:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(n) as pool:
            lat = sorted(pool.map(call, range(requests)))
        wall = time.perf_counter() - t0
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
        print(f"{n} | {requests / wall:.2f} | {statistics.median(lat):.2f} | {p95:.2f}")
    server.should_exit = True
    assistant.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="samples per task in (a)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--requests", type=int, default=16, help="HTTP requests per concurrency level in (c)")
    ap.add_argument("--parts", default="abc", help="which parts to run, e.g. c (default abc)")
    ap.add_argument("--quick", action="store_true", help="a few short answers: proves the script runs, measures nothing")
    args = ap.parse_args(argv)
    from radlite_edge.cli.assistant import default_routes
    from radlite_edge.embedded import find_smollm2

    n, reps, requests = (1, 1, 4) if args.quick else (args.n, args.reps, args.requests)
    max_tokens = 24 if args.quick else None
    clients = (1, 2) if args.quick else (1, 2, 8)
    print(f"machine: {machine.one_line()}")
    routes = default_routes("strict")
    print(f"default: {routes.source} · {args.threads} threads · {n} samples per task × {reps} reps")
    route = routes["radiology_ner"]
    base = find_smollm2()
    configs = [("default", route.model, route.adapter, False), ("default", route.model, route.adapter, True)]
    if base is not None:
        configs.append(("SmolLM2 Q4_1 base", base, None, True))
    samples = {task: make_task_samples(task, n, seed=21) for task in EXTRACTIVE_TASKS}
    if "a" in args.parts:
        speculation(configs, samples, threads=args.threads, reps=reps, max_tokens=max_tokens)
    from radlite_edge.cli.assistant import ADAPTER_DEFAULT, LORA_FILE, MERGED_DEFAULT, _find

    lora = base.parent / LORA_FILE if base is not None else None
    if "b" not in args.parts:
        pass
    elif base is not None and lora.is_file():
        switching(base, lora, _find(MERGED_DEFAULT), threads=args.threads, reps=reps)
    else:
        print(f"\n(b) skipped: no {LORA_FILE} beside the base (radlite run exports it from {ADAPTER_DEFAULT} once)")
    if "c" in args.parts:
        http_load(routes, samples, threads=args.threads, requests=requests, clients=clients,
                  max_tokens=max_tokens or 256)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
