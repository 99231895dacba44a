"""A finetune config is checked against one schema before anything loads; a run never spoils its inputs.

Each case is the command, its exit code 2, one line naming the field (or path) and the fix, the
inputs byte for byte unchanged, and no output folder left behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

import pytest

from radlite_edge.cli import main
from radlite_edge.finetune.config import CHECKS, FinetuneConfig
from radlite_edge.tasks.samples import write_jsonl
from radlite_edge.tasks.synthetic import make_suite


def _run(capsys, *argv) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def _one_line(code: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _tree(path: Path) -> str:
    return hashlib.sha256(b"".join(p.relative_to(path).as_posix().encode() + (p.read_bytes() if p.is_file() else b"")
                                   for p in sorted(path.rglob("*")))).hexdigest()


@pytest.fixture
def workspace(tmp_path: Path, tiny_checkpoint) -> Path:
    import shutil

    shutil.copytree(tiny_checkpoint("tiny-qwen2"), tmp_path / "base")
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "s.jsonl", make_suite(4, seed=0, n_train=8, n_val=2, n_generalization=1))
    return tmp_path


def _toml(root: Path, body: str, name: str = "run.toml") -> Path:
    path = root / name
    path.write_text('base = "base"\ndata = "data"\noutput = "out"\n' + body)
    return path


def test_every_field_has_a_check():
    assert set(CHECKS) == {f.name for f in fields(FinetuneConfig)}


@pytest.mark.parametrize("body, needles", [
    ('r = "abc"\n', ("r = 'abc'", "an integer")),
    ("r = 0\n", ("r = 0", "give 1 to")),
    ("r = 100000\n", ("r = 100000", "give 1 to")),
    ("r = 300\n", ("r = 300", "give 1 to 128", "smaller side")),  # tiny-qwen2: 2 KV heads of 64
    ('learning_rate = "fast"\n', ("learning_rate", "finite number")),
    ('bf16 = "maybe"\n', ("bf16", "auto, true or false")),
    ("batch_size = 0\n", ("batch_size = 0", "give 1 to")),
    ("grad_accum = 0\n", ("grad_accum = 0",)),
    ("dropout = 5\n", ("dropout = 5", "below 1")),
    ('target_modules = ["q_proj", "attn"]\n', ("target_modules", "unknown projection 'attn'")),
    ("layers_to_transform = [99]\n", ("layers_to_transform", "2 layers")),
    ("epochs = -1.0\n", ("epochs = -1.0", "above 0")),
    ("samples = 0\n", ("samples = 0", "give 1 to")),
    ("max_seq_len = -1\n", ("max_seq_len = -1",)),
    ("max_steps = 0\n", ("max_steps = 0", "-1 (by epochs)")),
    ("task_weights = { n_staging = -1 }\n", ("task_weights", "from 0")),
    ("task_weights = { n_stage = 1 }\n", ("task_weights", "unknown task 'n_stage'")),
    ("alpha = inf\n", ("alpha = inf", "finite")),
    ("val_per_task = 0\n", ("val_per_task = 0",)),
])
def test_a_bad_value_is_one_line_naming_the_field_before_the_model_loads(capsys, workspace, body, needles):
    config = _toml(workspace, body)
    before = _tree(workspace)
    code, err = _run(capsys, "finetune", config)
    _one_line(code, err, "run.toml", *needles)
    assert _tree(workspace) == before and not (workspace / "out").exists()


@pytest.mark.parametrize("name, text, needle", [
    ("bad.yaml", "42", "not a table of settings"),
    ("bad.toml", "42", "not a TOML or YAML config"),
    ("bad.toml", "base = [", "not a TOML or YAML config"),
    ("bad.toml", 'data = "data"\noutput = "out"\n', "base is missing"),
])
def test_a_malformed_config_is_one_line(capsys, workspace, name, text, needle):
    if name.endswith(".yaml"):
        pytest.importorskip("yaml")
    path = workspace / name
    path.write_text(text)
    _one_line(*_run(capsys, "finetune", path), needle)
    assert not (workspace / "out").exists()


@pytest.mark.parametrize("output, needle", [("data", "would overwrite"), ("data/out", "would overwrite"),
                                            ("base", "would overwrite"), (".", "holds the data")])
def test_an_output_that_is_holds_or_lies_in_an_input_is_refused(capsys, workspace, output, needle):
    path = workspace / "run.toml"
    path.write_text(f'base = "base"\ndata = "data"\noutput = "{output}"\nmax_steps = 1\n')
    before = _tree(workspace)
    _one_line(*_run(capsys, "finetune", path), needle)
    assert _tree(workspace) == before


def test_a_second_run_into_the_same_output_is_refused(capsys, workspace):
    from radlite_edge.fileio import locked_append

    out = workspace / "out"
    out.mkdir()
    with locked_append(out / "train_log.jsonl", what="radlite finetune"):  # a run holding it now
        _one_line(*_run(capsys, "finetune", _toml(workspace, "max_steps = 1\n"), "--resume"),
                  "another radlite finetune is writing it now")
    (out / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    _one_line(*_run(capsys, "finetune", _toml(workspace, "max_steps = 1\n")), "holds an earlier run", "--resume")


def test_a_failed_run_leaves_no_empty_output_folder(capsys, workspace):
    (workspace / "data" / "s.jsonl").write_text("")  # no samples: fails after the output is made
    (workspace / "data" / "t.jsonl").write_text("{}\n")
    code, err = _run(capsys, "finetune", _toml(workspace, "max_steps = 1\n"))
    _one_line(code, err)
    assert not (workspace / "out").exists()
