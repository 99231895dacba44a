"""`radlite import`: GGUF back to an HF checkpoint, held to transformers' own GGUF loader and llama.cpp."""

from __future__ import annotations

import json

import numpy as np
import pytest

from radlite_edge.cli import main
from radlite_edge.convert.gguf_to_hf import hf_names, import_gguf
from radlite_edge.convert.archs import ARCHS
from radlite_edge.embedded import find_smollm2
from radlite_edge.gguf_file import open_model

TEXTS = ["Findings: 1.4 cm spiculated mass in the RUL, BI-RADS 4A.  Multiple   spaces\n\nand 2023 numbers 12345!",
         "<|im_start|>user\nHello<|im_end|>\n", "naïve café – résumé 😀 [TASK: n_staging]\nN2"]
SMOLLM2 = find_smollm2()


def _tensors(path):
    import gguf

    return {t.name: np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32) for t in open_model(path).tensors}


@pytest.mark.parametrize("name", ["tiny-qwen2", "tiny-qwen3"])
def test_import_then_convert_gives_back_the_same_tensors_and_tokenizer(tmp_path, tiny_gguf, tiny_checkpoint, name):
    from tokenizers import Tokenizer

    source = tiny_gguf(name, "f16")
    imported = tmp_path / "ckpt"
    result = import_gguf(source, imported)
    assert result.arch == name.split("-")[1] and not result.skipped
    assert import_gguf(source, imported).skipped  # up to date: kept
    back = tmp_path / "back.gguf"
    assert main(["convert", str(imported), "-o", str(back), "--outtype", "f16"]) == 0
    a, b = _tensors(source), _tensors(back)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    original = Tokenizer.from_file(str(tiny_checkpoint(name) / "tokenizer.json"))
    ours = Tokenizer.from_file(str(imported / "tokenizer.json"))
    for text in TEXTS:
        assert ours.encode(text).ids == original.encode(text).ids, text
    config = json.loads((imported / "config.json").read_text())
    assert config["model_type"] == name.split("-")[1] and config["tie_word_embeddings"] == (name == "tiny-qwen2")


def test_the_name_table_agrees_with_gguf_in_both_directions():
    for arch in ARCHS.values():
        names = hf_names(arch, 2)
        assert len(set(names.values())) == len(names)  # one HF name per GGUF tensor


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 base is not set up (make smollm2)")
def test_smollm2_imports_as_transformers_loads_it_and_runs_as_llama_cpp(tmp_path):
    """The real embedded base: the same tensors and tokenizer as transformers' GGUF loader; converted back
    to F32 GGUF, llama.cpp gives the imported checkpoint's logits (the converter tests' tolerance)."""
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from radlite_edge.llm import load, logits_for

    imported = tmp_path / "smollm2"
    assert main(["import", str(SMOLLM2), "-o", str(imported)]) == 0
    ref = AutoModelForCausalLM.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name, dtype=torch.float32)
    ours = load_file(imported / "model.safetensors")
    state = ref.state_dict()
    assert set(ours) == set(state) - ({"lm_head.weight"} if ref.config.tie_word_embeddings else set())
    assert all(np.array_equal(ours[k], state[k].numpy()) for k in ours)
    tok_ref = AutoTokenizer.from_pretrained(SMOLLM2.parent, gguf_file=SMOLLM2.name)
    tok = AutoTokenizer.from_pretrained(imported)
    for text in TEXTS:
        assert tok(text)["input_ids"] == tok_ref(text)["input_ids"], text
    f32 = tmp_path / "smollm2-F32.gguf"
    assert main(["convert", str(imported), "-o", str(f32), "--outtype", "f32"]) == 0
    model = AutoModelForCausalLM.from_pretrained(imported, dtype=torch.float32)
    llm = load(f32, n_ctx=256)
    for text in TEXTS[:2]:
        ids = tok(text)["input_ids"]
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
        with torch.no_grad():
            hf = model(torch.tensor([ids])).logits[0, -1].numpy()
        ours_logits = logits_for(llm, ids)
        ours_logits = ours_logits[-1] if ours_logits.ndim == 2 else ours_logits
        assert np.abs(ours_logits - hf).max() < 1e-3 * np.abs(hf).max(), text
