"""The embedded default models: deterministic, the real Qwen shapes, loadable."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radlite_edge.fileio import sha256_file
from radlite_edge.safetensors_io import Checkpoint
from radlite_edge.synth.models import SPECS, tensor_plan, write_checkpoint
from radlite_edge.synth.tokenizer import SPECIAL_TOKENS, train_tokenizer


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_checkpoint(SPECS["tiny-qwen3"], tmp_path / "a", seed=5)
    b = write_checkpoint(SPECS["tiny-qwen3"], tmp_path / "b", seed=5)
    c = write_checkpoint(SPECS["tiny-qwen3"], tmp_path / "c", seed=6)
    for f in ("model.safetensors", "tokenizer.json", "config.json"):
        assert sha256_file(a / f) == sha256_file(b / f)
    assert sha256_file(a / "model.safetensors") != sha256_file(c / "model.safetensors")
    assert not list(tmp_path.glob(".*part"))  # no temporary directory left behind


def test_tokenizer_has_chatml_specials_after_the_vocabulary():
    tok = train_tokenizer()
    ids = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    assert ids == list(range(tok.get_vocab_size() - 3, tok.get_vocab_size()))
    enc = tok.encode("<|im_start|>user\nBI-RADS 4A<|im_end|>")
    assert enc.ids[0] == ids[1] and enc.ids[-1] == ids[2]
    # byte-level: any text round-trips, radiology words are learned merges
    assert tok.decode(tok.encode("ü 肺 🫁").ids) == "ü 肺 🫁"
    assert "Ġnodule" in tok.get_vocab()


def _n_params(spec) -> int:
    return sum(int(np.prod(shape)) for _, shape, _ in tensor_plan(spec, spec.vocab_size))


def test_full_size_shapes_match_the_published_models():
    # parameter counts of Qwen2.5-3B-Instruct (3.09B) and Qwen3-4B (4.02B), tied embeddings
    assert _n_params(SPECS["qwen2.5-3b"]) == 3_085_938_688
    assert _n_params(SPECS["qwen3-4b"]) == 4_022_468_096
    plan = dict((n, s) for n, s, _ in tensor_plan(SPECS["qwen3-4b"], 151936))
    assert plan["model.layers.0.self_attn.q_proj.weight"] == (4096, 2560)
    assert plan["model.layers.35.self_attn.k_norm.weight"] == (128,)
    assert "lm_head.weight" not in plan


def test_sharded_tiny_checkpoint_equals_single_file(tmp_path):
    single = write_checkpoint(SPECS["tiny-qwen2"], tmp_path / "one", seed=0)
    sharded = write_checkpoint(SPECS["tiny-qwen2"], tmp_path / "many", seed=0, shard_bytes=100_000)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    a, b = Checkpoint(single), Checkpoint(sharded)
    assert sorted(a.names()) == sorted(b.names())
    for name in a.names():
        assert np.array_equal(a.read_raw(name), b.read_raw(name))


def test_transformers_loads_both_shapes_config(tiny_checkpoint):
    transformers = pytest.importorskip("transformers")
    for name in ("tiny-qwen2", "tiny-qwen3"):
        cfg = transformers.AutoConfig.from_pretrained(tiny_checkpoint(name))
        spec = SPECS[name]
        assert cfg.model_type == spec.arch and cfg.num_hidden_layers == spec.layers
        assert cfg.tie_word_embeddings == spec.tied
