"""peft LoRA adapters, read and merged without torch, one tensor slab at a time.

``LoraAdapter`` reads ``adapter_config.json`` and ``adapter_model.safetensors`` as peft
writes them, resolves which base weight each A/B pair belongs to and at what scale
(``lora_alpha / r``, or ``/ sqrt(r)`` with rsLoRA, per-module ``rank_pattern`` and
``alpha_pattern``), and refuses what it cannot reproduce exactly. ``MergedCheckpoint``
is a base checkpoint seen through an adapter: it reads like ``Checkpoint`` (rows as
float32), so the HF writer and the GGUF converter stream merged weights the same way.

Merging follows peft's ``merge_and_unload``: W + scale * (B @ A) (transposed with
``fan_in_fan_out``), computed in float32 and rounded once to the output type.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radlite_edge.errors import UserError
from radlite_edge.safetensors_io import Checkpoint, TensorEntry

CONFIG_NAME = "adapter_config.json"
PEFT_PREFIX = "base_model.model."

# Options that change what a merge means and that we do not implement: refused by name.
_UNSUPPORTED = {
    "use_dora": "DoRA (use_dora)",
    "use_qalora": "QA-LoRA (use_qalora)",
    "lora_bias": "LoRA biases (lora_bias)",
    "layer_replication": "layer_replication",
    "target_parameters": "target_parameters",
    "trainable_token_indices": "trainable_token_indices",
    "alora_invocation_tokens": "aLoRA (alora_invocation_tokens)",
}


def _int_tuple(value) -> tuple[int, ...] | None:
    if value in (None, [], ()):
        return None
    return (int(value),) if isinstance(value, int) else tuple(int(v) for v in value)


@dataclass(frozen=True)
class AdapterConfig:
    r: int
    lora_alpha: float
    use_rslora: bool
    target_modules: tuple[str, ...] | str  # names, or one regex matched against the full module name
    fan_in_fan_out: bool
    modules_to_save: tuple[str, ...]
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    base_model: str | None
    layers_to_transform: tuple[int, ...] | None = None  # LoRA only on blocks with these indexes (peft)
    layers_pattern: tuple[str, ...] = ()  # the module-name part before a block index ("layers")

    @classmethod
    def load(cls, directory: Path) -> "AdapterConfig":
        path = directory / CONFIG_NAME
        if directory.is_file():
            raise UserError(f"adapter {directory} is a file: give the adapter's folder (the one that holds "
                            f"{CONFIG_NAME} and adapter_model.safetensors)")
        if not directory.is_dir():
            raise UserError(f"adapter folder {directory} does not exist")
        if not path.is_file():
            raise UserError(f"{directory}: no {CONFIG_NAME} (is this a peft LoRA adapter folder?)")
        try:
            raw = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(f"{path}: not valid JSON") from None
        peft_type = raw.get("peft_type")
        if peft_type != "LORA":
            raise UserError(f"{path}: peft_type {peft_type!r} is not supported (only LORA adapters)")
        for key, what in _UNSUPPORTED.items():
            if raw.get(key) not in (None, False, [], {}):
                raise UserError(f"{path}: {what} is not supported; merge it with peft instead")
        if raw.get("bias", "none") != "none":
            raise UserError(f"{path}: bias={raw['bias']!r} is not supported (only bias='none')")
        targets = raw.get("target_modules")
        if not targets:
            raise UserError(f"{path}: target_modules is empty")
        try:
            config = cls(
                r=int(raw["r"]),
                lora_alpha=float(raw["lora_alpha"]),
                use_rslora=bool(raw.get("use_rslora", False)),
                target_modules=targets if isinstance(targets, str) else tuple(targets),
                fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
                modules_to_save=tuple(raw.get("modules_to_save") or ()),
                rank_pattern={k: int(v) for k, v in (raw.get("rank_pattern") or {}).items()},
                alpha_pattern={k: float(v) for k, v in (raw.get("alpha_pattern") or {}).items()},
                base_model=raw.get("base_model_name_or_path"),
                layers_to_transform=_int_tuple(raw.get("layers_to_transform")),
                layers_pattern=tuple([raw["layers_pattern"]] if isinstance(raw.get("layers_pattern"), str)
                                     else raw.get("layers_pattern") or ()),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{path}: missing or invalid field {e}") from None
        config.check_numbers(path)
        return config

    def check_numbers(self, path: Path) -> None:
        """Ranks at least 1 and finite alphas: an infinite or NaN alpha scales every merged matrix to
        infinities, and the model would still load and answer."""
        ranks = {"r": self.r, **{f"rank_pattern[{k!r}]": v for k, v in self.rank_pattern.items()}}
        alphas = {"lora_alpha": self.lora_alpha, **{f"alpha_pattern[{k!r}]": v for k, v in self.alpha_pattern.items()}}
        for what, value in ranks.items():
            if value < 1:
                raise UserError(f"{path}: {what} {value}: a LoRA rank is at least 1")
        for what, value in alphas.items():
            if not math.isfinite(value):
                raise UserError(f"{path}: {what} {value}: not a finite number; give the alpha the adapter was "
                                "trained with")

    def targets(self, module: str) -> bool:
        """peft's rule: a regex must match the whole name (and then the layer rule does not apply); a
        list entry, the last name parts, within ``layers_to_transform`` when that is set."""
        if isinstance(self.target_modules, str):
            return re.fullmatch(self.target_modules, module) is not None
        found = any(module == t or module.endswith("." + t) for t in self.target_modules)
        return found and self.in_layers(module)

    def in_layers(self, module: str) -> bool:
        """peft's layer rule: the index after ``layers_pattern`` (else after any name part) is listed."""
        if self.layers_to_transform is None:
            return True
        patterns = self.layers_pattern or ("[^.]*",)
        for pattern in patterns:
            m = re.match(rf".*\.{pattern}\.(\d+)\.", module + ".")
            if m:
                return int(m.group(1)) in self.layers_to_transform
        return False

    def _pattern(self, patterns: dict, module: str):
        for key in patterns:  # exact name first, then a suffix pattern, as peft does
            if key == module:
                return patterns[key]
        for key in patterns:
            if re.match(rf"(.*\.)?({key})$", module):
                return patterns[key]
        return None

    def rank_and_scale(self, module: str) -> tuple[int, float]:
        r = self._pattern(self.rank_pattern, module) or self.r
        alpha = self._pattern(self.alpha_pattern, module)
        alpha = self.lora_alpha if alpha is None else alpha
        return r, alpha / (math.sqrt(r) if self.use_rslora else r)


