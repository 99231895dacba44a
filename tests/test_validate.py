"""The trainer's per-task validation scores what `radlite eval` scores: same samples, answers, parser, metric."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from radlite_edge.eval_records import EvalSettings  # noqa: E402
from radlite_edge.evaluation import evaluate  # noqa: E402
from radlite_edge.finetune.validate import score, val_samples  # noqa: E402
from radlite_edge.tasks.synthetic import make_suite  # noqa: E402

# the label tasks: answers short enough that a random model's greedy text stays clear of near-ties
TASKS = ("rads_assignment", "n_staging", "m_staging", "radiology_nli")


def test_the_validation_scorer_equals_radlite_eval_on_the_same_samples(tmp_path: Path, tiny_checkpoint, tiny_gguf):
    samples = make_suite(4, seed=0, n_train=4, n_val=3, n_generalization=1)
    val = {t: s for t, s in val_samples(samples, 2).items() if t in TASKS}
    assert all(len(s) == 2 for s in val.values()) and set(val) == set(TASKS)

    summary = evaluate(tiny_gguf("tiny-qwen2", "f32"), samples, tmp_path, tasks=",".join(TASKS), split="val",
                       settings=EvalSettings(n=2), n_threads=2, n_parallel=1)
    records = [json.loads(line) for line in next(tmp_path.glob("*.samples.jsonl")).read_text().splitlines()]
    by_id = {r["id"]: r for r in records}
    assert set(by_id) == {s.id for ss in val.values() for s in ss}  # eval's first n per task: the same samples

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_checkpoint("tiny-qwen2"), dtype=torch.float32)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint("tiny-qwen2"))
    result, answers = score(model, tokenizer, val)
    for task, ss in val.items():
        assert answers[task] == [by_id[s.id]["output"] for s in ss], task
        assert result.scores[task] == pytest.approx(summary.tasks[task].value), task
        assert result.n[task] == summary.tasks[task].n


def test_training_scores_tasks_keeps_the_best_adapter_and_stops_early(tmp_path: Path, tiny_checkpoint):
    from radlite_edge.finetune.config import FinetuneConfig
    from radlite_edge.finetune.train import finetune
    from radlite_edge.tasks.samples import write_jsonl

    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "s.jsonl", make_suite(4, seed=0, n_train=8, n_val=2, n_generalization=1))
    config = FinetuneConfig(base=str(tiny_checkpoint("tiny-qwen2")), data=str(data), output=str(tmp_path / "out"),
                            r=4, alpha=8.0, samples=40, batch_size=2, max_steps=20, learning_rate=5e-3,
                            warmup_steps=0, eval_every=0, save_every=0, max_seq_len=1024, seed=3,
                            val_every=2, val_per_task=1, patience=2)
    result = finetune(config, say=lambda s: None)
    log = [json.loads(x) for x in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    vals = [r for r in log if "val_scores" in r]
    assert vals and all(set(r["val_scores"]) == set(r["val_n"]) and len(r["val_scores"]) == 9 for r in vals)
    best = max(vals, key=lambda r: r["val_mean"])
    saved = json.loads((tmp_path / "out" / "best" / "val.json").read_text())
    assert saved["val_mean"] == best["val_mean"] and (tmp_path / "out" / "best" / "adapter_model.safetensors").is_file()
    # patience 2: training stops at the second validation in a row without a new best, or runs out of steps
    misses, stop = 0, None
    for r in vals:
        misses = 0 if r.get("best") else misses + 1
        if misses == 2:
            stop = r["step"]
            break
    assert result.steps == (stop or 20)
    assert bool(vals[-1].get("early_stop")) == (stop is not None)
