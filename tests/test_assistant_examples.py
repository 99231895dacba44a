"""The nine task examples (tests/data/assistant_examples.jsonl) through `radlite run` on the embedded default.

RADLITE.md does not carry the notebook's nine example reports nor its four challenge cases; the
file holds one report per task, written after the answer styles RADLITE.md quotes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlite_edge.cli import main
from radlite_edge.tasks.labels import M_STAGES, N_STAGES, NLI_LABELS, TASK_NAMES

EXAMPLES = Path(__file__).parent / "data" / "assistant_examples.jsonl"
# the parsed value's form per task, in the answer's JSON (sets as sorted lists of pairs)
LABELS = {"n_staging": N_STAGES, "m_staging": M_STAGES, "radiology_nli": NLI_LABELS}


def _well_formed(task: str, value) -> bool:
    if task in LABELS:
        return value in LABELS[task]
    if task == "rads_assignment":
        return isinstance(value, str) and bool(value)
    if task == "abnormality_detection":
        return isinstance(value, dict) and all(v in ("positive", "negative", "uncertain") for v in value.values())
    if task in ("temporal_comparison", "radiology_ner"):
        return isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value)
    return value is None or isinstance(value, str)  # impression, QA: free text (empty when nothing is written)


def test_the_examples_cover_the_nine_tasks_once():
    items = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines()]
    assert sorted(i["task"] for i in items) == sorted(TASK_NAMES)
    assert not _well_formed("m_staging", "M2") and not _well_formed("radiology_ner", "Anatomy: lobe")


@pytest.mark.slow
def test_the_examples_through_radlite_run_on_the_default_routes(tmp_path, capsys):
    from radlite_edge.cli.assistant import MERGED_DEFAULT, _find
    from radlite_edge.embedded import find_smollm2

    if _find(MERGED_DEFAULT) is None and find_smollm2() is None:
        pytest.skip("neither the merged default nor the SmolLM2 base (make smollm2) is here")
    out = tmp_path / "answers.jsonl"
    assert main(["run", "--batch", str(EXAMPLES), "-o", str(out), "-t", "1"]) == 0
    answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(a["task"] for a in answers) == sorted(TASK_NAMES)
    for a in answers:
        assert a["id"] == a["task"] and a["tokens"] > 0, a
        assert _well_formed(a["task"], a["value"]), a
        print(f"{a['task']}: {json.dumps(a['value'])} | {a['text']!r}")
