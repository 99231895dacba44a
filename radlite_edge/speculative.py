"""Prompt-lookup speculative decoding for the extractive tasks, identical to plain greedy decoding.

NER, temporal comparison and abnormality detection answers copy spans of the report (entity
words, "(related to: effusion)", the CheXpert names in order). So the next tokens are often
predictable without a model: find the last n-gram of what has been written in the prompt or
in the answer so far and draft the ``k`` tokens that followed it there. One llama.cpp call
then evaluates the model's own last pick and the draft together (k+1 rows of one stream);
each row is read as the plain path reads its one-row step (``Engine._extend_sequence``: the
argmax, or the output language's pick), and the draft is kept while the model's pick equals
it. The model's pick at the first disagreement is kept too, and the rejected draft's cells
are dropped from the cache. On a CPU a step reads all the weights whatever its rows, so
accepted drafts come almost free.

Why it is gated: identity to plain greedy decoding needs each verified row to carry the bits
of a one-row step, and llama.cpp's CPU kernels are not batch-invariant. Measured on the
fine-tuned SmolLM2 default (one NER, temporal and abnormality sample each, every row of the
plain answer re-evaluated 2, 7 or 8 rows at a time; /tmp probe, this 2-core machine):
- flash attention off (the notebook's and the plain path's setting): no row of 141 kept its
  bits, on the merged F16 (max |Δlogit| 0.07, no argmax flip) and on the Q4_1 base (from the
  third row on; max |Δlogit| 1.2 and 5 argmax flips in 312 rows): several query rows of one
  stream take another attention product than one;
- flash attention on: the Q4_1 base kept every bit (312 of 312 rows; attention then reads
  each row alone and Q4_1 products are per row), the merged F16 none (its products over two
  or more rows take llamafile's tiled kernel, over one row ggml's dot product).
Without flash attention the difference depends on the shapes (on a tiny Q4_1 model 11 of 12
prompts kept their bits, one did not), so no probe can clear it. The same holds for a runtime
LoRA adapter: on the Q4_1 base with the default's adapter as GGUF LoRA (F32) and flash attention,
the probe passed on 5 of 9 extractive prompts, yet 2 of those 5 answers changed under
speculation (the adapter's F32 products over several rows are not a one-row step's).
Threads too: on the Q4_1 base with flash attention and no adapter, decoding on 2 threads, the
probe passed on all 24 extractive prompts of the benchmark, yet 4 of 24 answers changed; on one
thread 24 of 24 were identical (benchmarks/assistant_speed.py, seed 21).
So ``exact_rows`` requires flash attention (each row's attention computed alone, whatever the
batch), one thread, and no LoRA adapter applied, and then probes the weights' products on the request's own
prompt: its last rows one at a time and in batches of every verification width, bit for bit (a
tiled kernel differs on any input). Where any of these fails the answer is decoded by the plain
path, so it is identical in every case; speculation speeds up only engines that are
batch-invariant by construction (a quantized model with no adapter, flash attention on, one
thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .engine import Engine, Generation, Trace, _Sequence
from .tasks.constraint import OutputLanguage

EXTRACTIVE_TASKS = ("radiology_ner", "temporal_comparison", "abnormality_detection")
DRAFT_TOKENS = 6  # k: a verification call of k+1 = 7 rows stays under the 8-row kernels (engine.py)
NGRAM_MAX = 3  # the longest tail matched; longer tails rarely recur, shorter ones draft noise
NGRAM_MIN = 2  # a one-token tail (";", "\n-") recurs everywhere and drafts what its last copy said
PROBE_CALLS = 2  # batches of k+1 rows compared with one-row steps: a kernel change shows from the third row


@dataclass
class SpecStats:
    """What speculation did: verification calls, draft tokens offered and kept."""

    calls: int = 0
    drafted: int = 0
    accepted: int = 0

    def add(self, other: "SpecStats") -> None:
        self.calls, self.drafted, self.accepted = (self.calls + other.calls, self.drafted + other.drafted,
                                                   self.accepted + other.accepted)


def lookup_draft(history: Sequence[int], *, k: int = DRAFT_TOKENS, ngram_max: int = NGRAM_MAX,
                 ngram_min: int = NGRAM_MIN) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of ``history``'s last n-gram
    (the longest n first); none when no tail recurs."""
    if k <= 0:
        return []
    h = np.asarray(history, dtype=np.int64)
    for n in range(min(ngram_max, len(h) - 1), ngram_min - 1, -1):
        tail = h[-n:]
        # windows starting before the tail itself, latest first: the nearest copy is the likeliest
        starts = np.flatnonzero(h[:len(h) - n] == tail[0])[::-1]
        for start in starts:
            if np.array_equal(h[start:start + n], tail):
                draft = h[start + n:start + n + k]
                if len(draft):
                    return [int(t) for t in draft]
    return []


