"""Quantization fidelity: how far each level's next-token distributions are from F16's.

For every scored position of a held-out text: the KL divergence KL(P_F16 || P_level)
over the full vocabulary, whether the two agree on the most likely token, and each
model's log-likelihood of the actual next token (perplexity). The text is streamed in
windows of ``ctx`` tokens, each evaluated from an empty cache by every model, with
logits for every position; a window's logits are reduced to per-position figures in
row blocks and dropped. Memory holds the models, one window of logits per model and
one float per scored position (for the median and p99), whatever the text's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import gguf
import numpy as np
from rich.table import Table

from radlite_edge.convert.inspect_gguf import open_model, summarize
from radlite_edge.errors import UserError
from radlite_edge.identity import ModelId, identify_model
from radlite_edge.limits import check_context
from radlite_edge.llm import load
from radlite_edge.results import FidelityParams, Result
from radlite_edge.synth.corpus import radiology_corpus
from radlite_edge.token_windows import joined_pieces, text_pieces, token_windows


# The tokenizer is trained on the synthetic corpus with seed 0 and the importance matrix
# is calibrated on seed 1: the default held-out text is seed 2.
HELD_OUT_SEED = 2
HELD_OUT_REPORTS = 400
DEFAULT_CTX = 512
_ROW_BLOCK = 64  # rows of logits turned into float64 log-probabilities at a time


@dataclass
class Fidelity:
    path: Path
    level: str
    n_positions: int
    kld_mean: float
    kld_sd: float
    kld_median: float
    kld_p99: float
    top1: float
    ppl: float
    ppl_ref: float
    bytes: int
    bits_per_weight: float

    @property
    def ppl_ratio(self) -> float:
        return self.ppl / self.ppl_ref

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path), "ppl_ratio": self.ppl_ratio}


class _Tally:
    """Running figures for one candidate: KLD per position, top-1 matches, summed NLL."""

    def __init__(self) -> None:
        self.kld: list[np.ndarray] = []
        self.same_top = 0
        self.nll = 0.0
        self.n = 0


def level_name(path: Path) -> str:
    """The level of a file, as its identity names it (identity.py)."""
    return identify_model(path).level


def held_out_pieces(text: Path | None) -> tuple[Iterable[str], str]:
    if text is not None:
        return text_pieces(text), str(text)
    name = f"radlite synthetic radiology reports (seed {HELD_OUT_SEED}, {HELD_OUT_REPORTS} reports)"
    return joined_pieces(radiology_corpus(HELD_OUT_REPORTS, seed=HELD_OUT_SEED)), name


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=1, keepdims=True)
    x -= np.log(np.exp(x).sum(axis=1, keepdims=True))
    return x


def _open(path: Path, ctx: int, n_threads: int | None):
    open_model(path)  # a clear error for a non-GGUF, truncated or non-model file before llama.cpp sees it
    return load(path, n_ctx=ctx, n_threads=n_threads, n_batch=ctx, n_ubatch=ctx, logits_all=True)


def check_same_model(reference: Path, candidates: Sequence[Path]) -> None:
    """Refuse a candidate that is not a level of the reference's model: another architecture,
    vocabulary, or set of tensor names and shapes (KLD between two models measures nothing)."""
    def shape_of(path: Path) -> tuple[str, dict[str, tuple[int, ...]]]:
        reader = open_model(path)
        arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
        return arch, {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors}

    ref_arch, ref_shapes = shape_of(reference)
    for path in candidates:
        arch, shapes = shape_of(path)
        if arch != ref_arch:
            raise UserError(f"{path}: a {arch} model, {reference} is {ref_arch}: compare levels of the same model")
        differ = sorted(n for n in set(shapes) | set(ref_shapes) if shapes.get(n) != ref_shapes.get(n))
        if differ:
            raise UserError(f"{path}: tensors differ from {reference}'s ({differ[0]}"
                            f"{f' and {len(differ) - 1} more' if len(differ) > 1 else ''}): compare levels of the "
                            "same model")


def _score_window(window: list[int], ref, models, tallies) -> float:
    """Evaluate one window in every model; add each candidate's KLD, top-1 matches and NLL to its
    tally, ``_ROW_BLOCK`` rows of logits at a time; return the reference's NLL."""
    n = len(window) - 1  # positions with a next token to predict
    for llm in (ref, *models):
        llm.reset()
        llm.eval(window)
    nxt = np.asarray(window[1:], dtype=np.int64)
    ref_nll = 0.0
    for a in range(0, n, _ROW_BLOCK):
        b = min(n, a + _ROW_BLOCK)
        rows = np.arange(b - a)
        lp0 = _log_softmax(ref.scores[a:b])
        p0 = np.exp(lp0)
        top0 = lp0.argmax(axis=1)
        ref_nll -= lp0[rows, nxt[a:b]].sum()
        for llm, tally in zip(models, tallies):
            lp1 = _log_softmax(llm.scores[a:b])
            # a KLD is never negative: what float rounding takes below zero is zero
            tally.kld.append(np.maximum(np.einsum("ij,ij->i", p0, lp0 - lp1), 0.0).astype(np.float32))
            tally.same_top += int((lp1.argmax(axis=1) == top0).sum())
            tally.nll -= lp1[rows, nxt[a:b]].sum()
            tally.n += b - a
    return ref_nll


def _fidelity_row(path: Path, tally: _Tally, ppl_ref: float) -> Fidelity:
    kld = np.concatenate(tally.kld)
    tally.kld.clear()
    summary = summarize(path)
    return Fidelity(
        path=path, level=level_name(path), n_positions=tally.n, kld_mean=float(kld.mean(dtype=np.float64)),
        kld_sd=float(kld.std(ddof=1, dtype=np.float64)) if kld.size > 1 else 0.0,
        kld_median=float(np.median(kld)), kld_p99=float(np.percentile(kld, 99)), top1=tally.same_top / tally.n,
        ppl=math.exp(tally.nll / tally.n), ppl_ref=ppl_ref, bytes=summary.file_bytes,
        bits_per_weight=summary.bits_per_weight,
    )


