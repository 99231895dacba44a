"""The evaluation runner end to end on a tiny model: paths agree, resume, few-shot, bad data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from radlite_edge.cli import main
from radlite_edge.cli.render import eval_table
from radlite_edge.engine import MAX_STEP_ROWS, Engine
from radlite_edge.evaluation import EvalSettings, evaluate
from radlite_edge.tasks import TASKS
from radlite_edge.tasks.samples import read_dir, write_jsonl
from radlite_edge.tasks.synthetic import make_suite


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    suite = make_suite(6, seed=3, n_train=8)
    write_jsonl(d / "suite.train.jsonl", [s for s in suite if s.split == "train"])
    write_jsonl(d / "suite.test.jsonl", [s for s in suite if s.split == "test"])
    return d


@pytest.fixture(scope="module")
def q8_model(tiny_gguf):
    # tiny-qwen2's tied unit-scale embeddings give logits several units apart, so the
    # rounding differences between batch shapes in llama.cpp's kernels cannot flip a greedy
    # choice: the fast path must reproduce the naive path exactly, token for token.
    return tiny_gguf("tiny-qwen2", "q8_0")


def test_fast_path_equals_naive_path_token_for_token(q8_model, data_dir):
    samples = [s for s in read_dir(data_dir) if s.split == "test"]
    engine = Engine(q8_model, n_parallel=4)
    for few_shot in (0, 2):
        for task in TASKS.values():
            todo = [s for s in samples if s.task == task.name]
            shots = [s for s in read_dir(data_dir) if s.split == "train" and s.task == task.name][:few_shot]
            prompts = [task.prompt(s.input, shots) for s in todo]
            naive_gens = [engine.naive(p, max_tokens=task.max_tokens) for p in prompts]
            naive = [g.text for g in naive_gens]
            fast = [g.text for g in engine.generate([engine.tokenize(p) for p in prompts], max_tokens=task.max_tokens)]
            for n, f in zip(naive_gens, fast):
                if n.n_tokens > task.max_tokens:
                    # llama-cpp-python runs past max_tokens while its text ends in a byte that could
                    # start a UTF-8 character (random tiny models write such bytes): same start
                    assert n.text.startswith(f), task.name
                else:
                    assert f == n.text, task.name
            if task.language:
                constrained = engine.generate([engine.tokenize(p) for p in prompts], max_tokens=task.max_tokens,
                                              language=task.language)
                for free, con in zip(naive, constrained):
                    assert task.parse(con.text) not in (None, {})  # always a valid answer
                    if task.parse(free) not in (None, {}) and task.name != "abnormality_detection":
                        assert task.parse(con.text) == task.parse(free)
    engine.close()


def test_runner_records_summaries_and_few_shot_never_leaks(q8_model, data_dir, tmp_path):
    samples = read_dir(data_dir)
    summary = evaluate(q8_model, samples, tmp_path, tasks="n_staging,radiology_nli,impression_generation",
                       settings=EvalSettings(few_shot=2, n=5), n_parallel=3)
    assert set(summary.tasks) == {"n_staging", "radiology_nli", "impression_generation"}
    for entry in summary.tasks.values():
        assert entry.n == 5 and entry.ci95[0] <= entry.value <= entry.ci95[1]
    recs = [json.loads(line) for line in (tmp_path / f"{q8_model.stem}.samples.jsonl").read_text().splitlines()]
    evaluated = {r["id"] for r in recs}
    train_ids = {s.id for s in samples if s.split == "train"}
    for r in recs:
        assert len(r["few_shot_ids"]) == 2
        assert not set(r["few_shot_ids"]) & evaluated and set(r["few_shot_ids"]) <= train_ids
        assert r["settings"]["few_shot"] == 2 and r["tokens"] >= 1 and r["seconds"] > 0
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["benchmark"] for r in results} == set(summary.tasks) and all(r["stat"] == "mean" for r in results)


def test_resume_after_a_kill(q8_model, data_dir, tmp_path):
    def command(out):
        return [sys.executable, "-m", "radlite_edge.cli", "eval", str(q8_model), "--data", str(data_dir), "-o",
                str(out), "--tasks", "radiology_qa,impression_generation", "--parallel", "1", "--no-grammar"]

    cmd = command(tmp_path)
    records = tmp_path / f"{q8_model.stem}.samples.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not records.exists() or len(records.read_text().splitlines()) < 3):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = records.read_text().splitlines()
    assert 3 <= len(before) < 12, "the run should have been killed part-way"
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    after = [json.loads(line) for line in records.read_text().splitlines() if line.strip()]
    ids = [r["id"] for r in after]
    assert sorted(set(ids)) == sorted(ids) and len(ids) == 12  # nothing lost, nothing run twice
    # and the resumed outputs equal an uninterrupted run's
    fresh = tmp_path / "fresh"
    assert subprocess.run(command(fresh), capture_output=True).returncode == 0
    fresh_recs = {json.loads(x)["id"]: json.loads(x)["output"] for x in
                  (fresh / f"{q8_model.stem}.samples.jsonl").read_text().splitlines()}
    assert {r["id"]: r["output"] for r in after} == fresh_recs


@pytest.mark.parametrize("content, needle", [
    (None, "does not exist"),
    ("{not json\n", "not a sample record"),
    ('{"id": "x", "task": "staging", "input": "a", "reference": "N0"}\n', "unknown task"),
    ('{"id": "x", "task": "n_staging", "input": " ", "reference": "N0"}\n', "empty input"),
])
def test_bad_data_is_one_line(capsys, tmp_path, q8_model, content, needle):
    data = tmp_path / "data"
    if content is not None:
        data.mkdir()
        (data / "x.jsonl").write_text(content)
    code = main(["eval", str(q8_model), "--data", str(data), "-o", str(tmp_path / "out")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and needle in err[0]


def test_data_synth_cli_writes_splits(capsys, tmp_path):
    assert main(["data", "synth", "--n", "4", "-o", str(tmp_path)]) == 0
    test = read_dir(tmp_path)
    assert sum(s.split == "test" for s in test) == 4 * len(TASKS)
    assert sum(s.split == "train" for s in test) == 16 * len(TASKS)


def test_parallel_streams_give_the_naive_paths_logits_bit_for_bit(tiny_gguf, tmp_path):
    """Every logits row the fast path picks from equals, bit for bit, the row the naive path
    computes for that prompt and step: a prompt's suffix evaluated after its cached prefix,
    then one token per decode. This is what makes greedy outputs identical even where logits
    nearly tie (the full-size random models in benchmarks/eval_speed.py)."""
    from radlite_edge.convert.quantize import quantize_ladder
    from radlite_edge.llm import last_logits

    path = quantize_ladder(tiny_gguf("tiny-qwen3", "f16"), "q4_k_m", tmp_path, n_threads=2)[0].path
    engine = Engine(path, n_ctx=512, n_parallel=MAX_STEP_ROWS, repack=False)
    rng = np.random.default_rng(3)
    prefix = rng.integers(10, 800, 40).tolist()
    prompts = [prefix + rng.integers(10, 800, int(n)).tolist() for n in rng.integers(9, 40, 9)]
    seen: dict[tuple[int, int], np.ndarray] = {}
    max_tokens = 6
    gens = engine.generate(prompts, max_tokens=max_tokens,
                           trace=lambda i, step, row: seen.__setitem__((i, step), row.copy()))
    llm = engine.llm
    for i, (prompt, gen) in enumerate(zip(prompts, gens)):
        llm.reset()
        llm.eval(prefix)
        llm.eval(prompt[len(prefix):])
        # rows seen: one per token, and one more that chose to stop unless max_tokens cut it
        for step in range(min(gen.n_tokens + 1, max_tokens)):
            ref = last_logits(llm)
            assert np.array_equal(seen[(i, step)], ref), (i, step, float(np.abs(seen[(i, step)] - ref).max()))
            tok = int(np.argmax(ref))
            if engine.is_eog(tok):
                break
            llm.eval([tok])
    assert len(seen) >= len(prompts) * 2
    engine.close()


def test_too_many_parallel_sequences_is_one_line(capsys, tmp_path, q8_model, data_dir):
    code = main(["eval", str(q8_model), "--data", str(data_dir), "-o", str(tmp_path / "out"),
                 "--parallel", str(MAX_STEP_ROWS + 1)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "--parallel" in err[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def _greedy_tokens(engine: Engine, prompt: str | list[int], n: int) -> list[int]:
    """The naive path's greedy tokens, one decode per token."""
    from radlite_edge.llm import last_logits

    llm = engine.llm
    llm.reset()
    llm.eval(engine.tokenize(prompt) if isinstance(prompt, str) else prompt)
    out = []
    for _ in range(n):
        tok = int(np.argmax(last_logits(llm)))
        if engine.is_eog(tok):
            break
        out.append(tok)
        llm.eval([tok])
    return out


