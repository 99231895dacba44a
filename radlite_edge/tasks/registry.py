"""The 9 RadLite tasks: one entry each, the only place a task's scoring is stated.

Training data formatting, evaluation, the runtime and the benchmarks all read this. Each
task's prompt and max tokens are the published interface's (``interface.py``, read from the
packaged ``radlite_interface.json``): the shared system prompt, then the task's template with
the input in place of ``{report}``, rendered by a prompt profile (``prompts.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from . import metrics, parsers
from .constraint import OutputLanguage
from .labels import (
    CHEXPERT_LABELS, CHEXPERT_VALUES, M_STAGES, N_STAGES, NLI_LABELS, RADS_LABELS,
)
from .interface import PUBLISHED
from .prompts import DEFAULT_PROFILE, PromptProfile
from .samples import Sample
from .styles import CHEXPERT_ORDER, n_staging_answer

SYSTEM_PROMPT = PUBLISHED.system_prompt


def _chexpert_parse_ref(s: Sample) -> dict[str, str]:
    return dict(s.labels["values"])


def _label_accuracy(pred: dict | None, ref: dict) -> float:
    pred = pred or {}
    return sum(pred.get(k) == v for k, v in ref.items()) / len(ref)


@dataclass(frozen=True)
class Task:
    name: str
    parse: Callable[[str], Any]
    # the reference value a parse is compared with (default: parse the reference text)
    truth: Callable[[Sample], Any] | None
    score: Callable[[Any, Any], float]  # per-sample primary score in [0, 1]
    metric: str  # name of the primary metric, as the paper reports it
    language: OutputLanguage | None = None  # closed output set: constrained decoding / GBNF
    summary: Callable[[Sequence[Any], Sequence[Any], Sequence[str], Sequence[str]], dict] = field(
        default=lambda preds, truths, outputs, refs: {})
    # the primary metric reads the raw output against the reference text (NER: ROUGE-L, as the paper)
    score_text: bool = False

    @property
    def max_tokens(self) -> int:
        return PUBLISHED.max_tokens[self.name]

    def reference_value(self, sample: Sample) -> Any:
        return self.truth(sample) if self.truth else self.parse(sample.reference)

    def user_turn(self, input_text: str) -> str:
        return PUBLISHED.user_turn(self.name, input_text)

    def messages(self, input_text: str, examples: Sequence[Sample] = ()) -> list[dict[str, str]]:
        """ChatML messages; few-shot examples come as earlier user/assistant turns."""
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}]
        for ex in examples:
            msgs += [{"role": "user", "content": self.user_turn(ex.input)},
                     {"role": "assistant", "content": ex.reference}]
        msgs.append({"role": "user", "content": self.user_turn(input_text)})
        return msgs

    def prompt(self, input_text: str, examples: Sequence[Sample] = (), *,
               profile: PromptProfile = DEFAULT_PROFILE) -> str:
        """The full prompt text in ``profile``, ending where the assistant starts writing."""
        return profile.render(self.messages(input_text, examples))

    def grammar(self) -> str | None:
        return self.language.gbnf() if self.language else None


def _rads_summary(preds, truths, outputs, refs) -> dict:
    return {
        "accuracy_per_system": metrics.per_group_accuracy(preds, truths, parsers.rads_system),
        "confusion_by_system": metrics.confusion(preds, truths, parsers.rads_system),
    }


def _text_summary(preds, truths, outputs, refs) -> dict:
    return {"bleu": metrics.corpus_bleu(preds, refs), "length_ratio": metrics.length_ratio(preds, refs)}


def _temporal_summary(preds, truths, outputs, refs) -> dict:
    # the primary Jaccard is over (finding, change) pairs; this one over the change types alone
    out = {"jaccard_pairs": sum(metrics.jaccard(p, t) for p, t in zip(preds, truths)) / max(1, len(truths)),
           "jaccard_changes": sum(metrics.jaccard({c for _, c in (p or set())}, {c for _, c in t})
                                  for p, t in zip(preds, truths)) / max(1, len(truths))}
    for change in ("new", "worsened", "improved", "resolved", "unchanged"):
        p = [{x for x in (s or set()) if x[1] == change} for s in preds]
        r = [{x for x in s if x[1] == change} for s in truths]
        out[f"f1_{change}"] = metrics.set_f1(p, r)
    return out


def _ner_summary(preds, truths, outputs, refs) -> dict:
    return {"entity_f1": metrics.set_f1(preds, truths)}


def _nli_summary(preds, truths, outputs, refs) -> dict:
    return {"macro_f1": metrics.macro_f1(preds, truths, NLI_LABELS)}


def _chexpert_summary(preds, truths, outputs, refs) -> dict:
    acc, f1 = {}, {}
    for label in CHEXPERT_LABELS:
        p = [(x or {}).get(label) for x in preds]
        r = [t[label] for t in truths]
        acc[label] = sum(a == b for a, b in zip(p, r)) / max(1, len(r))
        f1[label] = metrics.macro_f1(p, r, CHEXPERT_VALUES)
    return {"macro_f1": sum(f1.values()) / len(f1), "accuracy_per_label": acc, "macro_f1_per_label": f1}


# the published answer styles (styles.py), as closed languages for constrained decoding
_CHEXPERT_LANGUAGE = OutputLanguage(
    [seg for i, label in enumerate(CHEXPERT_ORDER)
     for seg in ((f"- {label}: ",), CHEXPERT_VALUES) + ((("\n",),) if i < len(CHEXPERT_ORDER) - 1 else ())]
)
_N_STAGING_LANGUAGE = OutputLanguage.choice([n_staging_answer(stage) for stage in N_STAGES])

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("rads_assignment", parsers.parse_rads, None, metrics.exact, "accuracy",
             OutputLanguage.choice(RADS_LABELS), _rads_summary),
        Task("impression_generation", parsers.parse_free_text, lambda s: s.reference, metrics.rouge_l, "rougeL",
             None, _text_summary),
        Task("temporal_comparison", parsers.parse_temporal, lambda s: {tuple(p) for p in s.labels["pairs"]},
             metrics.jaccard, "jaccard", None, _temporal_summary),
        Task("radiology_ner", parsers.parse_ner, lambda s: {tuple(e) for e in s.labels["entities"]},
             metrics.rouge_l, "rougeL", None, _ner_summary, score_text=True),
        Task("n_staging", parsers.parse_n_stage, None, metrics.exact, "accuracy",
             _N_STAGING_LANGUAGE),
        Task("m_staging", parsers.parse_m_stage, None, metrics.exact, "accuracy", OutputLanguage.choice(M_STAGES)),
        Task("radiology_nli", parsers.parse_nli, None, metrics.exact, "accuracy", OutputLanguage.choice(NLI_LABELS),
             _nli_summary),
        Task("abnormality_detection", parsers.parse_chexpert, _chexpert_parse_ref, _label_accuracy,
             "label_accuracy", _CHEXPERT_LANGUAGE, _chexpert_summary),
        Task("radiology_qa", parsers.parse_free_text, lambda s: s.reference, metrics.rouge_l, "rougeL"),
    )
}


def sample_score(task: Task, output: str, sample: Sample) -> tuple[Any, float]:
    """(parsed value, primary score) of one output."""
    parsed = task.parse(output)
    if task.score_text:
        return parsed, task.score(output.strip(), sample.reference)
    return parsed, task.score(parsed, task.reference_value(sample))


def get_task(name: str) -> Task:
    from ..errors import UserError

    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose from {', '.join(TASKS)} or all")
    return TASKS[name]


def select_tasks(spec: str) -> list[Task]:
    if spec.strip() in ("all", ""):
        return list(TASKS.values())
    return [get_task(n.strip()) for n in spec.split(",") if n.strip()]
