"""Prompt-lookup speculative decoding: drafts, the batch-invariance probe, identity to plain greedy."""

from __future__ import annotations

import pytest

from radlite_edge.assistant import Assistant
from radlite_edge.engine import Engine
from radlite_edge.routes import Route, Routes
from radlite_edge.speculative import EXTRACTIVE_TASKS, SpecStats, exact_rows, generate_speculative, lookup_draft
from radlite_edge.tasks.registry import get_task
from radlite_edge.tasks.synthetic import make_task_samples

ANSWER = 48  # tokens: a random model writes to the limit, and falls into loops that drafts predict


def _samples(n: int, seed: int = 3):
    return [(task, s.input) for task in EXTRACTIVE_TASKS for s in make_task_samples(task, n, seed=seed)]


def test_lookup_drafts_what_followed_the_latest_longest_tail():
    #          0  1  2  3  4  5  6  7  8  9
    history = [5, 6, 7, 8, 9, 5, 6, 1, 2, 6]
    assert lookup_draft(history, k=3) == []  # only the 1-gram [6] recurs, below NGRAM_MIN
    assert lookup_draft(history, k=3, ngram_min=1) == [1, 2, 6]  # its latest copy is at 6
    assert lookup_draft(history + [7], k=2) == [8, 9]  # the 2-gram [6, 7] recurs at 1
    assert lookup_draft([1, 2, 3, 9, 1, 2, 4, 8, 1, 2], k=2, ngram_min=2) == [4, 8]  # the latest copy wins
    assert lookup_draft([1, 2, 3, 4], k=3) == []  # no tail recurs
    assert lookup_draft([1, 2, 1, 2], k=0) == []
    assert lookup_draft([3, 1, 2, 3, 1, 2], k=4, ngram_max=3) == [3, 1, 2]  # stops at the history's end


@pytest.mark.parametrize("outtype", ["q4_1", "f32"])
def test_speculation_equals_plain_greedy_token_for_token(tiny_gguf, outtype):
    """Where the probe finds rows batch-invariant, drafts are verified and kept; the answers are the plain path's."""
    engine = Engine(tiny_gguf("tiny-qwen2", outtype), n_ctx=2048, n_threads=1, n_parallel=1, flash_attn=True)
    engine.llm.context_params.n_threads_batch = 1  # set before the parallel context is made
    total = SpecStats()
    for task, report in _samples(2):
        t = get_task(task)
        prompt = engine.tokenize(t.prompt(report))
        for language in {None, t.language}:
            plain_rows, spec_rows = [], []
            plain = engine.generate([prompt], max_tokens=ANSWER, language=language,
                                    trace=lambda i, step, row: plain_rows.append((step, row.argmax())))[0]
            stats = SpecStats()
            spec = generate_speculative(engine, prompt, max_tokens=ANSWER, language=language, stats=stats,
                                        trace=lambda i, step, row: spec_rows.append((step, row.argmax())))
            assert (spec.text, spec.n_tokens, spec.prompt_tokens) == (plain.text, plain.n_tokens, plain.prompt_tokens)
            assert stats.calls <= plain.n_tokens and stats.accepted <= stats.drafted
            if exact_rows(engine, prompt):
                assert spec_rows == plain_rows  # the same rows chose the same tokens, step by step
            total.add(stats)
    if outtype == "q4_1":  # per-row Q4_1 products, per-row flash attention: verification keeps the bits
        assert exact_rows(engine, prompt)
        assert total.accepted > 0
    engine.close()


def test_the_assistant_speculates_only_where_rows_are_exact_and_answers_the_same(tiny_gguf):
    routes = Routes({task: Route(task, tiny_gguf("tiny-qwen2", "q4_1"), decoding="strict", max_tokens=ANSWER)
                     for task in EXTRACTIVE_TASKS} | {
        "m_staging": Route("m_staging", tiny_gguf("tiny-qwen2", "q4_1"))}, source="test routes")
    f32 = Routes({"radiology_ner": Route("radiology_ner", tiny_gguf("tiny-qwen2", "f32"), decoding="strict",
                                         max_tokens=ANSWER)}, source="test routes")
    jobs = _samples(1) + [("m_staging", "Multiple hypodense liver lesions consistent with metastatic disease.")]
    with Assistant(routes, n_threads=1, flash_attn=True, speculative=True) as fast, \
            Assistant(routes, n_threads=1, flash_attn=True, speculative=False) as plain:
        for task, report in jobs:
            a, b = fast.answer(report, task), plain.answer(report, task)
            assert (a.text, a.tokens, a.value) == (b.text, b.tokens, b.value)
        assert fast.spec.calls > 0 and fast.spec.accepted > 0 and plain.spec.calls == 0
    with Assistant(routes, n_threads=1) as notebook:  # attention as the notebook's call: never batch-verified
        notebook.answer(jobs[0][1], jobs[0][0])
        assert notebook.spec.calls == 0
    engine = Engine(tiny_gguf("tiny-qwen2", "f32"), n_ctx=2048, n_threads=1, n_parallel=1)
    with Assistant(f32, n_threads=1) as assistant:
        report = jobs[0][1]
        answer = assistant.answer(report, "radiology_ner")
        naive = engine.naive(get_task("radiology_ner").prompt(report), max_tokens=ANSWER)  # the notebook's call
        assert answer.text == naive.text
        exact = exact_rows(engine, engine.tokenize(get_task("radiology_ner").prompt(report)))
        assert (assistant.spec.calls > 0) == exact  # F32 rows over two or more take other kernels here: plain
    engine.close()


@pytest.mark.slow
def test_the_fine_tuned_smollm2_default_answers_the_same_with_speculation():
    """The embedded default as `radlite run` loads it (merged F16, else Q4_1 + the adapter as GGUF LoRA),
    and the SmolLM2 Q4_1 base with flash attention, where verification really keeps drafts."""
    from radlite_edge.cli.assistant import MERGED_DEFAULT, _find, default_routes
    from radlite_edge.embedded import find_smollm2

    if _find(MERGED_DEFAULT) is None and find_smollm2() is None:
        pytest.skip("neither the merged default nor the SmolLM2 base (make smollm2) is here")
    routes = default_routes("strict")  # any failure past this point is the project's, not the machine's
    jobs = _samples(3, seed=11)
    for flash_attn in (False, True):
        with Assistant(routes, n_threads=1, flash_attn=flash_attn, speculative=True) as fast, \
                Assistant(routes, n_threads=1, flash_attn=flash_attn, speculative=False) as plain:
            for task, report in jobs:
                a, b = fast.answer(report, task), plain.answer(report, task)
                assert (a.text, a.tokens) == (b.text, b.tokens), (flash_attn, task, report)
            print(f"flash_attn={flash_attn}: speculative {fast.spec}")
    base = find_smollm2()
    if base is None:
        return
    engine = Engine(base, n_ctx=2048, n_threads=1, n_parallel=1, flash_attn=True)
    total = SpecStats()
    for task, report in jobs:
        prompt = engine.tokenize(get_task(task).prompt(report))
        assert exact_rows(engine, prompt)  # Q4_1 products per row, attention per row: the bits hold
        plain = engine.generate([prompt], max_tokens=get_task(task).max_tokens)[0]
        spec = generate_speculative(engine, prompt, max_tokens=get_task(task).max_tokens, stats=total)
        assert (spec.text, spec.n_tokens) == (plain.text, plain.n_tokens), (task, report)
    assert total.accepted > 0
    engine.close()