def test_an_answer_the_model_writes_itself_is_followed_token_for_token(q8_model, data_dir):
    """Forced bytes go in bulk only once the model's own choice has left the language: a
    language made to contain the model's greedy text (with forced stretches and a branch)
    must give back those tokens, each picked from the model's logits."""
    from radlite_edge.tasks.constraint import OutputLanguage

    engine = Engine(q8_model, n_parallel=4)
    task = TASKS["radiology_qa"]
    checked = 0
    for s in [s for s in read_dir(data_dir) if s.split == "test" and s.task == task.name]:
        prompt = task.prompt(s.input)
        tokens = _greedy_tokens(engine, prompt, 24)
        try:
            text = b"".join(engine.piece(t) for t in tokens).decode("utf-8")
        except UnicodeDecodeError:
            continue
        if len(text) < 9:
            continue
        a, b = len(text) // 3, 2 * len(text) // 3
        lang = OutputLanguage([[text[:a]], [text[a:b], "#" + text[a:b]], [text[b:]]])
        steps = []
        got = engine.generate([engine.tokenize(prompt)], max_tokens=40, language=lang,
                              trace=lambda i, step, row: steps.append(step))[0]
        assert (got.text, got.n_tokens) == (text, len(tokens))
        assert steps == list(range(len(tokens)))  # every token picked from the model's logits
        checked += 1
    assert checked >= 2
    engine.close()


