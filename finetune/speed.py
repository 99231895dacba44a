"""What makes a training step cheaper, the loss unchanged: measured on a 2-core AMD EPYC (Zen 2).

- Logits at the answer tokens only. The loss covers the reference answer (labels other than
  -100: about one token in seven of the embedded default's examples), yet a causal LM projects
  every position onto the vocabulary (49,152 x 576 for SmolLM2) and takes its softmax there.
  The model is asked for the logits where the next token is an answer token (``logits_to_keep``,
  through the model's own forward, so DDP and accelerate see an ordinary call) and the loss is
  the model's own on those positions: the same value.
- LoRA dropout masks in bulk from numpy's generator on a CPU. Off Intel CPUs torch draws a
  Bernoulli mask one element at a time from its Mersenne Twister (the vectorized MKL generator
  is used on Intel's only), and a LoRA block draws seven masks: a fifth of a step here. The
  masks have the same keep probability (to 1/65,536) from another random stream, which the
  Trainer's checkpoints save and restore as they do torch's, so a resumed run draws the same.

benchmarks/train_speed.py measures both against the plain recipe; docs/BENCHMARKS.md has the figures.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .data import IGNORE

KEEP_RESOLUTION = 1 << 16  # the dropout masks' keep probability is a multiple of 1 / this


@functools.lru_cache(maxsize=1)
def _per_row_positions() -> bool:
    """Whether the installed transformers takes ``logits_to_keep`` as a (batch, seq) mask (5.x):
    each row's own answer positions. Before it, one index list serves every row: their union."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401
    except ImportError:
        return False
    return True


def takes_logits_to_keep(model) -> bool:
    """Whether the causal LM (under peft) can leave positions out of its logits."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def answer_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose next token is an answer token: a (batch, seq) mask, or on an older
    transformers the union of the rows' positions (the loss ignores the others' non-answers)."""
    keep = F.pad(labels[:, 1:] != IGNORE, (0, 1), value=False)
    return keep if _per_row_positions() else keep.any(0).nonzero().flatten()


def answer_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross-entropy of the logits ``answer_positions`` kept, summed over the answer tokens and
    divided by their count in the whole update (``num_items_in_batch``, as the model's own loss
    divides), or in this batch when the Trainer gives none (evaluation)."""
    targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)
    logits = outputs["logits"]
    if logits.dim() == 2:  # one row per kept position, in row-major order: the mask's
        targets = targets[targets != IGNORE]
    else:
        targets = targets[:, answer_positions(labels)]
    loss = F.cross_entropy(logits.float().flatten(0, -2), targets.flatten(), ignore_index=IGNORE, reduction="sum")
    count = num_items_in_batch if num_items_in_batch is not None else (targets != IGNORE).sum().clamp(min=1)
    return loss / count


class _KeepScaled(torch.autograd.Function):
    """x where ``keep``, 0 elsewhere, times ``scale``; backward keeps the bool mask only (a byte an
    element, as torch's dropout), not a float copy of it."""

    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return x.mul(scale).mul_(keep)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return grad.mul(ctx.scale).mul_(keep), None, None


class NumpyDropout(torch.nn.Module):
    """``nn.Dropout(p)`` whose mask is 16 random bits per element from numpy's global generator (the
    Trainer seeds it and keeps its state in each checkpoint), compared with p's share of 2**16."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        # the uint16 bits read as int16: still uniform, and int16 compares on every torch version
        self.threshold = round(p * KEEP_RESOLUTION) - KEEP_RESOLUTION // 2
        self.scale = 1.0 / (1.0 - p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        bits = np.random.randint(0, KEEP_RESOLUTION, size=x.numel(), dtype=np.uint16).view(np.int16)
        keep = torch.from_numpy(bits).view(x.shape).to(x.device) >= self.threshold
        return _KeepScaled.apply(x, keep, self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def numpy_dropout(model: torch.nn.Module) -> int:
    """Replace peft's LoRA ``nn.Dropout`` modules by ``NumpyDropout`` of the same p; returns how many."""
    swapped = 0
    for module in model.modules():
        dropouts = getattr(module, "lora_dropout", None)
        if not isinstance(dropouts, torch.nn.ModuleDict):
            continue
        for name, layer in list(dropouts.items()):
            if type(layer) is torch.nn.Dropout and layer.p > 0:
                dropouts[name] = NumpyDropout(layer.p)
                swapped += 1
    return swapped


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo: bf16 matrix arithmetic in hardware


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether bf16 is native where training runs: a CUDA device that has it, or (with no CUDA) a CPU
    with AVX512-BF16 or AMX-BF16. Elsewhere bf16 autocast converts every operand and runs slower."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return any(flag in flags for flag in CPU_BF16_FLAGS)
