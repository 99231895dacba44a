"""Greedy generation over llama-cpp-python, two ways, on one loaded model.

- ``naive``: what the RadLite notebook does, one ``Llama.__call__`` per prompt
  (llama-cpp-python reuses the longest common token prefix with the previous prompt).
- ``generate``: a second llama.cpp context with one KV stream per sequence. The longest
  prefix shared by a group of prompts (system prompt, task instruction, few-shot turns) is
  evaluated once into sequence 0 and kept across groups; each prompt's stream starts as a
  copy of it, its own suffix is evaluated in one batch as the naive path would, and
  decoding advances every unfinished sequence by one token per llama.cpp call, so the
  weights are read once per step for the whole group. Tokens are chosen by argmax (as
  llama.cpp's greedy sampler, first index on ties), or under a closed output language
  (``tasks.constraint``).

Why this shape: llama.cpp's CPU kernels are not batch-invariant, and greedy outputs of a
model with near-tied logits fork on the last bit. Measured on the full-size Qwen2.5-3B
shape (scratch probe, AMD Zen 4): one stream per sequence makes a token's logits the same
bits whatever other sequences share its batch (one unified cache did not: attention then
runs over interleaved cells); a matrix product over 8 or more rows takes another kernel
than over fewer, so a decode step must stay under 8 sequences to equal the naive path's
one-row steps; and with llama.cpp's repacked weights (``repack=True``) the rows of one
product are also grouped by position in the batch, so only an engine loaded with
``repack=False`` computes every prompt row as the naive path does. With both, the two
paths give the same tokens; benchmarks/eval_speed.py counts them on the full-size shapes and
tests/test_eval.py holds them equal on a tiny model.

Under an output language a sequence is followed one token a step while the model's own
greedy choice stays in the language (those tokens are the naive path's, so its valid
answers are kept). Once the model's choice leaves the language, the naive path's text would
not have been a string of it and the answer is ours to complete: the bytes the language
then forces (a CheXpert label's name, "-RADS ") are written in one batch and the model is
read only where the language branches. A random model leaves at once, and its 14-label
CheXpert answer then takes about a decode call per label instead of one per token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import llm as llm_mod
from .errors import UserError
from .tasks.constraint import OutputLanguage, constrained_pick

MAX_STEP_ROWS = 7  # sequences per decode step that still take llama.cpp's few-row kernels (see above)
# The settings under which ``generate`` equals ``naive`` token for token (see above): the
# defaults of the engine, of ``radlite eval`` and of benchmarks/eval_speed.py.
DEFAULT_PARALLEL = MAX_STEP_ROWS
DEFAULT_REPACK = False
DEFAULT_CTX = 4096


def check_parallel(n_parallel: int) -> None:
    if not 1 <= n_parallel <= MAX_STEP_ROWS:
        raise UserError(f"--parallel {n_parallel}: choose 1 to {MAX_STEP_ROWS} (a decode step of "
                        f"{MAX_STEP_ROWS + 1} or more sequences takes other llama.cpp kernels than the naive path's)")


@dataclass
class Generation:
    text: str
    n_tokens: int  # generated, the stop token not counted
    prompt_tokens: int
    seconds: float  # wall time of the call that produced it, shared by a group


@dataclass
class DecodeCalls:
    """llama_decode calls of one kind: how many, their rows, their seconds."""

    calls: int = 0
    rows: int = 0
    seconds: float = 0.0

    def add(self, rows: int, seconds: float) -> None:
        self.calls, self.rows, self.seconds = self.calls + 1, self.rows + rows, self.seconds + seconds


@dataclass
class CallTimes:
    """Where ``generate``'s time went: the calls that evaluate prompts and those that write answers."""

    prompt: DecodeCalls = field(default_factory=DecodeCalls)
    answer: DecodeCalls = field(default_factory=DecodeCalls)


Trace = Callable[[int, int, np.ndarray], None]  # (prompt index, step, the logits row a token is chosen from)
_Entry = tuple[int, int, int, bool]  # a decode row: token, position, sequence, whether its logits are wanted


