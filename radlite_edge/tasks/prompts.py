"""Prompt profiles: how a task's chat messages become the text a model reads.

One renderer per profile, and nowhere else is a prompt rendered. ``CHATML`` is the RadLite
interface: ChatML, the form the published models were trained on (RADLITE.md), written
out here once. ``ModelChatTemplate`` renders through the chat template a GGUF carries (as
llama-cpp-python's ``create_chat_completion`` does), for models trained on another form.
The messages themselves (system prompt, ``[TASK: x]`` user turns, few-shot turns) come
from the task registry either way.
"""

from __future__ import annotations

from typing import Protocol, Sequence

Messages = Sequence[dict[str, str]]


class PromptProfile(Protocol):
    name: str

    def render(self, messages: Messages) -> str:
        """The whole prompt, ending where the assistant starts writing."""


class ChatML:
    name = "chatml"

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
            raise UserError("the GGUF carries no tokenizer.chat_template: use the chatml prompt profile")
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
