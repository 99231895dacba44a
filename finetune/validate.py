"""Per-task accuracy while training: strict, generated, scored exactly as ``radlite eval`` scores.

The validation loss says little about a label task: a model can lower it by learning the
answer's form while answering the majority label (the first fine-tune of the embedded default
did just that on N and M staging). So every ``val_every`` updates the trainer generates answers
for a fixed sample of the validation split per task and scores them with the task registry:
the prompt rendered by the same profile eval uses, greedy decoding to the task's published max
tokens and stop, ``sample_score`` (the same parser and metric), the mean over samples. Eval
takes the first ``n`` samples of a split per task in file order; so does this, so a validation
score and ``radlite eval --splits val --n K`` score the same samples.

Generation runs in torch on the model being trained (LoRA unmerged, dropout off), a task at a
time in left-padded batches.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from radlite_edge.tasks import TASKS, Sample, sample_score
from radlite_edge.tasks.interface import PUBLISHED
from radlite_edge.tasks.prompts import DEFAULT_PROFILE, PromptProfile


def val_samples(samples: Sequence[Sample], per_task: int) -> dict[str, list[Sample]]:
    """The first ``per_task`` validation samples of each task, in file order (as eval picks them)."""
    out: dict[str, list[Sample]] = {}
    for s in samples:
        if s.split == "val" and len(out.setdefault(s.task, [])) < per_task:
            out[s.task].append(s)
    return {t: out[t] for t in TASKS if out.get(t)}


def stop_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: the published stop and the tokenizer's end of sequence."""
    ids = {tokenizer.convert_tokens_to_ids(s) for s in PUBLISHED.generation.stop}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(i for i in ids if i is not None and i != tokenizer.unk_token_id)


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers to ``prompts``, cut at the first stop token (which the text leaves out)."""
    import torch

    stops = stop_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    texts = []
    for first in range(0, len(prompts), batch_size):
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[first:first + batch_size]]
        width = max(map(len, ids))
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            out = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=stops, pad_token_id=pad)
        for row in out[:, width:].tolist():
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            texts.append(tokenizer.decode(row[:cut], skip_special_tokens=False))
    return texts


@dataclass
class ValScores:
    step: int
    scores: dict[str, float]  # task -> mean primary score (the task's metric, as eval reports it)
    parsed: dict[str, float]  # task -> share of answers the task's parser reads
    n: dict[str, int]
    seconds: float

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else 0.0

    def to_dict(self) -> dict:
        return {"step": self.step, "val_mean": round(self.mean, 4),
                "val_scores": {t: round(v, 4) for t, v in self.scores.items()},
                "val_parsed": {t: round(v, 4) for t, v in self.parsed.items()}, "val_n": self.n,
                "val_seconds": round(self.seconds, 1)}


def score(model, tokenizer, val: dict[str, list[Sample]], *, step: int = 0, batch_size: int = 8,
          profile: PromptProfile = DEFAULT_PROFILE) -> tuple[ValScores, dict[str, list[str]]]:
    """Each task's mean strict score on its validation samples, and the answers scored."""
    t0 = time.perf_counter()
    scores, parsed, n, answers = {}, {}, {}, {}
    was_training = model.training
    model.eval()
    try:
        for name, samples in val.items():
            task = TASKS[name]
            texts = generate(model, tokenizer, [task.prompt(s.input, profile=profile) for s in samples],
                             max_new_tokens=task.max_tokens, batch_size=batch_size)
            results = [sample_score(task, text, s) for text, s in zip(texts, samples)]
            scores[name] = sum(r[1] for r in results) / len(results)
            parsed[name] = sum(r[0] not in (None, {}, set()) for r in results) / len(results)
            n[name] = len(results)
            answers[name] = texts
    finally:
        model.train(was_training)
    return ValScores(step, scores, parsed, n, time.perf_counter() - t0), answers


BEST = "best"  # the output's folder for the adapter with the best mean validation score


def validation_callback(val: dict[str, list[Sample]], tokenizer, out: Path, *, every: int, patience: int,
                        log: Callable[[dict], None]):
    """A TrainerCallback: score ``val`` every ``every`` updates, log it, keep the best adapter in
    ``out/best`` (with its scores in ``out/best/val.json``, so a resumed run knows the best so far),
    and stop when ``patience`` validations in a row have not improved on it (0: never stop early)."""
    from transformers import TrainerCallback

    from radlite_edge.fileio import atomic_dir

    class Validation(TrainerCallback):
        def __init__(self):
            record = out / BEST / "val.json"
            self.best = json.loads(record.read_text())["val_mean"] if record.is_file() else float("-inf")
            self.since_best = 0

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if not every or state.global_step % every or not state.is_world_process_zero:
                return
            result, _ = score(model, tokenizer, val, step=state.global_step)
            record = {**result.to_dict(), "max_steps": state.max_steps, "best_val_mean": max(self.best, result.mean)}
            if result.mean > self.best:
                self.best, self.since_best = result.mean, 0
                with atomic_dir(out / BEST) as tmp:
                    model.save_pretrained(str(tmp))
                    (tmp / "val.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
                record["best"] = True
            else:
                self.since_best += 1
                if patience and self.since_best >= patience:
                    control.should_training_stop = True
                    record["early_stop"] = True
            log(record)

    return Validation()
