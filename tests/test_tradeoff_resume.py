"""benchmarks/tradeoff_resume: a sweep saved on one machine goes on on another without measuring a
finished cell again, and a file with other bytes is never matched to the saved cells."""

from __future__ import annotations

import os
import shutil

import pytest

from benchmarks import tradeoff_resume
from radlite_edge import identity, manifest
from radlite_edge.bench.tradeoff import CELLS_FILE, SweepSpec, read_cells, run_sweep
from radlite_edge.tasks.synthetic import make_suite


@pytest.fixture
def big_files(monkeypatch):
    # every file identified as multi-GB weights are (header digest, size, mtime), as the real sweep's are
    monkeypatch.setattr(identity, "HASH_LIMIT", 0)
    monkeypatch.setattr(manifest, "HASH_LIMIT", 0)


def _machine(root, tiny_gguf):
    """A fresh checkout: the same F16 bytes with a new mtime, an empty run."""
    f16 = root / "models" / "tiny-F16.gguf"
    f16.parent.mkdir(parents=True)
    shutil.copyfile(tiny_gguf("tiny-qwen2", "f16"), f16)
    return f16, root / "run"


def test_saved_sweep_resumes_on_a_fresh_machine(big_files, tiny_gguf, tmp_path, capsys):
    samples = make_suite(2, seed=0, n_generalization=0, n_val=0, n_train=0)
    spec = SweepSpec(tasks=("m_staging",), n=2, levels=("F16", "Q4_0", "IQ2_XS"), imatrix=("radiology",),
                     decodings=("strict",), threads=1, fidelity_windows=1)
    docs = tmp_path / "docs"
    f16, run = _machine(tmp_path / "m", tiny_gguf)
    first = run_sweep([f16], run, spec, samples)
    assert first.made == len(read_cells(run / CELLS_FILE)) > 0
    tradeoff_resume.save(run, docs, f16)
    assert len(list((docs / "imatrix" / "radiology").glob("*-imatrix.gguf"))) == 1

    # the next session's checkout is at the same path (the quantizer records the matrix's path)
    shutil.move(tmp_path / "m", tmp_path / "gone")
    f16, run = _machine(tmp_path / "m", tiny_gguf)
    os.utime(f16, ns=(1, 1))
    # without the restore every file is new to the saved cells
    assert tradeoff_resume.restore(run, docs, f16, ladder=False) == 0
    run_sweep([f16], run, spec, samples, measure=False)  # quantizes the ladder from the saved matrix
    assert tradeoff_resume.restore(run, docs, f16, ladder=True) == 0
    assert "2 ladder files are the saved ones" in capsys.readouterr().out
    again = run_sweep([f16], run, spec, samples, measure=False)
    assert again.missing == 0 and again.reused == first.made

    # a ladder file with other bytes keeps its new mtime: its cells are measured anew
    q4, = (run / "ladder" / "radiology").glob("*-Q4_0.gguf")
    data = bytearray(q4.read_bytes())
    data[-1] ^= 1
    q4.write_bytes(bytes(data))
    assert tradeoff_resume.restore(run, docs, f16, ladder=True) == 0
    assert f"ladder/radiology/{q4.name}: not the bytes" in capsys.readouterr().out
    assert run_sweep([f16], run, spec, samples, measure=False).missing > 0


def test_restore_refuses_another_f16(big_files, tiny_gguf, tmp_path, capsys):
    samples = make_suite(2, seed=0, n_generalization=0, n_val=0, n_train=0)
    spec = SweepSpec(tasks=("m_staging",), n=2, levels=("F16", "Q4_0"), imatrix=("none",), decodings=("strict",),
                     threads=1, fidelity_windows=1)
    f16, run = _machine(tmp_path / "a", tiny_gguf)
    run_sweep([f16], run, spec, samples)
    tradeoff_resume.save(run, tmp_path / "docs", f16)
    other, run = _machine(tmp_path / "b", tiny_gguf)
    other.write_bytes(other.read_bytes() + b"\0")
    assert tradeoff_resume.restore(run, tmp_path / "docs", other, ladder=False) == 2
    assert "not the F16 the saved sweep measured" in capsys.readouterr().err


def test_restore_without_a_saved_sweep_is_one_line(tmp_path, capsys):
    f16 = tmp_path / "m-F16.gguf"
    f16.write_bytes(b"GGUF")
    assert tradeoff_resume.restore(tmp_path / "run", tmp_path / "docs", f16, ladder=False) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no saved sweep here" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_head_digest_gives_back_the_mtime_it_recorded(tmp_path, monkeypatch):
    p = tmp_path / "w.gguf"
    p.write_bytes(b"GGUF" + bytes(60))
    os.utime(p, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    assert identity.digest_mtime_ns(identity.file_digest(p)) is None  # small: identified by content
    monkeypatch.setattr(identity, "HASH_LIMIT", 0)
    assert identity.digest_mtime_ns(identity.file_digest(p)) == 1_700_000_000_123_456_789
