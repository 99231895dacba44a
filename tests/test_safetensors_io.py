"""Our streaming safetensors reader and writer against the safetensors library itself."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from radlite_edge.errors import UserError
from radlite_edge.safetensors_io import (
    Checkpoint, PlannedTensor, SafetensorsWriter, bf16_bits_to_f32, f32_to_bf16_bits, split_into_shards,
    write_index,
)


def test_writer_output_reads_back_with_safetensors_library(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 8)).astype(np.float32)
    b = rng.standard_normal((3,)).astype(np.float16)
    plan = [PlannedTensor("a", "F32", (5, 8)), PlannedTensor("b", "F16", (3,))]
    with SafetensorsWriter(tmp_path / "x.safetensors", plan) as w:
        w.write(a[:2])
        w.write(a[2:])  # slabs of rows
        w.write(b)
    ref = load_file(tmp_path / "x.safetensors")
    assert np.array_equal(ref["a"], a) and np.array_equal(ref["b"], b)


def test_reader_reads_library_written_file_by_row_slabs(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(10, 6)
    save_file({"x": x, "h": x.astype(np.float16)}, tmp_path / "model.safetensors")
    ckpt = Checkpoint(tmp_path)
    assert np.array_equal(ckpt.read_f32("x", 3, 7), x[3:7])
    assert np.array_equal(ckpt.read_f32("h"), x)
    slabs = list(ckpt.row_slabs("x", max_elements=13))
    assert slabs[0] == (0, 2) and slabs[-1][1] == 10
    assert np.array_equal(np.concatenate([ckpt.read_f32("x", s, e) for s, e in slabs]), x)


def test_bf16_round_trip_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal(10_000).astype(np.float32) * 100
    ours = f32_to_bf16_bits(x)
    ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(ours, ref)
    assert np.array_equal(bf16_bits_to_f32(ours), torch.from_numpy(x).to(torch.bfloat16).float().numpy())


def test_sharded_checkpoint_with_index(tmp_path):
    plan = [PlannedTensor(f"t{i}", "F32", (4, 4)) for i in range(5)]
    shards = split_into_shards(plan, max_bytes=2 * 64)
    assert [len(s) for s in shards] == [2, 2, 1]
    weight_map = {}
    for k, shard in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        with SafetensorsWriter(tmp_path / fname, shard) as w:
            for t in shard:
                w.write(np.full((4, 4), int(t.name[1:]), np.float32))
                weight_map[t.name] = fname
    write_index(tmp_path, weight_map, 5 * 64)
    ckpt = Checkpoint(tmp_path)
    assert sorted(ckpt.names()) == [f"t{i}" for i in range(5)]
    assert ckpt.read_f32("t4")[0, 0] == 4


def test_truncated_file_is_named(tmp_path):
    save_file({"x": np.ones((100, 100), np.float32)}, tmp_path / "model.safetensors")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(UserError, match="truncated"):
        Checkpoint(tmp_path)


def test_garbage_is_not_a_safetensors_file(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(UserError, match="not a safetensors"):
        Checkpoint(tmp_path)


def test_index_naming_a_missing_shard(tmp_path):
    write_index(tmp_path, {"x": "model-00001-of-00002.safetensors"}, 4)
    with pytest.raises(UserError, match="missing"):
        Checkpoint(tmp_path)


def test_unsupported_dtype_is_refused(tmp_path):
    save_file({"x": np.ones(4, np.int64)}, tmp_path / "model.safetensors")
    with pytest.raises(UserError, match="dtype I64"):
        Checkpoint(tmp_path)
