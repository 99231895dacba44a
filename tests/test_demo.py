"""`radlite demo` (what `make demo` runs) goes through every step on the embedded default."""

from __future__ import annotations

from rich.console import Console

from radlite_edge.demo import run_demo


def test_demo_runs_end_to_end(tmp_path):
    console = Console(record=True, width=200)
    assert run_demo(tmp_path, n_threads=2, console=console) == 0
    text = console.export_text()
    for name in ("tiny-qwen2", "tiny-qwen3"):
        for level in ("F16", "Q8_0"):
            assert (tmp_path / f"{name}-{level}.gguf").is_file()
            assert (tmp_path / f"{name}-{level}.gguf.manifest.json").is_file()
    assert text.count("tiny-qwen") >= 4 and "Q8_0" in text
    # a second run reuses the checkpoints and the up-to-date GGUFs
    assert run_demo(tmp_path, n_threads=2, console=console) == 0
