"""finetune/: rendering as eval renders, the loss mask, mixing, the leakage stop, learning, resume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from radlite_edge.errors import UserError  # noqa: E402
from radlite_edge.finetune.config import PUBLISHED_WEIGHTS, FinetuneConfig  # noqa: E402
from radlite_edge.finetune.data import IGNORE, check_no_leak, mixture, render  # noqa: E402
from radlite_edge.finetune.train import finetune  # noqa: E402
from radlite_edge.tasks import TASKS, Sample  # noqa: E402
from radlite_edge.tasks.samples import write_jsonl  # noqa: E402
from radlite_edge.tasks.synthetic import make_suite  # noqa: E402


@pytest.fixture(scope="module")
def suite():
    return make_suite(6, seed=0, n_train=12, n_val=4, n_generalization=2)


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return transformers.AutoTokenizer.from_pretrained(tiny_checkpoint("tiny-qwen2"))


def test_rendering_is_the_eval_prompt_and_the_loss_covers_the_answer_only(suite, tokenizer):
    for s in suite:
        if s.split != "train":
            continue
        ex = render(s, tokenizer)
        n_prompt = sum(1 for label in ex.labels if label == IGNORE)
        assert ex.labels[:n_prompt] == [IGNORE] * n_prompt and IGNORE not in ex.labels[n_prompt:]
        assert tokenizer.decode(ex.input_ids[:n_prompt]) == TASKS[s.task].prompt(s.input)  # byte for byte
        assert tokenizer.decode(ex.labels[n_prompt:]) == s.reference + "<|im_end|>"


def test_mixing_follows_the_weights(suite):
    mix = mixture(suite, PUBLISHED_WEIGHTS, 20000, seed=1)
    counts = Counter(s.task for s in mix)
    total_weight = sum(PUBLISHED_WEIGHTS.values())  # equal train counts per task: shares are the weights'
    for task, weight in PUBLISHED_WEIGHTS.items():
        assert abs(counts[task] / len(mix) - weight / total_weight) < 0.01, task
    assert all(s.split == "train" for s in mix)


def test_a_planted_duplicate_stops_training(suite):
    test = next(s for s in suite if s.split == "test")
    planted = Sample("planted", test.task, test.input, test.reference, test.labels, split="train")
    with pytest.raises(UserError, match="leakage check failed"):
        check_no_leak([*suite, planted])


def _config(tmp_path: Path, suite, base: Path, **kw) -> FinetuneConfig:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "s.jsonl", suite)
    settings = dict(base=str(base), data=str(data), output=str(tmp_path / "out"), r=4, alpha=8.0, samples=16,
                    batch_size=2, max_steps=8, learning_rate=5e-3, warmup_steps=0, eval_every=0, save_every=0,
                    max_seq_len=1024, seed=3)
    return FinetuneConfig(**{**settings, **kw})


def test_a_few_steps_lower_the_loss_and_write_an_adapter_merge_takes(tmp_path, suite, tiny_checkpoint):
    from radlite_edge.convert.lora import LoraAdapter

    config = _config(tmp_path, suite, tiny_checkpoint("tiny-qwen2"), max_steps=12, eval_every=6)
    result = finetune(config, say=lambda s: None)
    log = [json.loads(x) for x in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 12 and np.mean(losses[-3:]) < np.mean(losses[:3])
    assert result.steps == 12 and result.val_loss is not None and result.tokens_per_s > 0
    adapter = LoraAdapter(result.adapter)  # what radlite merge / convert --adapter / export-lora read
    assert adapter.config.r == 4 and adapter.pairs
    assert (tmp_path / "out" / "adapter.manifest.json").is_file()


def test_resume_continues_at_the_same_step_with_the_same_batches(tmp_path, suite, tiny_checkpoint):
    from safetensors.numpy import load_file

    base = tiny_checkpoint("tiny-qwen2")
    whole = finetune(_config(tmp_path / "a", suite, base, save_every=2, max_steps=6), say=lambda s: None)

    class Stop(Exception):
        pass

    def stop_at_3(record):
        if record.get("step") == 3 and "loss" in record:
            raise Stop

    config = _config(tmp_path / "b", suite, base, save_every=2, max_steps=6)
    with pytest.raises(Stop):
        finetune(config, progress=stop_at_3, say=lambda s: None)
    resumed = finetune(config, resume=True, say=lambda s: None)
    a = load_file(whole.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    log = [json.loads(x) for x in (tmp_path / "b" / "out" / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6]  # stopped during step 3's log; resumed from checkpoint 2, its records redone once


@pytest.mark.slow
def test_two_cpu_processes_through_accelerate_train_one_adapter(tmp_path, suite, tiny_checkpoint):
    """The same command scales out with `accelerate launch` (DDP over gloo here): two processes, one adapter."""
    import shutil
    import subprocess
    import sys

    config = _config(tmp_path, suite, tiny_checkpoint("tiny-qwen2"), max_steps=3)
    toml = tmp_path / "run.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in vars(config).items()
                             if v is not None and not isinstance(v, dict)) + "\n")  # the weights: default
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is installed with the finetune and test extras"
    r = subprocess.run([accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                        "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "radlite_edge.cli", "finetune",
                        str(toml)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "after 3 steps" in r.stderr
    adapter = tmp_path / "out" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (tmp_path / "out" / "adapter.manifest.json").is_file()
    log = [json.loads(x) for x in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log if "loss" in x] == [1, 2, 3]  # one process logs