@dataclass
class _TextScore:
    """What scoring the held-out text leaves: the candidates' tallies and the reference's totals."""

    tallies: list[_Tally]
    ref_nll: float = 0.0
    n_positions: int = 0
    n_windows: int = 0


def _checked_inputs(reference: Path, candidates: Sequence[Path], ctx: int) -> tuple[Path, list[Path]]:
    """The files as paths, once the run is known to make sense (before any model is loaded)."""
    if not candidates:
        raise UserError("give one or more quantized GGUF files to compare with the reference")
    if ctx < 2:
        raise UserError(f"-c {ctx}: a window needs at least 2 tokens")
    reference = Path(reference)
    candidates = [Path(c) for c in candidates]
    check_context(ctx, identify_model(reference).n_ctx_train, what="-c")
    check_same_model(reference, candidates)
    return reference, candidates


def _score_text(ref, models, pieces: Iterable[str], *, ctx: int, max_windows: int | None,
                progress: Callable[[int, int], None] | None) -> _TextScore:
    """Score the text window by window; a window starts with the reference's BOS where its vocabulary adds one."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(ref.model)
    bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
    score = _TextScore(tallies=[_Tally() for _ in models])

    def tokenize(piece: str) -> list[int]:
        return ref.tokenize(piece.encode("utf-8"), add_bos=False, special=False)

    for window in token_windows(tokenize, pieces, ctx, first_token=bos, keep_partial=True, max_windows=max_windows):
        score.ref_nll += _score_window(window, ref, models, score.tallies)
        score.n_positions += len(window) - 1
        score.n_windows += 1
        if progress:
            progress(score.n_windows, score.n_positions)
    return score


def measure_fidelity(
    reference: Path,
    candidates: Sequence[Path],
    *,
    text: Path | None = None,
    ctx: int = DEFAULT_CTX,
    max_windows: int | None = None,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Fidelity], dict]:
    """Fidelity of each candidate against ``reference``; also the run's facts (tokens, text)."""
    reference, candidates = _checked_inputs(reference, candidates, ctx)
    pieces, text_name = held_out_pieces(text)
    ref = _open(reference, ctx, n_threads)
    models = []
    try:
        for path in candidates:
            models.append(_open(path, ctx, n_threads))
        score = _score_text(ref, models, pieces, ctx=ctx, max_windows=max_windows, progress=progress)
    finally:
        for llm in (ref, *models):
            llm.close()
    if score.n_positions == 0:
        raise UserError(f"{text_name}: too short to score: it needs at least 2 tokens")
    ppl_ref = math.exp(score.ref_nll / score.n_positions)
    facts = {"reference": str(reference), "text": text_name, "ctx": ctx, "windows": score.n_windows,
             "positions": score.n_positions, "ppl_reference": ppl_ref}
    return [_fidelity_row(path, tally, ppl_ref) for path, tally in zip(candidates, score.tallies)], facts


def to_results(rows: Sequence[Fidelity], facts: dict, *, reference: ModelId) -> list[Result]:
    """The figures as result records (DESIGN.md): one per metric and level, each carrying the
    identity of the file it measures and, in its params, the reference's.

    ``n`` is the number of scored positions; ``stat`` says what the value is over them.
    """
    out = []
    for r in rows:
        measured = identify_model(r.path)
        params = FidelityParams(**facts, file=str(r.path), reference_id=reference)

        def rec(metric: str, value: float, *, unit: str = "", stat: str = "mean", spread: float | None = None,
                n: int = r.n_positions) -> Result:
            return Result(model=measured.name, level=r.level, benchmark="fidelity", metric=metric, value=float(value),
                          n=n, spread=spread, unit=unit, stat=stat, params=params, model_id=measured)

        out += [
            rec("kld_mean", r.kld_mean, unit="nat", spread=r.kld_sd), rec("kld_median", r.kld_median, unit="nat",
                                                                             stat="median"),
            rec("kld_p99", r.kld_p99, unit="nat", stat="p99"), rec("top1_agreement", r.top1),
            rec("ppl", r.ppl), rec("ppl_ratio", r.ppl_ratio), rec("ppl_reference", r.ppl_ref),
            rec("file_bytes", r.bytes, unit="B", n=1), rec("bits_per_weight", r.bits_per_weight, unit="bit", n=1),
        ]
    return out


def fidelity_table(rows: Sequence[Fidelity], facts: dict) -> Table:
    """Fits 80 columns: the numbers are never cut; a long file name is abbreviated instead."""
    table = Table(title=f"fidelity vs {Path(facts['reference']).name} · {facts['positions']} positions in "
                        f"{facts['windows']} windows of {facts['ctx']} tokens · PPL(ref) {facts['ppl_reference']:.4g}")
    table.add_column("level / file", no_wrap=True, overflow="ellipsis", max_width=20)
    for col in ("MiB", "bit/w", "KLD mean", "KLD p99", "top-1", "PPL ratio"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(f"{r.level}\n[dim]{r.path.name}[/dim]", f"{r.bytes / 2**20:.1f}", f"{r.bits_per_weight:.2f}",
                      f"{r.kld_mean:.3g}", f"{r.kld_p99:.3g}", f"{100 * r.top1:.1f}%", f"{r.ppl_ratio:.4f}")
    table.caption = "KLD in nats per position against the reference (median in --json and the records)"
    return table