def exact_rows(engine: Engine, prompt: Sequence[int], *, width: int = DRAFT_TOKENS + 1) -> bool:
    """Whether rows evaluated up to ``width`` at a time in one stream carry the bits of one-row
    steps on this engine as loaded (model, adapters, context): flash attention, and the last rows
    of ``prompt`` evaluated one at a time and in batches of every width from 2 to ``width``.

    The prompt's own stream is left as the plain path makes it (its prefix on the shared stream):
    the probe works on a copy, so the request that follows starts from the plain path's bits."""
    import llama_cpp

    n = min(PROBE_CALLS * width, len(prompt) - 1)
    params = engine.llm.context_params
    # the conditions measured above, before any row is evaluated: flash attention, no adapter
    # (its products over several rows are not a one-row step's), one thread (work is split over
    # threads by the batch's shape)
    if (params.flash_attn_type != llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED or engine._lora
            or params.n_threads != 1 or params.n_threads_batch != 1 or n < 2):
        return False
    engine._context(len(prompt))
    # exactly the plain path's prompt evaluation (``Engine._evaluate_prompts``): a prefix made in
    # other batches would carry other bits wherever the products are not batch-invariant
    engine._set_prefix(list(prompt[:-1]))
    head, tail = len(prompt) - n, list(prompt[-n:])
    mem, seq = engine._mem, 1

    def run(step: int) -> list[np.ndarray]:
        llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)
        llama_cpp.llama_memory_seq_cp(mem, 0, seq, -1, -1)  # llama.cpp copies whole streams only
        llama_cpp.llama_memory_seq_rm(mem, seq, head, -1)
        rows: list[np.ndarray] = []
        for i in range(0, n, step):
            engine._decode([(t, head + i + j, seq, True) for j, t in enumerate(tail[i:i + step])],
                           prompt=True, rows=rows)
        return rows

    def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
        return len(a) == len(b) and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))

    try:
        # every width a verification call can have: kernels are chosen by the number of rows
        one = run(1)
        return all(same(one, run(step)) for step in range(2, width + 1))
    finally:
        llama_cpp.llama_memory_seq_rm(mem, seq, -1, -1)


def generate_speculative(engine: Engine, prompt: Sequence[int], *, max_tokens: int,
                         language: OutputLanguage | None = None, trace: Trace | None = None,
                         k: int = DRAFT_TOKENS, stats: SpecStats | None = None) -> Generation:
    """Greedy continuation of one token prompt, drafts verified k+1 rows a call.

    The tokens are the plain path's (``Engine.generate``) wherever ``exact_rows`` holds for the
    engine: every row is read by the same code as a one-row step and kept only after the tokens
    before it, which is the input the plain path would have given it. ``trace`` sees the rows a
    token is chosen from, as ``generate``'s.
    """
    import llama_cpp

    if len(prompt) + max_tokens > engine.n_ctx:
        raise RuntimeError(f"a prompt of {len(prompt)} tokens + {max_tokens} to generate does not fit "
                           f"the context of {engine.n_ctx} tokens (raise -c)")
    stats = stats if stats is not None else SpecStats()
    prompt = list(prompt)
    engine._context(len(prompt) + max_tokens)
    t0 = time.perf_counter()
    s = _Sequence(seq_id=1, pos=len(prompt), state=language.start() if language else None)
    row = engine._evaluate_prompts([prompt], len(prompt) - 1)[s.seq_id]
    if trace is not None:
        trace(0, 0, row)
    entries = engine._extend_sequence(s, row, max_tokens=max_tokens, language=language)
    while entries:
        # a call stays within the k+1 rows exact_rows probed; forced tokens beyond that go alone,
        # as the plain path sends them
        room = min(k, max_tokens - len(s.tokens), k + 1 - len(entries))
        draft = lookup_draft(prompt + s.tokens, k=room) if s.faithful and room > 0 else []
        batch = [(t, p, q, i == len(entries) - 1) for i, (t, p, q, _) in enumerate(entries)]
        batch += [(d, s.pos + j, s.seq_id, True) for j, d in enumerate(draft)]
        rows: list[np.ndarray] = []
        engine._decode(batch, rows=rows)
        stats.calls, stats.drafted = stats.calls + 1, stats.drafted + len(draft)
        entries = []
        for j, row in enumerate(rows):
            if trace is not None:
                trace(0, len(s.tokens), row)
            taken = engine._extend_sequence(s, row, max_tokens=max_tokens, language=language)
            if j < len(draft) and [e[0] for e in taken] == [draft[j]]:
                stats.accepted += 1  # the model's own pick: its cell is already in the cache
                continue
            if taken:
                # the model's pick differs from the draft (or ends it): cells from here on are stale
                llama_cpp.llama_memory_seq_rm(engine._mem, s.seq_id, taken[0][1], -1)
            entries = taken
            break
    llama_cpp.llama_memory_seq_rm(engine._mem, s.seq_id, -1, -1)
    return Generation(s.text.decode("utf-8", errors="ignore"), len(s.tokens), len(prompt), time.perf_counter() - t0)