@dataclass
class _Sequence:
    """One prompt's decode state within a group."""

    seq_id: int  # its KV stream; stream 0 holds the shared prefix
    pos: int  # the cell its next token goes to
    state: object  # the output language's states after ``text`` (None without a language)
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    faithful: bool = True  # every token so far the model's own greedy choice


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Engine:
    def __init__(self, model_path: Path, *, n_ctx: int = DEFAULT_CTX, n_threads: int | None = None,
                 n_parallel: int = DEFAULT_PARALLEL, n_batch: int = 512, repack: bool = DEFAULT_REPACK,
                 flash_attn: bool = False):
        # flash_attn: off as the notebook's Llama; on, attention reads each row alone (speculative.py)
        check_parallel(n_parallel)
        self.model_path = Path(model_path)
        self.llm = llm_mod.load(self.model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, repack=repack,
                                flash_attn=flash_attn)
        # llama-cpp-python caps the batch at n_ctx: the parallel context takes the same cap, so
        # a prompt is split where the naive path splits it and no call exceeds the batch
        self.n_ctx, self.n_parallel, self.n_batch = n_ctx, n_parallel, int(self.llm.context_params.n_batch)
        self.n_vocab = self.llm.n_vocab()
        self._vocab = None
        self._ctx = None
        self._stream = 0  # cells per KV stream of the parallel context, grown as prompts need
        self._seq0: list[int] = []
        self._pieces: dict[int, bytes] = {}
        self._by_first_byte: dict[int, np.ndarray] | None = None
        self._lora: tuple[tuple[object, float], ...] = ()  # (llama_adapter_lora pointer, scale) on the parallel context
        self.times = CallTimes()  # accumulated over every generate call; reset by assigning a new one

    # ------------------------------------------------------------ helpers

    def tokenize(self, text: str) -> list[int]:
        # exactly as Llama.create_completion tokenizes a prompt
        return self.llm.tokenize(text.encode("utf-8"), special=True)

    def piece(self, token: int) -> bytes:
        if token not in self._pieces:
            self._pieces[token] = self.llm.detokenize([token], special=False)
        return self._pieces[token]

    def tokens_starting_with(self, first_bytes: set[int]) -> np.ndarray:
        """Token ids whose text starts with one of ``first_bytes`` (index built once)."""
        if self._by_first_byte is None:
            groups: dict[int, list[int]] = {}
            for tok in range(self.n_vocab):
                p = self.piece(tok)
                if p:
                    groups.setdefault(p[0], []).append(tok)
            self._by_first_byte = {b: np.array(ids, dtype=np.int64) for b, ids in groups.items()}
        parts = [self._by_first_byte[b] for b in first_bytes if b in self._by_first_byte]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def is_eog(self, token: int) -> bool:
        import llama_cpp

        if self._vocab is None:
            self._vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def forced_tokens(self, language: OutputLanguage, states, budget: int) -> list[int]:
        """Tokens for the bytes ``language`` forces from ``states`` on, up to ``budget``.

        The last token of the forced bytes is left to the model, to be picked together with
        the branch that follows (see ``_pick_tokens``), so a label is not split where the model
        would have joined it (": " + "negative" instead of ":" + " negative").
        """
        data = language.forced(states)
        if not data:
            return []
        tokens = self.llm.tokenize(data, add_bos=False, special=False)
        if b"".join(self.piece(t) for t in tokens) != data:
            return []  # a tokenization that does not spell the bytes back: step one token at a time
        return tokens[:-1][:budget]

    def text_of(self, tokens: list[int]) -> str:
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", errors="ignore")

    # -------------------------------------------------------------- naive

    def naive(self, prompt: str, *, max_tokens: int, grammar: str | None = None) -> Generation:
        """One ``Llama.__call__``, greedy, as the notebook does (grammar: llama.cpp's GBNF)."""
        kwargs = {}
        if grammar:
            from llama_cpp import LlamaGrammar

            kwargs["grammar"] = LlamaGrammar.from_string(grammar, verbose=False)
        t0 = time.perf_counter()
        out = self.llm(prompt, max_tokens=max_tokens, temperature=0.0, **kwargs)
        text = out["choices"][0]["text"]
        return Generation(text, out["usage"]["completion_tokens"], out["usage"]["prompt_tokens"],
                          time.perf_counter() - t0)

    # ---------------------------------------------------- parallel context

    def _context(self, need: int):
        """The parallel context, its streams holding at least ``need`` cells each.

        Streams are sized to the prompts at hand (a multiple of 256, llama.cpp's KV padding),
        not to ``n_ctx``: every stream is allocated in full, and 8 streams of 4096 cells of a
        4B model would be 4.7 GB. A longer prompt later rebuilds the context.
        """
        import llama_cpp

        if self._ctx is not None and need <= self._stream:
            return self._ctx
        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx, self._seq0 = None, []
        self._stream = min(self.n_ctx, -(-need // 256) * 256)
        params = type(self.llm.context_params).from_buffer_copy(self.llm.context_params)
        params.n_seq_max = self.n_parallel + 1
        params.n_ctx = self._stream * (self.n_parallel + 1)
        params.kv_unified = False  # a stream per sequence (see the module docstring)
        self._ctx = llama_cpp.llama_init_from_model(self.llm.model, params)
        if not self._ctx:
            raise RuntimeError("llama.cpp could not create the parallel context")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._apply_lora()
        return self._ctx

    # ------------------------------------------------------------- LoRA

    def load_lora(self, path: Path):
        """A GGUF LoRA loaded over this engine's model (llama.cpp frees it with the model)."""
        import llama_cpp

        handle = llama_cpp.llama_adapter_lora_init(self.llm.model, str(path).encode("utf-8"))
        if not handle:
            raise UserError(f"{path}: llama.cpp cannot apply it to {self.model_path.name} (a GGUF LoRA "
                            "exported for this base is needed: radlite export-lora)")
        return handle

    def use_lora(self, adapters: Sequence[tuple[object, float]]) -> None:
        """The LoRA adapters (``load_lora`` handles, scales) that the following ``generate`` calls apply.

        Switching costs no reload: llama.cpp adds each adapter's product beside the base
        weights at every matrix multiply. A change drops the cached shared prefix, whose
        keys and values were computed through the other adapters.
        """
        import ctypes

        def address(handle) -> int:
            return ctypes.cast(handle, ctypes.c_void_p).value or 0

        adapters = tuple((h, float(s)) for h, s in adapters)
        if [(address(h), s) for h, s in adapters] != [(address(h), s) for h, s in self._lora]:
            self._lora = adapters
            self.forget_prefix()
            self._apply_lora()

    def _apply_lora(self) -> None:
        import ctypes

        import llama_cpp

        if self._ctx is None:
            return  # set when the context is made
        n = len(self._lora)
        handles = (llama_cpp.llama_adapter_lora_p_ctypes * max(n, 1))(*(h for h, _ in self._lora))
        scales = (ctypes.c_float * max(n, 1))(*(s for _, s in self._lora))
        if llama_cpp.llama_set_adapters_lora(self._ctx, handles if n else None, n, scales if n else None):
            raise RuntimeError("llama.cpp refused to set the LoRA adapters on the context")

    def forget_prefix(self) -> None:
        """Drop the cached shared prefix, so the next group starts from an empty cache."""
        import llama_cpp

        if self._ctx is not None:
            llama_cpp.llama_memory_seq_rm(self._mem, 0, -1, -1)
        self._seq0 = []

    def close(self) -> None:
        import llama_cpp

        if self._ctx is not None:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        self.llm.close()

    def _decode(self, entries: list[_Entry], prompt: bool = False,
                rows: list[np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """Evaluate (token, position, sequence, want logits) entries; logits by sequence (the last
        wanted row of each), and every wanted row in order appended to ``rows`` when given.

        Timed into ``self.times``, as prompt evaluation or as answer writing."""
        import llama_cpp

        ctx, b, out = self._ctx, self._batch, {}
        for start in range(0, len(entries), self.n_batch):
            t0 = time.perf_counter()
            chunk = entries[start:start + self.n_batch]
            b.n_tokens = len(chunk)
            for i, (tok, pos, seq, want) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, want
                b.seq_id[i][0] = seq
            rc = llama_cpp.llama_decode(ctx, b)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc}) in a stream of {self._stream} cells")
            for i, (_, _, seq, want) in enumerate(chunk):
                if want:
                    ptr = llama_cpp.llama_get_logits_ith(ctx, i)
                    out[seq] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
                    if rows is not None:
                        rows.append(out[seq])
            (self.times.prompt if prompt else self.times.answer).add(len(chunk), time.perf_counter() - t0)
        return out

    def _set_prefix(self, prefix: list[int]) -> None:
        import llama_cpp

        keep = _common_prefix(self._seq0, prefix)
        if keep < len(self._seq0):
            llama_cpp.llama_memory_seq_rm(self._mem, 0, keep, -1)
            self._seq0 = self._seq0[:keep]
        if len(prefix) > keep:
            self._decode([(t, keep + i, 0, False) for i, t in enumerate(prefix[keep:])], prompt=True)
            self._seq0 = list(prefix)

    def _constrained_pick(self, row: np.ndarray, states, language: OutputLanguage, faithful: bool):
        """(token or None to stop, states after it, still faithful) for one sequence's logits row.

        A faithful sequence takes the best token the language allows, and stays faithful while
        that is the model's own argmax. A sequence that has left prefers a token reaching past
        the bytes the language forces, into the branch: one that only spells them would cost a
        decode call and say nothing (where they complete a label, spelling them is a choice: to
        stop).
        """
        def pick(reach: int):
            # The model's own choice, when the language takes it, is what constrained_pick would
            # return (it ranks by logit, ties to the lowest id as argmax): tried first, it spares
            # building the vocabulary index (seconds on a 49k vocabulary) and scanning candidates.
            top = int(np.argmax(row))
            if not self.is_eog(top) and self.piece(top):
                after = language.advance(states, self.piece(top))
                if after and len(self.piece(top)) >= reach:
                    return top, after
            return constrained_pick(row, states, language, self.piece, self.is_eog, self.tokens_starting_with, reach)

        def past_forced() -> int:
            forced = language.forced(states)
            return len(forced) + (not language.is_end(language.advance(states, forced)))

        picked = pick(0 if faithful else past_forced())
        if faithful and picked is not None and picked[0] != int(np.argmax(row)):
            faithful = False  # the model's own choice leaves the language here
            picked = pick(past_forced())
        return (*picked, faithful) if picked else (None, states, faithful)

    def generate(self, prompts: Sequence[list[int]], *, max_tokens: int, language: OutputLanguage | None = None,
                 trace: Trace | None = None) -> list[Generation]:
        """Greedy continuations of token prompts, in groups of ``n_parallel`` sequences.

        ``trace(prompt index, step, logits)`` sees every logits row a token is chosen from.
        """
        for p in prompts:
            if len(p) + max_tokens > self.n_ctx:
                raise RuntimeError(f"a prompt of {len(p)} tokens + {max_tokens} to generate does not fit "
                                   f"the context of {self.n_ctx} tokens (raise -c)")
        results: list[Generation] = []
        for first in range(0, len(prompts), self.n_parallel):
            group = [list(p) for p in prompts[first:first + self.n_parallel]]
            results += self._generate_group(group, first=first, max_tokens=max_tokens, language=language,
                                            trace=trace)
        return results

    def _generate_group(self, group: list[list[int]], *, first: int, max_tokens: int,
                        language: OutputLanguage | None, trace: Trace | None) -> list[Generation]:
        """One group's generations; ``first`` is its first prompt's index among all prompts (for ``trace``)."""
        import llama_cpp

        self._context(max(len(p) for p in group) + max_tokens)
        # one token of every prompt stays its own, so each stream has a row to read logits from
        shared = min(min(_common_prefix(group[0], p) for p in group), min(len(p) for p in group) - 1)
        t0 = time.perf_counter()
        logits = self._evaluate_prompts(group, shared)
        seqs = [_Sequence(seq_id=j + 1, pos=len(p), state=language.start() if language else None)
                for j, p in enumerate(group)]
        self._decode_answers(seqs, logits, first=first, max_tokens=max_tokens, language=language, trace=trace)
        seconds = time.perf_counter() - t0
        for s in seqs:
            llama_cpp.llama_memory_seq_rm(self._mem, s.seq_id, -1, -1)
        return [Generation(s.text.decode("utf-8", errors="ignore"), len(s.tokens), len(p), seconds)
                for s, p in zip(seqs, group)]

    def _evaluate_prompts(self, group: list[list[int]], shared: int) -> dict[int, np.ndarray]:
        """Each prompt's stream: the cached ``shared`` prefix, then its own suffix; last logits by stream."""
        import llama_cpp

        self._set_prefix(group[0][:shared])
        logits = {}
        for seq, p in enumerate(group, start=1):
            llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, 0, seq, -1, -1)
            # each suffix in a batch of its own: the rows the naive path evaluates together
            logits.update(self._decode([(t, shared + k, seq, k == len(p) - shared - 1)
                                        for k, t in enumerate(p[shared:])], prompt=True))
        return logits

    def _decode_answers(self, seqs: list[_Sequence], logits: dict[int, np.ndarray], *, first: int, max_tokens: int,
                        language: OutputLanguage | None, trace: Trace | None) -> None:
        """Advance every unfinished sequence one pick per step until none has rows left to evaluate."""
        active = seqs
        while active:
            step, bulk = [], []  # one row per faithful sequence; rows of left sequences
            still: list[_Sequence] = []
            for s in active:
                row = logits[s.seq_id]
                if trace is not None:
                    trace(first + s.seq_id - 1, len(s.tokens), row)
                entries = self._extend_sequence(s, row, max_tokens=max_tokens, language=language)
                if entries:
                    (step if s.faithful else bulk).extend(entries)
                    still.append(s)
            active = still
            logits = {}
            # separate calls: a faithful row must meet the kernels of the naive path's one-row steps
            for entries in (step, bulk):
                if entries:
                    logits.update(self._decode(entries))

    def _extend_sequence(self, s: _Sequence, row: np.ndarray, *, max_tokens: int,
                         language: OutputLanguage | None) -> list[_Entry]:
        """Append to ``s`` the tokens it takes from ``row``; the decode entries that give its next
        logits row, none once it is finished."""
        taken = self._pick_tokens(s, row, max_tokens=max_tokens, language=language)
        if not taken:
            return []
        for t in taken:
            s.tokens.append(t)
            s.text += self.piece(t)
        if language is not None:
            s.state = language.advance(s.state, b"".join(self.piece(t) for t in taken[1:]))
            if not language.can_go_on(s.state):
                return []  # a complete label nothing can extend: the next pick could only stop
        if len(s.tokens) >= max_tokens:
            return []
        entries = [(t, s.pos + k, s.seq_id, k == len(taken) - 1) for k, t in enumerate(taken)]
        s.pos += len(taken)
        return entries

    def _pick_tokens(self, s: _Sequence, row: np.ndarray, *, max_tokens: int,
                     language: OutputLanguage | None) -> list[int]:
        """The tokens ``s`` takes from ``row`` (none: it stops). The state ``s`` holds after them
        covers the first only: the caller advances it over the rest once they are appended."""
        if language is None:
            tok = int(np.argmax(row))
            return [] if self.is_eog(tok) else [tok]
        tok, s.state, s.faithful = self._constrained_pick(row, s.state, language, s.faithful)
        if tok is None:
            return []
        if s.faithful:
            return [tok]
        # a sequence that has left the model's own choices writes the bytes the language forces in the same call
        return [tok, *self.forced_tokens(language, s.state, max(0, max_tokens - len(s.tokens) - 1))]
