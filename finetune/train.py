"""``radlite finetune``: LoRA training with transformers' Trainer and peft, the published recipe.

The Trainer owns the loop, checkpoints and exact resume (model, optimizer, scheduler, RNG
and data position); accelerate decides devices and processes, so the same command runs on
this CPU, a GPU, or several through ``accelerate launch``. We add what the Trainer does not
know: the data (rendered through the eval prompt profile, mixed by the published task
weights, leakage-checked), a JSONL log with tokens/s, and the adapter's manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from radlite_edge import manifest
from radlite_edge.errors import UserError
from radlite_edge.fileio import atomic_dir, check_writable_dir, locked_append, output_dir, refuse_overwrite
from radlite_edge.tasks.samples import read_dir

from .config import FinetuneConfig
from .data import IGNORE, Example, check_no_leak, describe, mixture, render
from .validate import validation_callback, val_samples

ADAPTER = "adapter"  # the output's adapter folder: what merge, convert --adapter and export-lora take


@dataclass
class FinetuneResult:
    adapter: Path
    steps: int
    train_examples: int
    dropped_long: int
    tokens: int
    seconds: float
    tokens_per_s: float
    train_loss: float | None
    val_loss: float | None

    def to_dict(self) -> dict:
        return {**self.__dict__, "adapter": str(self.adapter)}


class _Examples:
    """A list of rendered examples as the Trainer reads a dataset (with lengths for bucketing)."""

    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


def _collate(pad_id: int) -> Callable[[list[dict]], dict]:
    import torch

    def collate(batch: list[dict]) -> dict:
        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [IGNORE] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}

    return collate


def _log_callback(path: Path, progress: Callable[[dict], None] | None):
    from transformers import TrainerCallback

    class JsonlLog(TrainerCallback):
        """One JSON line per logged step: loss, learning rate, tokens/s since the start of this run.

        Tokens are the Trainer's count of real (non-padding) input tokens over every process; a
        resumed run starts from the checkpoint's count, so only this run's tokens are counted."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.t0, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def tokens(self, state) -> int:
            return state.num_input_tokens_seen - self.tokens0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero:  # one log, however many processes train
                return
            elapsed = time.perf_counter() - self.t0
            record = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                      "seconds": round(elapsed, 2),
                      "tokens_per_s": round(self.tokens(state) / elapsed, 1) if elapsed else None, **(logs or {})}
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if progress:
                progress(record)

    return JsonlLog()


def _log_record(path: Path, record: dict, progress: Callable[[dict], None] | None) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    if progress:
        progress(record)


def _examples(config: FinetuneConfig, tokenizer, say: Callable[[str], None]):
    samples = read_dir(Path(config.data))
    check_no_leak(samples)  # before anything is trained
    mix = mixture(samples, config.task_weights, config.samples, seed=config.seed)
    say("mixture: " + ", ".join(f"{t} {share:.1%}" for t, share in describe(mix).items()))
    train = [render(s, tokenizer) for s in mix]
    kept = [e for e in train if len(e.input_ids) <= config.max_seq_len]
    val = [render(s, tokenizer) for s in samples if s.split == "val"][: config.val_samples]
    val = [e for e in val if len(e.input_ids) <= config.max_seq_len]
    if not kept:
        raise UserError(f"every training example is longer than max_seq_len {config.max_seq_len}")
    task_val = val_samples(samples, config.val_per_task) if config.val_every else {}
    return kept, val, len(train) - len(kept), task_val


def _training_args(config: FinetuneConfig, out: Path, *, has_val: bool):
    import torch
    from transformers import TrainingArguments

    from .speed import native_bf16

    # auto: where bf16 is native only; this 2-core Zen 2 runs bf16 autocast slower than f32
    bf16 = {"auto": native_bf16(), "true": True, "false": False}[str(config.bf16).lower()]
    accelerator = torch.cuda.is_available() or torch.backends.mps.is_available() or (
        hasattr(torch, "xpu") and torch.xpu.is_available())
    evaluate = bool(config.eval_every and has_val)
    return TrainingArguments(
        output_dir=str(out / "checkpoints"), per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate, num_train_epochs=config.epochs, max_steps=config.max_steps,
        warmup_steps=config.warmup_steps, lr_scheduler_type="cosine", logging_steps=1,
        save_strategy="steps" if config.save_every else "no", save_steps=config.save_every or 500,
        save_total_limit=2, eval_strategy="steps" if evaluate else "no", eval_steps=config.eval_every or None,
        bf16=bf16, report_to=[], seed=config.seed, data_seed=config.seed, remove_unused_columns=False,
        disable_tqdm=True, dataloader_pin_memory=torch.cuda.is_available(),
        prediction_loss_only=True,  # evaluation keeps the loss, not every batch's logits
        # the Trainer refuses bf16 without a bf16 GPU unless told the CPU is what trains
        use_cpu=bf16 and not accelerator,
        **_version_arguments(config),
    )


def _version_arguments(config: FinetuneConfig) -> dict:
    """Arguments transformers 5 renamed or widened: length-grouped batches (1.4 % padding on the
    embedded default's batches of 4, against 32 % in random ones), checkpointing, and the count of
    input tokens (real tokens where it can tell them from padding)."""
    import inspect

    from transformers import TrainingArguments

    params = inspect.signature(TrainingArguments.__init__).parameters
    out = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in params
           else {"group_by_length": True})
    counts_padding_apart = isinstance(params["include_num_input_tokens_seen"].default, str)
    out["include_num_input_tokens_seen"] = "non_padding" if counts_padding_apart else True
    if config.gradient_checkpointing:
        out["activation_checkpointing" if "activation_checkpointing" in params else "gradient_checkpointing"] = True
    return out


