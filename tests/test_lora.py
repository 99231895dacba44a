"""LoRA merge, merge-on-convert and GGUF LoRA export, against peft as the reference."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
st_torch = pytest.importorskip("safetensors.torch")

import llama_cpp  # noqa: E402

from radlite_edge.cli import main  # noqa: E402
from radlite_edge.convert.hf_to_gguf import convert_checkpoint  # noqa: E402
from radlite_edge.convert.lora import LoraAdapter, MergedCheckpoint  # noqa: E402
from radlite_edge.convert.lora_gguf import export_lora  # noqa: E402
from radlite_edge.convert.merge import merge_checkpoint  # noqa: E402
from radlite_edge.llm import load, logits_for  # noqa: E402
from radlite_edge.safetensors_io import Checkpoint  # noqa: E402
from radlite_edge.lora_recipe import RADLITE_LORA  # noqa: E402
from radlite_edge.synth.adapters import write_adapter  # noqa: E402
from radlite_edge.synth.models import SPECS, vocab_size_of  # noqa: E402

PAPER_TARGETS = list(RADLITE_LORA.target_modules)

PROMPT_IDS = [5, 17, 200, 33, 412, 7, 99, 845, 301, 12, 66, 700]

# name -> (model, LoraConfig kwargs)
VARIANTS = {
    "qwen2-plain": ("tiny-qwen2", dict(r=8, lora_alpha=16, target_modules=list(PAPER_TARGETS))),
    "qwen3-plain": ("tiny-qwen3", dict(r=8, lora_alpha=16, target_modules=list(PAPER_TARGETS))),
    "qwen2-rslora": ("tiny-qwen2", dict(r=16, lora_alpha=8, use_rslora=True, target_modules=list(PAPER_TARGETS))),
    "qwen3-regex": ("tiny-qwen3", dict(r=4, lora_alpha=8, target_modules=r".*\.layers\.1\..*(q_proj|v_proj|down_proj)")),
    "qwen3-modules-to-save": ("tiny-qwen3", dict(r=8, lora_alpha=32, target_modules=["q_proj", "up_proj"],
                                                 modules_to_save=["lm_head"])),
    "qwen2-patterns": ("tiny-qwen2", dict(r=8, lora_alpha=16, target_modules=list(PAPER_TARGETS),
                                          rank_pattern={"down_proj": 4}, alpha_pattern={"k_proj": 4})),
    # LoRA on the top layers only, a common CPU choice: peft's layer rule with and without layers_pattern
    "qwen2-top-layer": ("tiny-qwen2", dict(r=8, lora_alpha=16, target_modules=list(PAPER_TARGETS),
                                           layers_to_transform=[1])),
    "qwen3-layers-pattern": ("tiny-qwen3", dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                                layers_to_transform=[0], layers_pattern="layers")),
}


def _hf(path, dtype):
    return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()


@pytest.fixture(scope="session")
def peft_adapter(tiny_checkpoint, tmp_path_factory):
    """A real peft adapter per variant, its B made non-zero (peft starts B at zero)."""
    made = {}

    def get(variant: str):
        if variant not in made:
            model_name, kwargs = VARIANTS[variant]
            base = _hf(tiny_checkpoint(model_name), torch.float32)
            torch.manual_seed(len(variant))  # peft draws lora_A from the global generator
            model = peft.get_peft_model(base, peft.LoraConfig(task_type="CAUSAL_LM", lora_dropout=0.05, **kwargs))
            g = torch.Generator().manual_seed(len(variant))
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "lora_B" in name or "modules_to_save" in name:
                        p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            out = tmp_path_factory.mktemp("adapters") / variant
            model.save_pretrained(out)
            made[variant] = (tiny_checkpoint(model_name), out)
        return made[variant]

    return get


def _peft_merged_state(base_dir, adapter_dir, dtype):
    model = peft.PeftModel.from_pretrained(_hf(base_dir, dtype), adapter_dir)
    return {k: v.float().numpy() for k, v in model.merge_and_unload().state_dict().items()}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_float32_merge_equals_peft(peft_adapter, variant):
    base_dir, adapter_dir = peft_adapter(variant)
    ref = _peft_merged_state(base_dir, adapter_dir, torch.float32)
    ours = MergedCheckpoint(Checkpoint(base_dir), LoraAdapter(adapter_dir))
    changed = 0
    for name in ours.names():
        mine = ours.read_f32(name)
        assert np.abs(mine - ref[name]).max() < 1e-5, name
        changed += not np.array_equal(mine, Checkpoint(base_dir).read_f32(name))
    assert changed == len(LoraAdapter(adapter_dir).pairs) + len(LoraAdapter(adapter_dir).replaced)


def _ulp_bf16(x: np.ndarray) -> np.ndarray:
    return np.spacing(np.abs(x).astype(np.float32)) * 2.0**16  # 24 -> 8 significand bits


@pytest.mark.parametrize("variant", ["qwen2-plain", "qwen3-modules-to-save", "qwen2-rslora"])
def test_bf16_merge_rounds_once(peft_adapter, tmp_path, variant):
    base_dir, adapter_dir = peft_adapter(variant)
    # the bf16 base is exact in f32, so peft's f32 merge is W + delta before any bf16 rounding
    exact = _peft_merged_state(base_dir, adapter_dir, torch.float32)
    base = {k: v.numpy() for k, v in _hf(base_dir, torch.float32).state_dict().items()}
    peft16 = _peft_merged_state(base_dir, adapter_dir, torch.bfloat16)
    merged = merge_checkpoint(base_dir, adapter_dir, tmp_path / "merged").path
    ours = {k: v.float().numpy() for k, v in st_torch.load_file(merged / "model.safetensors").items()}
    assert ours.keys() == exact.keys() - {"lm_head.weight"} or ours.keys() == exact.keys()
    for name, mine in ours.items():
        once = torch.from_numpy(exact[name]).to(torch.bfloat16).float().numpy()
        # one rounding of the same sum: equal but where f32 summation order (an f32 ulp of the
        # terms, which under cancellation exceeds a bf16 ulp of the sum) tips the rounding
        delta = exact[name] - base[name]
        f32_order = 4 * np.spacing((np.abs(base[name]) + np.abs(delta)).astype(np.float32))
        assert (np.abs(mine - once) <= _ulp_bf16(once) + f32_order).all(), name
        assert np.mean(mine == once) > 0.999, name
        # peft rounds the delta to bf16 before adding it (a second rounding): its result may sit
        # half an ulp of the delta away from W + delta, which under cancellation is several ulps
        # of the result; beyond that bound it would be a different merge, not a rounding
        bound = np.maximum(_ulp_bf16(mine), _ulp_bf16(peft16[name])) + _ulp_bf16(delta) / 2
        assert (np.abs(mine - peft16[name]) <= bound + f32_order).all(), name


def test_merged_checkpoint_logits_match_peft_unmerged(peft_adapter, tmp_path):
    base_dir, adapter_dir = peft_adapter("qwen3-modules-to-save")
    with torch.no_grad():
        ref = peft.PeftModel.from_pretrained(_hf(base_dir, torch.float32), adapter_dir)(
            torch.tensor([PROMPT_IDS])).logits[0, -1].numpy()
        merged = merge_checkpoint(base_dir, adapter_dir, tmp_path / "m", dtype="f32").path
        ours = _hf(merged, torch.float32)(torch.tensor([PROMPT_IDS])).logits[0, -1].numpy()
    assert np.abs(ours - ref).max() < 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("variant", ["qwen2-plain", "qwen3-modules-to-save", "qwen2-top-layer"])
def test_merge_on_convert_gguf_matches_peft_in_llama_cpp(peft_adapter, tmp_path, variant):
    base_dir, adapter_dir = peft_adapter(variant)
    with torch.no_grad():
        ref = peft.PeftModel.from_pretrained(_hf(base_dir, torch.float32), adapter_dir)(
            torch.tensor([PROMPT_IDS])).logits[0, -1].numpy()
    out = tmp_path / "merged.gguf"
    convert_checkpoint(base_dir, out, outtype="f32", adapter=adapter_dir)
    assert not list(tmp_path.glob("*.safetensors"))  # no merged checkpoint on disk
    llm = load(out, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    ours = logits_for(llm, PROMPT_IDS)
    assert np.abs(ours - ref).max() < 1e-3 * np.abs(ref).max()


@pytest.mark.parametrize("variant", ["qwen2-plain", "qwen3-plain", "qwen2-rslora", "qwen2-patterns", "qwen3-layers-pattern"])
def test_gguf_lora_on_base_equals_merged_gguf(peft_adapter, tiny_gguf, tmp_path, variant):
    base_dir, adapter_dir = peft_adapter(variant)
    model_name = VARIANTS[variant][0]
    merged = tmp_path / "merged.gguf"
    convert_checkpoint(base_dir, merged, outtype="f32", adapter=adapter_dir)
    lora = tmp_path / "adapter.gguf"
    export_lora(adapter_dir, base_dir, lora, outtype="f32")
    with_lora = load(tiny_gguf(model_name, "f32"), lora_path=str(lora))
    reference = load(merged)
    for cut in (4, 8, len(PROMPT_IDS)):
        a, b = logits_for(with_lora, PROMPT_IDS[:cut]), logits_for(reference, PROMPT_IDS[:cut])
        assert a.argmax() == b.argmax()
        assert float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) > 0.999
    # and the adapter does something: the base alone disagrees
    plain = logits_for(load(tiny_gguf(model_name, "f32")), PROMPT_IDS)
    assert not np.allclose(plain, logits_for(reference, PROMPT_IDS), atol=1e-3)


def test_synthetic_adapter_loads_in_peft_and_matches_our_merge(tiny_checkpoint, tmp_path):
    spec = SPECS["tiny-qwen2"]
    adapter_dir = write_adapter(spec, vocab_size_of(spec), tmp_path / "syn", rank=64, alpha=128)
    base_dir = tiny_checkpoint("tiny-qwen2")
    ref = _peft_merged_state(base_dir, adapter_dir, torch.float32)
    ours = MergedCheckpoint(Checkpoint(base_dir), LoraAdapter(adapter_dir))
    for name in ours.names():
        assert np.abs(ours.read_f32(name) - ref[name]).max() < 1e-5, name


def test_export_equals_llama_cpp_lora_converter(peft_adapter, tmp_path):
    import subprocess
    import sys

    import gguf

    from benchmarks.llama_cpp_ref import find_source

    src = find_source()
    if src is None:
        pytest.skip("llama.cpp source not unpacked (make llama-cpp-src)")
    base_dir, adapter_dir = peft_adapter("qwen3-plain")
    ref_path = tmp_path / "ref.gguf"
    r = subprocess.run([sys.executable, str(src / "convert_lora_to_gguf.py"), str(adapter_dir), "--base", str(base_dir),
                        "--outfile", str(ref_path), "--outtype", "f32"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ours_path = export_lora(adapter_dir, base_dir, tmp_path / "ours.gguf").path
    ref, ours = gguf.GGUFReader(ref_path), gguf.GGUFReader(ours_path)
    rt, ot = {t.name: t for t in ref.tensors}, {t.name: t for t in ours.tensors}
    assert rt.keys() == ot.keys()
    for name, t in rt.items():
        assert t.tensor_type == ot[name].tensor_type and list(t.shape) == list(ot[name].shape), name
        assert np.array_equal(np.asarray(t.data).view(np.uint8), np.asarray(ot[name].data).view(np.uint8)), name
    for key in ("general.type", "adapter.type", "adapter.lora.alpha", "general.architecture"):
        assert ref.fields[key].contents() == ours.fields[key].contents(), key


# ------------------------------------------------------------------ bad input


def _cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    return code, lines


@pytest.fixture
def adapter_copy(peft_adapter, tmp_path):
    def get(variant="qwen2-plain"):
        base_dir, adapter_dir = peft_adapter(variant)
        return base_dir, shutil.copytree(adapter_dir, tmp_path / f"copy-{variant}")
    return get


def _edit_config(adapter_dir, **changes):
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    cfg.update(changes)
    (adapter_dir / "adapter_config.json").write_text(json.dumps(cfg))


def _assert_refused(capsys, tmp_path, base_dir, adapter_dir, *needles):
    for argv in (("merge", "--base", str(base_dir), "--adapter", str(adapter_dir), "-o", str(tmp_path / "out")),
                 ("convert", str(base_dir), "--adapter", str(adapter_dir), "-o", str(tmp_path / "out.gguf")),
                 ("export-lora", str(adapter_dir), "--base", str(base_dir), "-o", str(tmp_path / "a.gguf"))):
        code, lines = _cli(capsys, *argv)
        assert code == 2 and len(lines) == 1, (argv[0], lines)
        for needle in needles:
            assert needle in lines[0], lines[0]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(("out", "a.gguf", ".out", ".a.gguf"))]
    assert leftovers == []


def test_adapter_for_another_base_names_tensor_and_shapes(capsys, tmp_path, peft_adapter, tiny_checkpoint):
    _, adapter_dir = peft_adapter("qwen3-plain")
    _assert_refused(capsys, tmp_path, tiny_checkpoint("tiny-qwen2"), adapter_dir,
                    "another base", "self_attn.k_proj", "[8, 256]", "[256, 8]", "[128, 256]")


def test_missing_adapter_config(capsys, tmp_path, adapter_copy):
    base_dir, adapter_dir = adapter_copy()
    (adapter_dir / "adapter_config.json").unlink()
    _assert_refused(capsys, tmp_path, base_dir, adapter_dir, "adapter_config.json")


def test_target_module_absent_from_base(capsys, tmp_path, adapter_copy):
    base_dir, adapter_dir = adapter_copy()
    _edit_config(adapter_dir, target_modules=["q_proj", "c_attn"])
    _assert_refused(capsys, tmp_path, base_dir, adapter_dir, "c_attn", "not present")


@pytest.mark.parametrize("change, needle", [({"use_dora": True}, "DoRA"), ({"peft_type": "IA3"}, "IA3"),
                                            ({"bias": "all"}, "bias"), ({"layers_to_transform": [0]}, "layers_to_transform")])
def test_unsupported_options_are_refused(capsys, tmp_path, adapter_copy, change, needle):
    base_dir, adapter_dir = adapter_copy()
    _edit_config(adapter_dir, **change)
    _assert_refused(capsys, tmp_path, base_dir, adapter_dir, needle)
