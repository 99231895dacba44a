"""radlite_edge.llm against llama.cpp's own C API as the reference."""

from __future__ import annotations

import numpy as np
import pytest

import llama_cpp

from radlite_edge.convert.quantize import quantize_ladder
from radlite_edge.llm import load, logits_for

PROMPT = [5, 17, 200, 33, 412, 7, 99, 845, 301, 12, 66, 700]


def _raw_logits(path, *, use_extra_bufts: bool) -> np.ndarray:
    """The last logits of PROMPT through llama.cpp's C API alone, model params set directly."""
    mp = llama_cpp.llama_model_default_params()
    mp.use_extra_bufts = use_extra_bufts
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mp)
    assert model
    cp = llama_cpp.llama_context_default_params()
    cp.n_ctx, cp.n_threads, cp.n_threads_batch = 256, 2, 2
    cp.flash_attn_type = 0  # as llama-cpp-python's Llama(flash_attn=False)
    ctx = llama_cpp.llama_init_from_model(model, cp)
    tokens = (llama_cpp.llama_token * len(PROMPT))(*PROMPT)
    try:
        assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(tokens, len(PROMPT))) == 0
        n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, -1), shape=(n_vocab,)).copy()
    finally:
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)


def test_repack_switch_is_llama_cpps(tiny_gguf, tmp_path):
    f16 = tiny_gguf("tiny-qwen2", "f16")
    path = quantize_ladder(f16, "q4_k_m", tmp_path, n_threads=2)[0].path
    ours = {}
    for repack in (True, False):
        llm = load(path, n_ctx=256, n_threads=2, repack=repack)
        try:
            assert llm.model_params.use_extra_bufts is repack
            ours[repack] = logits_for(llm, PROMPT)
        finally:
            llm.close()
        assert np.array_equal(ours[repack], _raw_logits(path, use_extra_bufts=repack)), repack
    # the repacked Q4_K kernels accumulate in another order: the switch really changed the path
    assert not np.array_equal(ours[True], ours[False])
    # and the defaults of later loads are llama.cpp's again
    assert llama_cpp.llama_model_default_params().use_extra_bufts


def test_load_missing_file_is_a_user_error(tmp_path):
    from radlite_edge.errors import UserError

    with pytest.raises(UserError, match="no such model file"):
        load(tmp_path / "missing.gguf")