LOG = "train_log.jsonl"


def finetune(config: FinetuneConfig, *, resume: bool = False, progress: Callable[[dict], None] | None = None,
             say: Callable[[str], None] = print) -> FinetuneResult:
    """Train a LoRA adapter on ``config.base``; write ``config.output``/adapter with its manifest.

    Everything that can be judged before the model loads is: the config against its schema, the
    output against the inputs (an output that is, holds or lies in the data or the base would spoil
    them), an earlier run in the output (continued with ``resume`` only). The run holds a lock on its
    log, so a second run into the same output is refused instead of interleaving with it; a run that
    fails leaves no folder it made empty behind."""
    config.check()
    out = Path(config.output)
    if not (Path(config.base) / "config.json").is_file():
        raise UserError(f"{config.base}: no config.json (give an HF checkpoint; radlite import makes one from a GGUF)")
    for name, source in (("data", Path(config.data)), ("base", Path(config.base))):
        refuse_overwrite(out, [source], flag="output")
        if source.resolve().is_relative_to(out.resolve()):
            raise UserError(f"output {out} holds the {name} {source}: choose an output folder of its own")
    # under `accelerate launch` (or torchrun) every process runs this; the first one owns the output
    main = int(os.environ.get("RANK", "0")) == 0
    if main and (out / LOG).is_file() and not resume:
        raise UserError(f"{out} holds an earlier run ({LOG}): add --resume to continue it, or choose another output")
    check_writable_dir(out)
    lock = locked_append(out / LOG, what="radlite finetune") if main else contextlib.nullcontext()
    with output_dir(out), lock:
        return _finetune(config, out, resume=resume, progress=progress, say=say)


def _trainer(config: FinetuneConfig, model, **kwargs):
    """The Trainer, with the loss on the answer tokens' logits alone where the config and model allow."""
    from transformers import Trainer

    from .speed import answer_loss, answer_positions, takes_logits_to_keep

    if not (config.answer_only_logits and takes_logits_to_keep(model)):
        return Trainer(model=model, **kwargs)

    class AnswerLogitsTrainer(Trainer):
        """The model's own forward, asked for the logits where the next token is an answer token;
        ``answer_loss`` (the Trainer's ``compute_loss_func``) scores them. Evaluation takes the same path."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = {**inputs, "logits_to_keep": answer_positions(inputs["labels"])}
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return AnswerLogitsTrainer(model=model, compute_loss_func=answer_loss, **kwargs)


def _trim_log(path: Path, step: int) -> None:
    """Drop the log's records past ``step``: a resumed run logs those steps again."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines(keepends=True)
            if line.strip() and json.loads(line).get("step", 0) <= step]
    with open(path, "r+") as f:  # in place: the run holds this file's lock
        f.write("".join(keep))
        f.truncate()


def _finetune(config: FinetuneConfig, out: Path, *, resume: bool, progress: Callable[[dict], None] | None,
              say: Callable[[str], None]) -> FinetuneResult:
    import peft
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(config.base)
    train, val, dropped, task_val = _examples(config, tokenizer, say)
    torch.manual_seed(config.seed)  # the LoRA init
    model = AutoModelForCausalLM.from_pretrained(config.base, dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(
        task_type="CAUSAL_LM", r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules=list(config.target_modules), layers_to_transform=config.layers_to_transform))
    args = _training_args(config, out, has_val=bool(val))
    if config.numpy_dropout and args.device.type == "cpu":
        from .speed import numpy_dropout

        numpy_dropout(model)
    log = _log_callback(out / LOG, progress)
    trainer = _trainer(
        config, model, args=args, train_dataset=_Examples(train), eval_dataset=_Examples(val) if val else None,
        data_collator=_collate(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id),
        callbacks=[log])
    if task_val:
        trainer.add_callback(validation_callback(task_val, tokenizer, out, every=config.val_every,
                                                 patience=config.patience,
                                                 log=lambda record: _log_record(out / LOG, record,
                                                                                progress)))
    checkpoints = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    if resume and not checkpoints:
        say(f"no checkpoint in {out / 'checkpoints'}: starting from step 0")
    if resume and trainer.is_world_process_zero():
        _trim_log(out / LOG, int(checkpoints[-1].name.split("-")[1]) if checkpoints else 0)
    train_out = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    val_loss = trainer.evaluate()["eval_loss"] if val else None
    seconds = time.perf_counter() - t0
    tokens = log.tokens(trainer.state)
    result = FinetuneResult(out / ADAPTER, train_out.global_step, len(train), dropped, tokens, seconds,
                            tokens / seconds if seconds else 0.0, train_out.training_loss, val_loss)
    if not trainer.is_world_process_zero():  # under accelerate launch, the main process writes the adapter
        return result
    with atomic_dir(out / ADAPTER) as tmp:
        model.save_pretrained(str(tmp))
    data_files = sorted(Path(config.data).glob("*.jsonl"))
    manifest.write(out / ADAPTER, step="finetune", inputs=manifest.identify(data_files),
                   params=asdict(config), seconds=seconds, result=result.to_dict())
    return result
