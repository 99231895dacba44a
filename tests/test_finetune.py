"""finetune/: rendering as eval renders, the loss mask, mixing, the leakage stop, learning, resume."""

from __future__ import annotations

import dataclasses
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
from radlite_edge.finetune.train import _collate, _examples, finetune  # noqa: E402
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
    whole = finetune(_config(tmp_path / "a", suite, base, save_every=2, max_steps=8), say=lambda s: None)

    class Stop(Exception):
        pass

    def stop_at_3(record):
        if record.get("step") == 3 and "loss" in record:
            raise Stop

    config = _config(tmp_path / "b", suite, base, save_every=2, max_steps=8)
    with pytest.raises(Stop):
        finetune(config, progress=stop_at_3, say=lambda s: None)
    resumed = finetune(config, resume=True, say=lambda s: None)
    a = load_file(whole.adapter / "adapter_model.safetensors")
    b = load_file(resumed.adapter / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    log = [json.loads(x) for x in (tmp_path / "b" / "out" / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]  # stopped during step 3's log; resumed from checkpoint 2, its records redone once

    # tokens are the real ones this run trained on: 8 steps of 2 are one epoch of the 16 examples,
    # and the resumed run counts from its checkpoint's step 2
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    real = sum(len(e.input_ids) for e in _examples(config, tokenizer, lambda s: None)[0])
    seen = {r["step"]: r["num_input_tokens_seen"] for r in log if "loss" in r}
    assert whole.tokens == real == seen[8]
    assert resumed.tokens == real - seen[2] > 0
    last = [r for r in log if "loss" in r][-1]
    assert last["tokens_per_s"] == pytest.approx(resumed.tokens / last["seconds"], rel=0.05)


def _lora_model(base: Path, *, dropout: float = 0.0):
    import peft

    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=dropout,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # small, not zero: every LoRA weight has a gradient
            torch.nn.init.normal_(p, std=0.02)
    return model


def _batch(suite, tokenizer, n: int = 4) -> dict:
    examples = [render(s, tokenizer) for s in suite if s.split == "train"][:n]
    assert len({len(e.input_ids) for e in examples}) > 1  # padding in the batch
    return _collate(tokenizer.pad_token_id)([{"input_ids": e.input_ids, "labels": e.labels} for e in examples])


@pytest.mark.parametrize("per_row", [True, False], ids=["mask-per-row", "union-of-rows"])
def test_the_loss_on_answer_logits_is_the_models_own_loss(suite, tokenizer, tiny_checkpoint, monkeypatch, per_row):
    from radlite_edge.finetune import speed

    if per_row and not speed._per_row_positions():
        pytest.skip("this transformers takes no (batch, seq) logits_to_keep")
    monkeypatch.setattr(speed, "_per_row_positions", lambda: per_row)  # the older transformers' path, here too
    model = _lora_model(tiny_checkpoint("tiny-qwen2"))
    batch = _batch(suite, tokenizer)
    labels = batch["labels"]
    answers = int((labels[:, 1:] != IGNORE).sum())
    trainable = [p for p in model.parameters() if p.requires_grad]
    for items in (None, torch.tensor(3 * answers)):  # this batch alone; a third of an accumulated update
        extra = {} if items is None else {"num_items_in_batch": items}
        full = model(**batch, **extra).loss
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    logits_to_keep=speed.answer_positions(labels))
        ours = speed.answer_loss(out, labels, items)
        assert abs(ours.item() - full.item()) < 1e-5
        if per_row:
            assert out.logits.shape[0] == answers  # no logits anywhere else
        g_full = torch.autograd.grad(full, trainable)
        g_ours = torch.autograd.grad(ours, trainable)
        assert max(((a - b).abs().max() / a.abs().max()).item() for a, b in zip(g_full, g_ours)) < 1e-5


def test_the_trainer_scores_answer_logits_as_the_plain_trainer_scores_the_model(tmp_path, suite, tokenizer,
                                                                                 tiny_checkpoint):
    from radlite_edge.finetune.train import _trainer, _training_args

    config = _config(tmp_path, suite, tiny_checkpoint("tiny-qwen2"))
    model = _lora_model(tiny_checkpoint("tiny-qwen2"))
    batch = _batch(suite, tokenizer)
    args = _training_args(config, tmp_path / "out", has_val=False)
    plain = _trainer(dataclasses.replace(config, answer_only_logits=False), model, args=args)
    fast = _trainer(config, model, args=args)
    assert type(fast) is not type(plain) and fast.compute_loss_func is not None
    items = torch.tensor(int((batch["labels"][:, 1:] != IGNORE).sum()))
    for n in (None, items):
        assert abs(fast.compute_loss(model, dict(batch), num_items_in_batch=n).item()
                   - plain.compute_loss(model, dict(batch), num_items_in_batch=n).item()) < 1e-5


def test_batches_cover_every_example_once_per_epoch_with_little_padding(tmp_path, suite, tokenizer, tiny_checkpoint):
    from radlite_edge.finetune.train import _Examples, _trainer, _training_args

    config = _config(tmp_path, suite, tiny_checkpoint("tiny-qwen2"), samples=400, batch_size=4)
    train = _examples(config, tokenizer, lambda s: None)[0]
    trainer = _trainer(config, _lora_model(tiny_checkpoint("tiny-qwen2")), train_dataset=_Examples(train),
                       args=_training_args(config, tmp_path / "out", has_val=False),
                       data_collator=_collate(tokenizer.pad_token_id))
    seen, real, slots = [], 0, 0
    for batch in trainer.get_train_dataloader():
        mask = batch["attention_mask"]
        real, slots = real + int(mask.sum()), slots + mask.numel()
        seen += [tuple(ids[m.bool()].tolist()) for ids, m in zip(batch["input_ids"], mask)]
    assert sorted(seen) == sorted(tuple(e.input_ids) for e in train)  # each example once
    padding = 1 - real / slots
    lengths = np.array([len(e.input_ids) for e in train])
    random = np.random.default_rng(0).permutation(lengths).reshape(-1, 4)
    random_padding = 1 - random.sum() / (random.max(1) * 4).sum()
    # the Trainer's length-grouped sampler: 2 % here, 1.4 % on the embedded default's 1,400 examples
    assert padding <= 0.05 and padding < random_padding / 5, (padding, random_padding)


def test_numpy_dropout_keeps_the_share_and_the_scale_and_replays_from_the_seed(tiny_checkpoint):
    from radlite_edge.finetune.speed import NumpyDropout, numpy_dropout

    model = _lora_model(tiny_checkpoint("tiny-qwen2"), dropout=0.05)
    swapped = numpy_dropout(model)
    assert swapped == 7 * model.config.num_hidden_layers
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    drop = NumpyDropout(0.05).train()
    x = torch.ones(1000, 1000)
    np.random.seed(1)
    y = drop(x)
    assert torch.unique(y).tolist() == [0.0, pytest.approx(1 / 0.95)]
    assert abs((y == 0).float().mean().item() - 0.05) < 0.001
    np.random.seed(1)
    assert torch.equal(drop(x), y)  # the Trainer's seed and checkpoints replay it
    assert torch.equal(drop.eval()(x), x)


def test_bf16_auto_is_native_bf16_only(tmp_path, monkeypatch):
    from radlite_edge.finetune.speed import native_bf16

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n")
    assert not native_bf16(cpuinfo)  # AVX2 or AVX-512 alone: emulated, slower than f32
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert native_bf16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    assert native_bf16(cpuinfo)
    assert not native_bf16(tmp_path / "absent")


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
