"""``radlite bench --synthetic``: full-size random models at the levels asked, made once and cached.

A device can then be measured with no weights at hand: checkpoint (``radlite synth``)
→ the levels ``radlite convert`` writes directly (Q8_0, F16, ...) → an F16 GGUF →
llama.cpp's quantizer for the rest (``radlite quantize``). The F16 intermediate is
deleted afterwards unless F16 itself was asked for: it is the largest file of all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

from radlite_edge.errors import UserError
from radlite_edge.levels import Level, get_level
from radlite_edge.manifest import manifest_path
from radlite_edge.synth.models import get_spec, is_current, write_checkpoint

SHARD_BYTES = 4 << 30


def gguf_path(models_dir: Path, name: str, level: Level) -> Path:
    """The one naming of a cached level, shared with ``radlite quantize`` (NAME-LEVEL.gguf)."""
    from radlite_edge.convert.quantize import output_path

    return output_path(models_dir, name, level)


def _complete(path: Path) -> bool:
    from radlite_edge.convert.inspect_gguf import open_complete

    if not path.is_file():
        return False
    try:
        open_complete(path)
        return True
    except UserError:
        return False


def ensure_models(names: Sequence[str], levels: Sequence[str], models_dir: Path, *,
                  n_threads: int | None = None, say: Callable[[str], None] = lambda s: None) -> list[Path]:
    """The GGUF for every (model, level), made where missing; in the order model, then level."""
    from radlite_edge.convert.hf_to_gguf import convert_checkpoint
    from radlite_edge.convert.quantize import quantize_ladder

    specs = [get_spec(n.strip()) for n in names if n.strip()]
    wanted = list(dict.fromkeys(get_level(lv) for lv in levels if lv.strip()))
    if not specs or not wanted:
        raise UserError("--synthetic needs model names and --levels, e.g. --synthetic qwen2.5-3b --levels q4_k_m")
    needing = [lv.name for lv in wanted if lv.needs_imatrix]
    if needing:
        raise UserError(f"{', '.join(needing)} need an importance matrix, which random weights cannot give: "
                        f"choose levels without one")
    models_dir = Path(models_dir)
    n_threads = n_threads or os.cpu_count()
    paths = []
    for spec in specs:
        ckpt = models_dir / spec.name
        shard = None if spec.tiny else SHARD_BYTES
        todo = [lv for lv in wanted if not _complete(gguf_path(models_dir, spec.name, lv))]
        if todo and not is_current(ckpt, spec, seed=0, shard_bytes=shard):
            say(f"{ckpt}: writing the {spec.name} random checkpoint")
            write_checkpoint(spec, ckpt, seed=0, shard_bytes=shard)
        direct = [lv for lv in todo if lv.maker == "gguf"]
        quantized = [lv for lv in todo if lv.maker != "gguf"]
        for lv in direct:
            say(f"{gguf_path(models_dir, spec.name, lv)}: converting")
            convert_checkpoint(ckpt, gguf_path(models_dir, spec.name, lv), outtype=lv.name.lower(),
                               n_threads=n_threads, name=spec.name)
        if quantized:
            f16_level = get_level("F16")
            f16 = gguf_path(models_dir, spec.name, f16_level)
            made_f16 = not f16.is_file()
            say(f"{f16}: converting (the quantizer's input)")
            convert_checkpoint(ckpt, f16, outtype="f16", n_threads=n_threads, name=spec.name)
            quantize_ladder(f16, [lv.name for lv in quantized], models_dir, n_threads=n_threads, name=spec.name,
                            on_level=lambda lv, out: say(f"{out}: quantizing with llama.cpp"))
            if made_f16 and f16_level not in wanted:
                f16.unlink()
                manifest_path(f16).unlink(missing_ok=True)
        paths += [gguf_path(models_dir, spec.name, lv) for lv in wanted]
    return paths
