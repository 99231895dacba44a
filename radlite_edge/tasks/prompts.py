"""Prompt profiles: how a task's chat messages become the text a model reads.

One renderer per profile, and nowhere else is a prompt rendered. ``radlite`` (the default) is
the published RadLite interface: ChatML built by hand, the bytes the published models were
trained on (RADLITE.md). ``model`` renders through the chat template a GGUF carries (as
llama-cpp-python's ``create_chat_completion`` does), for models trained on another form; it
is chosen by name, never mixed in silently. The messages themselves (system prompt, the
published task templates, few-shot turns) come from the task registry either way.
"""

from __future__ import annotations

from typing import Protocol, Sequence

Messages = Sequence[dict[str, str]]


class PromptProfile(Protocol):
    name: str

    def render(self, messages: Messages) -> str:
        """The whole prompt, ending where the assistant starts writing."""


class ChatML:
    name = "radlite"
    writes_bos = False

    def render(self, messages: Messages) -> str:
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + "<|im_start|>assistant\n"


class ModelChatTemplate:
    """The chat template stored in a loaded GGUF (``tokenizer.chat_template``), compiled once."""

    name = "model"

    def __init__(self, llm) -> None:
        from llama_cpp import llama_chat_format

        from ..errors import UserError

        template = llm.metadata.get("tokenizer.chat_template")
        if template is None:
            raise UserError("the GGUF carries no tokenizer.chat_template: use the radlite prompt profile")
        text = llm._model.token_get_text
        self._format = llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=text(llm.token_eos()) if llm.token_eos() >= 0 else "",
            bos_token=text(llm.token_bos()) if llm.token_bos() >= 0 else "")
        # whether the template writes the BOS token itself (then the tokenizer must not add one)
        self.writes_bos = self._format(messages=[{"role": "user", "content": ""}]).added_special

    def render(self, messages: Messages) -> str:
        return self._format(messages=list(messages)).prompt


CHATML = ChatML()
DEFAULT_PROFILE: PromptProfile = CHATML
PROFILES = (CHATML.name, ModelChatTemplate.name)


def get_profile(name: str, llm=None) -> PromptProfile:
    """The profile called ``name``; ``model`` reads its template from ``llm`` (a loaded GGUF)."""
    from ..errors import UserError

    if name == CHATML.name:
        return CHATML
    if name == ModelChatTemplate.name:
        if llm is None:
            raise ValueError("the model profile needs the loaded model")
        return ModelChatTemplate(llm)
    raise UserError(f"prompt profile {name!r}: choose {' or '.join(PROFILES)}")
