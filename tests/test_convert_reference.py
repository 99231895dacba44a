"""Converted GGUFs against the reference: transformers' logits and tokenizer, in llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import llama_cpp  # noqa: E402

from radlite_edge.llm import last_logits, load, logits_for  # noqa: E402

from .conftest import TINY  # noqa: E402

PROMPTS = [
    "There is a 12 mm spiculated nodule in the right upper lobe. Impression: Lung-RADS 4B.",
    "<|im_start|>system\nYou are an expert radiologist.<|im_end|>\n<|im_start|>user\n[TASK: n_staging] "
    "Two ipsilateral mediastinal nodes, 14 mm.<|im_end|>\n<|im_start|>assistant\n",
    "Compared with 2023-04-11, the left pleural effusion has resolved.",
]

TOKENIZE_CASES = [
    "Findings: 14 mm solid nodule in the right thyroid lobe, TI-RADS TR4.",
    "BI-RADS 4A; bi-rads: 4a; BIRADS 4a",
    "LI-RADS LR-5 observation in segment VII with washout.",
    "No evidence of pneumothorax. Cannot exclude small effusion.",
    "1234567890 3.14 0.5cm 12x8x7 mm",
    "   leading spaces and    runs   of   spaces   ",
    "tabs\tand\nnewlines\r\n\n\nparagraphs",
    "Ünïcödé: café, naïve, Zürich, Ålesund",
    "ギリシャ語 αβγ δ 肺結節 폐결절",
    "emoji 🫁🩻 and symbols ± × ÷ ≥ ≤ °",
    "<|im_start|>user\nHello<|im_end|>",
    "<|endoftext|><|im_start|><|im_end|>",
    "don't it's we're they've I'm you'll he'd",
    "UPPER CASE REPORT: CARDIOMEGALY.",
    "N2 M0 T3a; pT1b(m) N1mi",
    "",
    " ",
    "\n",
    "a",
    "Impression:\n1. Stable 4 mm nodule.\n2. No acute findings.",
]


def _hf_model(path):
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, output_loading_info=True
    )
    return model.eval(), info


def _hf_last_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].numpy()


@pytest.mark.parametrize("name", TINY)
def test_tiny_checkpoint_loads_in_transformers_without_missing_weights(tiny_checkpoint, name):
    _, info = _hf_model(tiny_checkpoint(name))
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info


@pytest.mark.parametrize("name", TINY)
def test_f32_logits_match_transformers(tiny_checkpoint, tiny_gguf, name):
    model, _ = _hf_model(tiny_checkpoint(name))
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint(name))
    # f32 KV cache: llama.cpp's default f16 cache would add its own rounding
    llm = load(tiny_gguf(name, "f32"), type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        hf = _hf_last_logits(model, ids)
        ours = logits_for(llm, ids)
        assert ours.shape == hf.shape
        assert np.abs(ours - hf).max() < 1e-3 * np.abs(hf).max(), prompt


@pytest.mark.parametrize("name", TINY)
def test_f16_logits_agree_with_transformers(tiny_checkpoint, tiny_gguf, name):
    model, _ = _hf_model(tiny_checkpoint(name))
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint(name))
    llm = load(tiny_gguf(name, "f16"))
    for prompt in PROMPTS:
        ids = tok(prompt)["input_ids"]
        hf = _hf_last_logits(model, ids)
        ours = logits_for(llm, ids)
        assert ours.argmax() == hf.argmax(), prompt
        cos = float(ours @ hf / (np.linalg.norm(ours) * np.linalg.norm(hf)))
        assert cos > 0.999, (prompt, cos)


@pytest.mark.parametrize("name", TINY)
def test_tokenization_matches_hf(tiny_checkpoint, tiny_gguf, name):
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint(name))
    llm = load(tiny_gguf(name, "f16"))
    assert len(TOKENIZE_CASES) >= 20
    for text in TOKENIZE_CASES:
        hf = tok(text, add_special_tokens=False)["input_ids"]
        ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        assert ours == hf, text
        # and back: llama.cpp's detokenizer gives the text again
        assert llm.detokenize(ours, special=True).decode("utf-8") == text


@pytest.mark.parametrize("name", TINY)
def test_greedy_generation_identical(tiny_checkpoint, tiny_gguf, name):
    model, _ = _hf_model(tiny_checkpoint(name))
    tok = transformers.AutoTokenizer.from_pretrained(tiny_checkpoint(name))
    llm = load(tiny_gguf(name, "f32"), type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "[TASK: m_staging] Liver metastases are present."}],
        tokenize=False, add_generation_prompt=True,
    )
    ids = tok(prompt)["input_ids"]
    hf_ids = list(ids)
    with torch.no_grad():
        for _ in range(16):
            hf_ids.append(int(model(torch.tensor([hf_ids])).logits[0, -1].argmax()))
    llm.reset()
    llm.eval(ids)
    ours = list(ids)
    for _ in range(16):
        nxt = int(last_logits(llm).argmax())
        ours.append(nxt)
        llm.eval([nxt])
    assert ours[len(ids):] == hf_ids[len(ids):]