def test_a_left_answer_is_completed_in_few_decode_calls(q8_model, data_dir):
    """The tiny random model leaves the 14-label CheXpert language at once; from there the
    forced label names go in bulk and the model is read only where the language branches."""
    engine = Engine(q8_model, n_parallel=4)
    task = TASKS["abnormality_detection"]
    prompts = [engine.tokenize(task.prompt(s.input)) for s in read_dir(data_dir)
               if s.split == "test" and s.task == task.name][:4]
    gens = engine.generate(prompts, max_tokens=task.max_tokens, language=task.language)
    for g in gens:
        assert task.language.is_complete(g.text.encode())
        assert len(task.parse(g.text)) == 14
    times = engine.times
    assert times.prompt.calls >= len(prompts)  # the prefix, then each suffix in a call of its own
    # about a call per label's value (14 branches) for ~60 tokens each
    assert times.answer.calls <= 14 + 2 < min(g.n_tokens for g in gens) / 3
    assert times.answer.rows == sum(g.n_tokens for g in gens) - len(gens)  # the last token needs no call
    engine.close()


def test_a_faithful_sequence_keeps_one_row_calls_beside_a_left_one(q8_model):
    """In one group, a sequence still writing the model's own answer and sequences that left
    the language: the faithful one's rows go in calls of one row per sequence that no left
    sequence's rows share (the kernels of the naive path's steps), and its logits rows are the
    naive path's bit for bit."""
    from radlite_edge.llm import last_logits
    from radlite_edge.tasks.constraint import OutputLanguage

    engine = Engine(q8_model, n_parallel=4)
    llm = engine.llm
    rng = np.random.default_rng(3)
    prompts, text, own = [], None, None
    while len(prompts) < 3:  # random prompts: the tiny model's greedy texts differ from one to the next
        prompt = rng.integers(10, 800, 30).tolist()
        tokens = _greedy_tokens(engine, prompt, 12)
        raw = b"".join(engine.piece(t) for t in tokens)
        if text is None:
            try:
                text = raw.decode("utf-8") if len(raw) >= 9 else None
            except UnicodeDecodeError:
                pass
            if text is not None:
                own = tokens
                prompts.append(prompt)
        elif raw[:1] != text.encode()[:1]:
            prompts.append(prompt)  # its first token already leaves a language made of ``text``
    a, b = len(text) // 3, 2 * len(text) // 3
    lang = OutputLanguage([[text[:a]], [text[a:b], "#" + text[a:b]], [text[b:]]])
    calls: list[tuple[bool, list[int]]] = []  # (prompt?, the sequence of each row) per real call
    decode = engine._decode
    engine._decode = lambda entries, prompt=False: calls.append((prompt, [e[2] for e in entries])) or \
        decode(entries, prompt)
    seen: dict[int, np.ndarray] = {}
    gens = engine.generate(prompts, max_tokens=40, language=lang,
                           trace=lambda i, step, row: i == 0 and seen.__setitem__(step, row.copy()))
    engine._decode = decode
    assert (gens[0].text, gens[0].n_tokens) == (text, len(own))
    assert all(lang.is_complete(g.text.encode()) for g in gens)
    with_faithful = [seqs for prompt, seqs in calls if not prompt and 1 in seqs]
    assert len(with_faithful) == len(own) - 1  # its last token completes the language: no call
    assert all(seqs == [1] for seqs in with_faithful)  # the left sequences' rows go in calls of their own
    assert any(not prompt and 1 not in seqs and len(seqs) > len(set(seqs)) for prompt, seqs in calls)
    llm.reset()
    llm.eval(prompts[0])
    for step, tok in enumerate(own):
        assert np.array_equal(seen[step], last_logits(llm)), step
        llm.eval([tok])
    engine.close()


