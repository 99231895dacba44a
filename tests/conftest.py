"""Shared fixtures: the tiny synthetic checkpoints and their GGUF conversions, made once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from radlite_edge.convert.hf_to_gguf import convert_checkpoint
from radlite_edge.synth.models import SPECS, write_checkpoint

TINY = ("tiny-qwen2", "tiny-qwen3")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_checkpoint(models_dir):
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = write_checkpoint(SPECS[name], models_dir / name, seed=0)
        return made[name]

    return get


@pytest.fixture(scope="session")
def tiny_gguf(tiny_checkpoint, models_dir):
    made: dict[tuple[str, str], Path] = {}

    def get(name: str, outtype: str) -> Path:
        key = (name, outtype)
        if key not in made:
            out = models_dir / f"{name}-{outtype}.gguf"
            convert_checkpoint(tiny_checkpoint(name), out, outtype=outtype, n_threads=2)
            made[key] = out
        return made[key]

    return get


@pytest.fixture(scope="session")
def n_threads() -> int:
    return min(2, os.cpu_count() or 1)


@pytest.fixture
def alien_gguf(tmp_path) -> Path:
    """A well-formed GGUF of an architecture llama.cpp does not know: it reads, it never loads."""
    import gguf
    import numpy as np

    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "alien")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def lora_set(tiny_checkpoint, tiny_gguf, tmp_path_factory):
    """A tiny base GGUF, a synthetic adapter as GGUF LoRA, and the same adapter merged into a GGUF."""
    from radlite_edge.convert.lora_gguf import export_lora
    from radlite_edge.synth.adapters import write_adapter
    from radlite_edge.synth.models import vocab_size_of

    out = tmp_path_factory.mktemp("lora-set")
    spec = SPECS["tiny-qwen2"]
    base_dir = tiny_checkpoint("tiny-qwen2")
    # alpha 512 over rank 8, a scale of 64: the tiny model's greedy choice moves
    adapter_dir = write_adapter(spec, vocab_size_of(spec), out / "adapter", rank=8, alpha=512, seed=3)
    lora = export_lora(adapter_dir, base_dir, out / "adapter.gguf", outtype="f32").path
    merged = convert_checkpoint(base_dir, out / "merged-F32.gguf", outtype="f32", adapter=adapter_dir, n_threads=2).path
    return tiny_gguf("tiny-qwen2", "f32"), lora, merged
