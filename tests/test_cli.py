"""The command line: bad input is one clear line, exit code 2, and nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from radlite_edge.cli import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _nothing_written(directory) -> bool:
    return not [p for p in directory.iterdir() if p.suffix in (".gguf", ".part") or ".part" in p.name]


def test_missing_directory(capsys, tmp_path):
    code, _, err = _run(capsys, "convert", str(tmp_path / "nope"), "-o", str(tmp_path / "x.gguf"))
    _assert_one_line_error(code, err, "nope", "does not exist")
    assert _nothing_written(tmp_path)


def test_unknown_architecture(capsys, tmp_path, tiny_checkpoint):
    ckpt = _copy(tiny_checkpoint("tiny-qwen2"), tmp_path / "ckpt")
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (ckpt / "config.json").write_text(json.dumps(cfg))
    code, _, err = _run(capsys, "convert", str(ckpt), "-o", str(tmp_path / "x.gguf"))
    _assert_one_line_error(code, err, "GPT2LMHeadModel", "supported")
    assert _nothing_written(tmp_path)


def test_truncated_safetensors(capsys, tmp_path, tiny_checkpoint):
    ckpt = _copy(tiny_checkpoint("tiny-qwen2"), tmp_path / "ckpt")
    f = ckpt / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-4096])
    code, _, err = _run(capsys, "convert", str(ckpt), "-o", str(tmp_path / "x.gguf"))
    _assert_one_line_error(code, err, "model.safetensors", "truncated")
    assert _nothing_written(tmp_path)


def test_tensor_missing_from_checkpoint(capsys, tmp_path, tiny_checkpoint):
    ckpt = _copy(tiny_checkpoint("tiny-qwen3"), tmp_path / "ckpt")
    st_torch = pytest.importorskip("safetensors.torch")  # numpy has no bf16
    tensors = st_torch.load_file(ckpt / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    st_torch.save_file(tensors, ckpt / "model.safetensors")
    code, _, err = _run(capsys, "convert", str(ckpt), "-o", str(tmp_path / "x.gguf"))
    _assert_one_line_error(code, err, "blk.1.attn_k.weight", "lacks")
    assert _nothing_written(tmp_path)


def test_output_not_writable(capsys, tmp_path, tiny_checkpoint):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, _, err = _run(capsys, "convert", str(tiny_checkpoint("tiny-qwen2")), "-o", str(blocker / "x.gguf"))
    _assert_one_line_error(code, err, "a_file")
    code, _, err = _run(capsys, "convert", str(tiny_checkpoint("tiny-qwen2")), "-o", "/proc/radlite-test.gguf")
    _assert_one_line_error(code, err, "/proc")
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, err = _run(capsys, "convert", str(tiny_checkpoint("tiny-qwen2")), "-o", str(locked / "x.gguf"))
        _assert_one_line_error(code, err, "not writable")


def test_inspect_rejects_non_gguf_and_truncated(capsys, tmp_path, tiny_gguf):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 not a gguf")
    code, _, err = _run(capsys, "inspect", str(bad))
    _assert_one_line_error(code, err, "not a GGUF")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_gguf("tiny-qwen2", "f16").read_bytes()[:-5000])
    code, _, err = _run(capsys, "inspect", str(cut))
    _assert_one_line_error(code, err, "truncated")


def test_inspect_reports_types_and_sizes(capsys, tiny_gguf):
    code, out, _ = _run(capsys, "inspect", str(tiny_gguf("tiny-qwen3", "q8_0")), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["arch"] == "qwen3"
    assert set(summary["by_type"]) == {"F32", "Q8_0"}
    # 2 blocks x (7 projections) + token_embd + output are Q8_0; norms are F32
    assert summary["by_type"]["Q8_0"]["tensors"] == 16
    assert 8.4 < summary["bits_per_weight"] < 8.6


def test_synth_skips_an_up_to_date_checkpoint(capsys, tmp_path):
    code, _, err = _run(capsys, "synth", "tiny-qwen2", "-o", str(tmp_path))
    assert code == 0
    before = (tmp_path / "tiny-qwen2" / "model.safetensors").stat().st_mtime_ns
    code, _, err = _run(capsys, "synth", "tiny-qwen2", "-o", str(tmp_path))
    assert code == 0 and "up to date" in err
    assert (tmp_path / "tiny-qwen2" / "model.safetensors").stat().st_mtime_ns == before
    code, _, err = _run(capsys, "synth", "gpt-5", "-o", str(tmp_path))
    _assert_one_line_error(code, err, "gpt-5")


def test_console_script_end_to_end(tmp_path, tiny_checkpoint):
    exe = os.path.join(os.path.dirname(sys.executable), "radlite")
    out = tmp_path / "m.gguf"
    r = subprocess.run([exe, "convert", str(tiny_checkpoint("tiny-qwen2")), "-o", str(out), "--outtype", "q4_0"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "Q4_0" in r.stdout
    r = subprocess.run([exe, "convert", str(tmp_path / "missing"), "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_convert_skips_an_up_to_date_output_and_redoes_a_changed_one(capsys, tmp_path, tiny_checkpoint):
    ckpt = _copy(tiny_checkpoint("tiny-qwen2"), tmp_path / "ckpt")
    out = tmp_path / "m.gguf"
    assert _run(capsys, "convert", str(ckpt), "-o", str(out))[0] == 0
    first = out.stat().st_mtime_ns
    code, _, err = _run(capsys, "convert", str(ckpt), "-o", str(out))
    assert code == 0 and "up to date" in err and out.stat().st_mtime_ns == first
    # another outtype, or a changed input, is not up to date
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-5
    (ckpt / "config.json").write_text(json.dumps(cfg))
    code, _, err = _run(capsys, "convert", str(ckpt), "-o", str(out))
    assert code == 0 and "up to date" not in err and out.stat().st_mtime_ns != first
    manifest = json.loads((tmp_path / "m.gguf.manifest.json").read_text())
    assert manifest["params"]["outtype"] == "F16" and manifest["output"]["bytes"] == out.stat().st_size


def test_usage_mistakes_are_one_line_too(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["convert", str(tmp_path), "-o", str(tmp_path / "x.gguf"), "--outtype", "q9_9"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "q9_9" in err