def _outputs(records) -> dict[str, str]:
    return {r["id"]: r["output"] for r in map(json.loads, records.read_text().splitlines())}


def test_a_runtime_lora_is_scored_as_the_merged_model(lora_set, data_dir, tmp_path):
    base, lora, merged = lora_set
    samples = read_dir(data_dir)
    kw = dict(tasks="n_staging,radiology_nli", settings=EvalSettings(n=4), n_parallel=2, n_threads=1)
    summary = evaluate(base, samples, tmp_path, lora=lora, **kw)
    records = tmp_path / f"{base.stem}+{lora.stem}.samples.jsonl"
    ours = _outputs(records)
    assert summary.model == f"{base.name}+{lora.name}" and (tmp_path / f"{base.stem}+{lora.stem}.summary.json").is_file()
    assert f"+ {lora.name}" in eval_table([summary], title="t").columns[-1].header  # the table says which adapter
    evaluate(merged, samples, tmp_path / "merged", **kw)
    assert ours == _outputs(tmp_path / "merged" / f"{merged.stem}.samples.jsonl")
    # the base alone, in the same folder, reuses none of the adapter's records: the adapter moves its answers
    evaluate(base, samples, tmp_path, **kw)
    assert ours != _outputs(tmp_path / f"{base.stem}.samples.jsonl")
    lines = records.read_text()
    evaluate(base, samples, tmp_path, lora=lora, **kw)  # resumed: every sample recorded already
    assert records.read_text() == lines
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert {r["params"]["lora"] is None for r in results} == {True, False}


@pytest.mark.parametrize("extra, what, needle", [
    ([], "missing", "no such LoRA file"),
    ([], "model", "not a LoRA adapter"),
    (["--mode", "naive"], "lora", "fast path"),
])
def test_a_lora_that_cannot_run_is_one_line(capsys, tmp_path, lora_set, data_dir, extra, what, needle):
    base, lora, _ = lora_set
    arg = {"missing": tmp_path / "nope.gguf", "model": base, "lora": lora}[what]
    out = tmp_path / "out"
    code = main(["eval", str(base), "--data", str(data_dir), "-o", str(out), "--lora", str(arg), *extra])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and needle in err[0] and not out.exists()


def test_lora_records_are_keyed_on_the_adapters_bytes(lora_set, data_dir, tmp_path):
    base, lora, _ = lora_set
    mine = tmp_path / lora.name
    mine.write_bytes(lora.read_bytes())
    kw = dict(tasks="n_staging", settings=EvalSettings(n=3), n_parallel=2, n_threads=1)
    records = tmp_path / "out" / f"{base.stem}+{mine.stem}.samples.jsonl"
    evaluate(base, read_dir(data_dir), tmp_path / "out", lora=mine, **kw)
    assert len(records.read_text().splitlines()) == 3
    data = bytearray(mine.read_bytes())
    data[-1] ^= 0x01  # the last tensor's last value changes: the same name, another adapter
    mine.write_bytes(bytes(data))
    evaluate(base, read_dir(data_dir), tmp_path / "out", lora=mine, **kw)
    assert len(records.read_text().splitlines()) == 6  # ran again, not reused


def test_eval_cli_with_lora_writes_its_own_records_and_both_summaries(capsys, lora_set, data_dir, tmp_path):
    base, lora, _ = lora_set
    out = tmp_path / "out"
    assert main(["eval", str(base), "--lora", str(lora), "--data", str(data_dir), "-o", str(out), "--tasks",
                 "n_staging", "--n", "2", "-t", "1", "--parallel", "2", "--decoding", "both", "--splits", "test"]) == 0
    stem = f"{base.stem}+{lora.stem}"
    assert (out / f"{stem}.samples.jsonl").is_file() and not (out / f"{base.stem}.samples.jsonl").exists()
    assert (out / f"{stem}.summary.json").is_file() and (out / f"{stem}.grammar.summary.json").is_file()


def test_an_adapter_for_another_architecture_is_refused_before_any_work(capsys, lora_set, tiny_gguf, data_dir,
                                                                        tmp_path):
    base, lora, _ = lora_set  # a tiny-qwen2 adapter
    other = tiny_gguf("tiny-qwen3", "f16")
    out = tmp_path / "out"
    code = main(["eval", str(base), str(other), "--lora", str(lora), "--data", str(data_dir), "-o", str(out)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "an adapter for qwen2 models" in err[0] and not out.exists()
