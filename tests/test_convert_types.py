"""Every --outtype: the bytes the gguf library would write, and files llama.cpp runs."""

from __future__ import annotations

import sys

import gguf
import numpy as np
import pytest

from radlite_edge.convert.hf_to_gguf import convert_checkpoint, plan_conversion
from radlite_edge.levels import convert_levels, get_level
from radlite_edge.llm import load
from radlite_edge.safetensors_io import Checkpoint
from radlite_edge.synth.models import ModelSpec, write_checkpoint

LEVELS = [lv.name.lower() for lv in convert_levels()]


@pytest.mark.parametrize("outtype", LEVELS)
def test_tensor_bytes_equal_gguf_library_encoding(tiny_checkpoint, tiny_gguf, outtype):
    ckpt = Checkpoint(tiny_checkpoint("tiny-qwen3"))
    plan = plan_conversion(tiny_checkpoint("tiny-qwen3"), outtype)
    reader = gguf.GGUFReader(tiny_gguf("tiny-qwen3", outtype))
    written = {t.name: t for t in reader.tensors}
    level = get_level(outtype)
    for job in plan.jobs:
        t = written[job.gguf_name]
        expected_type = gguf.GGMLQuantizationType.F32 if len(job.shape) == 1 else level.tensor_type
        assert t.tensor_type == expected_type, job.gguf_name
        ref = gguf.quants.quantize(ckpt.read_f32(job.hf_name), expected_type)
        assert np.array_equal(np.asarray(t.data).view(np.uint8).ravel(), ref.view(np.uint8).ravel()), job.gguf_name


@pytest.mark.parametrize("outtype", LEVELS)
def test_every_outtype_loads_and_generates(tiny_gguf, outtype):
    llm = load(tiny_gguf("tiny-qwen2", outtype))
    out = llm("Findings: 8 mm nodule", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] > 0
    assert llm.n_vocab() == 896


def test_sharded_checkpoint_converts_to_the_same_tensors(tmp_path, tiny_gguf):
    from radlite_edge.synth.models import SPECS

    sharded = write_checkpoint(SPECS["tiny-qwen2"], tmp_path / "sharded", seed=0, shard_bytes=60_000)
    out = tmp_path / "sharded.gguf"
    convert_checkpoint(sharded, out, outtype="q8_0")
    a = {t.name: np.asarray(t.data).tobytes() for t in gguf.GGUFReader(out).tensors}
    b = {t.name: np.asarray(t.data).tobytes() for t in gguf.GGUFReader(tiny_gguf("tiny-qwen2", "q8_0")).tensors}
    assert a == b


def test_llama_architecture_permutes_qk_like_transformers(tmp_path, tiny_checkpoint):
    """A llama checkpoint (rotate-half q/k rows) converted and run in llama.cpp gives HF's logits."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import json
    import shutil

    src = tiny_checkpoint("tiny-qwen3")  # no biases; reuse its tokenizer
    ckpt = tmp_path / "tiny-llama"
    shutil.copytree(src, ckpt)
    st = pytest.importorskip("safetensors.torch")
    tensors = {k: v for k, v in st.load_file(ckpt / "model.safetensors").items() if "_norm" not in k or "layernorm" in k}
    # llama has no q/k norm and head_dim = hidden / heads: rebuild attention at that width
    cfg = json.loads((ckpt / "config.json").read_text())
    h, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    g = torch.Generator().manual_seed(0)
    for b in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{b}.self_attn."
        tensors[p + "q_proj.weight"] = (torch.randn(h, h, generator=g) / h**0.5).to(torch.bfloat16)
        tensors[p + "k_proj.weight"] = (torch.randn(kv * h // heads, h, generator=g) / h**0.5).to(torch.bfloat16)
        tensors[p + "v_proj.weight"] = (torch.randn(kv * h // heads, h, generator=g) / h**0.5).to(torch.bfloat16)
        tensors[p + "o_proj.weight"] = (torch.randn(h, h, generator=g) / h**0.5).to(torch.bfloat16)
    st.save_file(tensors, ckpt / "model.safetensors", metadata={"format": "pt"})
    cfg.update(architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=False, mlp_bias=False)
    cfg.pop("head_dim")
    (ckpt / "config.json").write_text(json.dumps(cfg))

    out = tmp_path / "llama.gguf"
    convert_checkpoint(ckpt, out, outtype="f32")
    import llama_cpp

    llm = load(out, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    model = transformers.AutoModelForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    ids = llm.tokenize(b"Compared with prior, the right effusion is unchanged.", add_bos=False)
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0, -1].numpy()
    from radlite_edge.llm import logits_for

    ours = logits_for(llm, ids)
    assert np.abs(ours - hf).max() < 1e-3 * np.abs(hf).max()


@pytest.mark.slow
def test_streaming_keeps_peak_rss_far_below_checkpoint_size(tmp_path):
    """A 1.5 GB checkpoint (Qwen2.5-3B's embedding and width) converts in a few hundred MB."""
    spec = ModelSpec("mid-qwen2", "qwen2", 2048, 6, 16, 2, 128, 11008, 151936, 32768, 1e6, True, False)
    ckpt = write_checkpoint(spec, tmp_path / "mid", seed=0)
    size = sum(f.stat().st_size for f in ckpt.glob("*.safetensors"))
    assert size > 1.4e9
    from radlite_edge.bench.measure import run_measured

    _, peak = run_measured([sys.executable, "-m", "radlite_edge.cli", "convert", str(ckpt), "-o",
                            str(tmp_path / "mid.gguf"), "--outtype", "f16"])
    assert peak < 0.35 * size, f"peak RSS {peak / 1e9:.2f} GB for a {size / 1e9:.2f} GB checkpoint"
    assert (tmp_path / "mid.gguf").stat().st_size > 0.9 * size


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_f32_and_f16_checkpoints_saved_by_transformers(tmp_path, tiny_checkpoint, dtype):
    """Checkpoints written by transformers' own save_pretrained in other dtypes convert exactly."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    src = tiny_checkpoint("tiny-qwen2")
    model = transformers.AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, dtype))
    saved = tmp_path / dtype
    model.save_pretrained(saved)
    transformers.AutoTokenizer.from_pretrained(src).save_pretrained(saved)
    out = tmp_path / f"{dtype}.gguf"
    convert_checkpoint(saved, out, outtype="f32")
    reader = gguf.GGUFReader(out)
    state = {k: v.float().numpy() for k, v in model.state_dict().items()}
    plan = plan_conversion(saved, "f32")
    assert {j.gguf_name for j in plan.jobs} == {t.name for t in reader.tensors}
    for job in plan.jobs:
        t = next(t for t in reader.tensors if t.name == job.gguf_name)
        assert np.array_equal(np.asarray(t.data).reshape(state[job.hf_name].shape), state[job.hf_name]), job.gguf_name