@dataclass(frozen=True)
class LoraPair:
    module: str  # e.g. model.layers.0.self_attn.q_proj
    a: str  # adapter tensor names
    b: str
    rank: int
    scale: float


class LoraAdapter:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.config = AdapterConfig.load(self.directory)
        if not any(self.directory.glob("*.safetensors")):
            raise UserError(f"{self.directory}: no adapter_model.safetensors (pickled .bin adapters are not read)")
        self.tensors = Checkpoint(self.directory)
        self.pairs: dict[str, LoraPair] = {}  # base weight name -> pair
        self.replaced: dict[str, str] = {}  # base weight name -> adapter tensor (modules_to_save)
        self._index()

    def _index(self) -> None:
        halves: dict[str, dict[str, str]] = {}
        for name in self.tensors.names():
            local = name.removeprefix(PEFT_PREFIX)
            m = re.fullmatch(r"(.+)\.lora_([AB])(?:\.[^.]+)?\.weight", local)
            if m:
                halves.setdefault(m.group(1), {})[m.group(2)] = name
            elif "lora_embedding" in local:
                raise UserError(f"{self.directory}: LoRA on embeddings ({local}) is not supported")
            elif any(local == f"{mod}.weight" or local.endswith(f".{mod}.weight") for mod in self.config.modules_to_save):
                self.replaced[local] = name
            else:
                raise UserError(f"{self.directory}: adapter tensor {name} is neither a LoRA A/B weight nor in modules_to_save")
        for module, ab in sorted(halves.items()):
            if not self.config.in_layers(module):
                raise UserError(f"{self.directory}: {module} carries LoRA weights outside layers_to_transform "
                                f"{list(self.config.layers_to_transform or ())}")
            if set(ab) != {"A", "B"}:
                raise UserError(f"{self.directory}: {module} has lora_{''.join(ab)} without its pair")
            rank, scale = self.config.rank_and_scale(module)
            a_shape, b_shape = self.tensors.entries[ab["A"]].shape, self.tensors.entries[ab["B"]].shape
            if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != rank or b_shape[1] != rank:
                raise UserError(
                    f"{self.directory}: {module} has A {list(a_shape)} and B {list(b_shape)}, "
                    f"but adapter_config.json gives it rank {rank}"
                )
            self.pairs[f"{module}.weight"] = LoraPair(module, ab["A"], ab["B"], rank, scale)

    def check_finite(self, *, slab: int = 1 << 22) -> None:
        """Every adapter weight is a finite number; one inf or NaN spreads through the matrix it is
        merged into (or applied over), with no error anywhere after."""
        for name in self.tensors.names():
            for start, stop in self.tensors.row_slabs(name, slab):
                bad = int(np.count_nonzero(~np.isfinite(self.tensors.read_f32(name, start, stop))))
                if bad:
                    raise UserError(f"{self.directory}: tensor {name} holds non-finite values (inf or NaN): the "
                                    "adapter is broken; train or make it again")

    def check_against(self, base: Checkpoint) -> None:
        """Every pair and replacement must fit a base weight: names and shapes."""
        for weight, pair in self.pairs.items():
            if weight not in base:
                raise UserError(f"{self.directory}: the adapter targets {pair.module}, which the base checkpoint "
                                f"{base.directory} does not have (an adapter for another model?)")
            out_f, in_f = base.entries[weight].shape if not self.config.fan_in_fan_out else \
                tuple(reversed(base.entries[weight].shape))
            a_shape, b_shape = self.tensors.entries[pair.a].shape, self.tensors.entries[pair.b].shape
            if a_shape[1] != in_f or b_shape[0] != out_f:
                raise UserError(
                    f"{self.directory}: adapter made for another base: {pair.module} has lora_A {list(a_shape)} and "
                    f"lora_B {list(b_shape)}, but base weight {weight} is {list(base.entries[weight].shape)}"
                )
        for weight, name in self.replaced.items():
            if weight not in base:
                raise UserError(f"{self.directory}: modules_to_save replaces {weight}, which the base checkpoint "
                                f"does not hold (tied embeddings are not supported here)")
            if self.tensors.entries[name].shape != base.entries[weight].shape:
                raise UserError(f"{self.directory}: adapter made for another base: {name} is "
                                f"{list(self.tensors.entries[name].shape)}, base {weight} is "
                                f"{list(base.entries[weight].shape)}")
        if not isinstance(self.config.target_modules, str):
            modules = {n.removesuffix(".weight") for n in base.names() if n.endswith(".weight")}
            for target in self.config.target_modules:
                if not any(m == target or m.endswith("." + target) for m in modules):
                    raise UserError(f"{self.directory}: target module {target!r} is not present in the base "
                                    f"checkpoint {base.directory}")

    def delta_rows(self, weight: str, start: int, stop: int) -> np.ndarray:
        """scale * (B @ A) for output rows [start, stop) of ``weight``, float32."""
        pair = self.pairs[weight]
        if self.config.fan_in_fan_out:  # base stores (in, out): rows are input features
            a = self.tensors.read_f32(pair.a)[:, start:stop]
            b = self.tensors.read_f32(pair.b)
            return np.float32(pair.scale) * (b @ a).T
        a = self.tensors.read_f32(pair.a)
        b = self.tensors.read_f32(pair.b, start, stop)
        return np.float32(pair.scale) * (b @ a)


class MergedCheckpoint:
    """A base checkpoint with an adapter merged in, read like ``Checkpoint``."""

    def __init__(self, base: Checkpoint, adapter: LoraAdapter):
        adapter.check_against(base)
        adapter.check_finite()
        self.base, self.adapter = base, adapter
        self.directory = base.directory
        self.entries: dict[str, TensorEntry] = base.entries

    def names(self) -> list[str]:
        return self.base.names()

    def __contains__(self, name: str) -> bool:
        return name in self.base

    def row_slabs(self, name: str, max_elements: int):
        return self.base.row_slabs(name, max_elements)

    def read_f32(self, name: str, row_start: int = 0, row_stop: int | None = None) -> np.ndarray:
        if name in self.adapter.replaced:
            return self.adapter.tensors.read_f32(self.adapter.replaced[name], row_start, row_stop)
        rows = self.base.read_f32(name, row_start, row_stop)
        if name in self.adapter.pairs:
            stop = row_stop if row_stop is not None else self.entries[name].shape[0]
            rows = rows + self.adapter.delta_rows(name, row_start, stop)
        return rows
