"""Our converter against llama.cpp's own convert_hf_to_gguf.py on the same checkpoint.

Same tensor names, types, shapes and bytes; same metadata keys and values (but the
model's display name). This is what "llama.cpp loads the file as it would load its
own" means, checked at the byte level. Needs llama.cpp's source (``make
llama-cpp-src``, which .ci/run does).
"""

from __future__ import annotations

import subprocess

import gguf
import numpy as np
import pytest

from benchmarks.llama_cpp_ref import command, find_source

from .conftest import TINY

pytest.importorskip("torch")
pytest.importorskip("sentencepiece")
SRC = find_source()
pytestmark = pytest.mark.skipif(SRC is None, reason="llama.cpp source not unpacked (make llama-cpp-src)")

# Keys that name the file rather than describe the model.
NAMING_KEYS = {"general.name", "general.basename"}


def _fields(reader: gguf.GGUFReader) -> dict[str, object]:
    out = {}
    for key, f in reader.fields.items():
        if key.startswith("GGUF.") or key in NAMING_KEYS:
            continue
        if f.types[0] == gguf.GGUFValueType.ARRAY:
            out[key] = (tuple(f.types), [f.contents(i) for i in range(len(f.data))])
        else:
            out[key] = (tuple(f.types), f.contents())
    return out


@pytest.mark.parametrize("outtype", ["f32", "f16", "bf16", "q8_0"])
@pytest.mark.parametrize("name", TINY)
def test_same_file_as_llama_cpp_converter(tmp_path, tiny_checkpoint, tiny_gguf, name, outtype):
    ref_path = tmp_path / "ref.gguf"
    argv, env = command(tiny_checkpoint(name), ref_path, outtype)
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    ref, ours = gguf.GGUFReader(ref_path), gguf.GGUFReader(tiny_gguf(name, outtype))

    ref_t = {t.name: t for t in ref.tensors}
    our_t = {t.name: t for t in ours.tensors}
    assert sorted(our_t) == sorted(ref_t)  # same names (the order in the file is free)
    for tname, rt in ref_t.items():
        ot = our_t[tname]
        assert ot.tensor_type == rt.tensor_type, tname
        assert list(ot.shape) == list(rt.shape), tname
        assert np.array_equal(np.asarray(ot.data).view(np.uint8), np.asarray(rt.data).view(np.uint8)), tname

    ref_f, our_f = _fields(ref), _fields(ours)
    assert sorted(our_f) == sorted(ref_f)
    for key, value in ref_f.items():
        assert our_f[key] == value, key
