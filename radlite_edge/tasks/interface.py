"""The published RadLite interface, read from the one data file that states it.

``radlite_interface.json`` (beside this module, byte for byte the file the RadLite notebook
and README fix; RADLITE.md) holds the system prompt, the nine task templates, the
per-task max tokens and the task → model routes. The published models were trained on
these bytes: the registry, the prompt profiles, fine-tuning data and the assistant all read
them from here, and nothing re-types them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Mapping

from .labels import TASK_NAMES

INTERFACE_FILE = "radlite_interface.json"
FALLBACK_TASK = "radiology_qa"  # what the published router does with a missing or unknown tag
_TAG = re.compile(r"\A\s*\[TASK:\s*([A-Za-z0-9_]+)\s*\]")


@dataclass(frozen=True)
class Generation:
    """The published decoding settings (notebook): what a deployment of the published models uses."""

    temperature: float = 0.1
    stop: tuple[str, ...] = ("<|im_end|>",)
    n_ctx: int = 2048
    n_threads: int = 4


@dataclass(frozen=True)
class Interface:
    system_prompt: str
    templates: Mapping[str, str]  # task -> template with one {report}
    max_tokens: Mapping[str, int]  # task -> the published max tokens
    routes: Mapping[str, str]  # task -> the published model that serves it ("q25": Qwen2.5-3B, "q3": Qwen3-4B)
    generation: Generation

    def user_turn(self, task: str, report: str) -> str:
        # str.replace, not format: a report may hold braces
        return self.templates[task].replace("{report}", report)


def _load() -> Interface:
    raw = json.loads(resources.files(__package__).joinpath(INTERFACE_FILE).read_text(encoding="utf-8"))
    templates = raw["prompts"]
    if set(templates) != set(TASK_NAMES) or any(t.count("{report}") != 1 for t in templates.values()):
        raise RuntimeError(f"{INTERFACE_FILE}: expected one template with one {{report}} for each of the nine tasks")
    max_tokens = {t: int(raw["max_tokens"].get(t, raw["default_max_tokens"])) for t in TASK_NAMES}
    return Interface(system_prompt=raw["system_prompt"], templates=MappingProxyType(dict(templates)),
                     max_tokens=MappingProxyType(max_tokens), routes=MappingProxyType(dict(raw["routes"])),
                     generation=Generation())


PUBLISHED = _load()


def detect_task(text: str) -> tuple[str, str]:
    """(task, text without its tag) as the published router reads a request: a ``[TASK: x]`` tag
    at the very start picks the task; a missing or unknown tag falls back to radiology_qa, and a
    tag later in the text is report content, never a route."""
    m = _TAG.match(text)
    if m is None:
        return FALLBACK_TASK, text
    rest = text[m.end():].lstrip("\n")
    return (m.group(1), rest) if m.group(1) in TASK_NAMES else (FALLBACK_TASK, rest)
