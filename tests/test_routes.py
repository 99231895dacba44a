"""The routes file: its form, relative paths, and each mistake as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radlite_edge.errors import UserError
from radlite_edge.routes import (
    FORMAT, Route, Routes, load_routes, published_routes, save_routes, uniform_routes,
)
from radlite_edge.tasks.interface import PUBLISHED
from radlite_edge.tasks.labels import TASK_NAMES


@pytest.fixture
def folder(tmp_path) -> Path:
    for name in ("base.gguf", "other.gguf", "lora.gguf"):
        (tmp_path / name).write_bytes(b"GGUF")
    return tmp_path


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def test_save_then_load_gives_the_same_routes_with_paths_relative_to_the_file(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "far.gguf"
    outside.write_bytes(b"GGUF")
    routes = Routes({
        "rads_assignment": Route("rads_assignment", folder / "base.gguf", "q4_k_m", folder / "lora.gguf",
                                 "strict", 20, 0.0),
        "radiology_ner": Route("radiology_ner", outside),
    }, source="test")
    path = save_routes(routes, folder / "routes.json")
    stored = json.loads(path.read_text())
    assert stored["format"] == FORMAT
    assert stored["routes"]["rads_assignment"] == {"model": "base.gguf", "level": "Q4_K_M", "adapter": "lora.gguf",
                                                   "decoding": "strict", "max_tokens": 20, "temperature": 0.0}
    assert stored["routes"]["radiology_ner"]["model"] == str(outside)  # outside the folder: absolute
    loaded = load_routes(path)
    assert dict(loaded.routes) == dict(routes.routes)
    assert loaded.source == str(path)
    assert loaded.models() == (folder / "base.gguf", outside)
    assert list(loaded.tasks) == ["rads_assignment", "radiology_ner"]  # the registry's order


def test_a_routes_folder_moves_as_one_piece(folder, tmp_path_factory):
    save_routes(uniform_routes(folder / "base.gguf", folder / "lora.gguf"), folder / "routes.json")
    moved = tmp_path_factory.mktemp("moved")
    for f in folder.iterdir():
        (moved / f.name).write_bytes(f.read_bytes())
    routes = load_routes(moved / "routes.json")
    assert {r.model for r in routes.routes.values()} == {moved / "base.gguf"}
    assert {r.adapter for r in routes.routes.values()} == {moved / "lora.gguf"}


def test_uniform_and_published_routes():
    uni = uniform_routes("m.gguf", decoding="strict")
    assert uni.tasks == TASK_NAMES and {r.decoding for r in uni.routes.values()} == {"strict"}
    pub = published_routes(q25="qwen25.gguf", q3="qwen3.gguf", level="Q4_K_M")
    assert pub.tasks == TASK_NAMES
    for task in TASK_NAMES:
        assert pub[task].model == Path("qwen25.gguf" if PUBLISHED.routes[task] == "q25" else "qwen3.gguf")
        assert pub[task].answer_tokens == PUBLISHED.max_tokens[task]
    assert pub["radiology_ner"].model == Path("qwen3.gguf") and pub["m_staging"].model == Path("qwen25.gguf")
    assert Route("m_staging", Path("m.gguf"), max_tokens=3).answer_tokens == 3


def test_a_task_not_routed_names_the_routed_ones():
    routes = Routes({"m_staging": Route("m_staging", Path("m.gguf"))}, source="r.json")
    with pytest.raises(UserError, match=r"task 'n_staging' is not routed .*r.json routes m_staging"):
        routes["n_staging"]


@pytest.mark.parametrize("content, message", [
    ("{not json", r"invalid JSON at line 1"),
    ([1, 2], r"not a routes file"),
    ({"format": "radlite-routes/9", "routes": {}}, r"format 'radlite-routes/9'"),
    ({"format": FORMAT, "routes": []}, r"\"routes\" must be an object"),
    ({"format": FORMAT, "routes": {}}, r"no task is routed"),
    ({"format": FORMAT, "routes": {}, "extra": 1}, r"unknown key 'extra'"),
    ({"format": FORMAT, "routes": {"rads": {"model": "base.gguf"}}}, r"unknown task 'rads'"),
    ({"format": FORMAT, "routes": {"m_staging": {}}}, r"route 'm_staging' has no model"),
    ({"format": FORMAT, "routes": {"m_staging": "base.gguf"}}, r"must be an object"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "decode": "x"}}},
     r"unknown field 'decode' \(did you mean 'decoding'\?\)"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.bin"}}}, r"not a .gguf file"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": 3}}}, r"give the path of a .gguf file"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "missing.gguf"}}}, r"model .*missing.gguf does not exist"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "adapter": "no.gguf"}}},
     r"adapter .*no.gguf does not exist"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "decoding": "free"}}},
     r"decoding 'free': choose grammar or strict"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "max_tokens": 0}}}, r"max_tokens 0"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "max_tokens": True}}}, r"max_tokens True"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "temperature": -1}}}, r"temperature -1"),
    ({"format": FORMAT, "routes": {"m_staging": {"model": "base.gguf", "level": "Q9"}}},
     r"unknown quantization level 'Q9'"),
])
def test_a_bad_routes_file_is_one_line_naming_the_file(folder, content, message):
    path = _write(folder / "routes.json", content)
    with pytest.raises(UserError, match=message) as e:
        load_routes(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_missing_and_binary_routes_files(folder):
    with pytest.raises(UserError, match="no such routes file"):
        load_routes(folder / "none.json")
    (folder / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        load_routes(folder / "bin.json")


def test_save_is_atomic_and_leaves_no_debris_on_failure(folder, monkeypatch):
    path = save_routes(uniform_routes(folder / "base.gguf"), folder / "routes.json")
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", boom)
    with pytest.raises(OSError):
        save_routes(uniform_routes(folder / "other.gguf"), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["base.gguf", "lora.gguf", "other.gguf", "routes.json"]
