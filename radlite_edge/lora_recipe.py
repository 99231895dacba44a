"""The LoRA recipe of the RadLite paper: the one place its numbers are stated (DESIGN.md).

Training (finetune/), the synthetic adapters (``radlite synth --adapter``) and the
benchmarks all read it, so "an adapter of the paper's shape" means one thing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoraRecipe:
    r: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]

    def describe(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, dropout {self.dropout:g}, {len(self.target_modules)} projections"


# r=64, alpha=128, dropout 0.05 on all seven projections of every block (RADLITE.md)
RADLITE_LORA = LoraRecipe(
    r=64, alpha=128.0, dropout=0.05,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
)
