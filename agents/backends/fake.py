"""A scripted backend for unit tests of parsing and control flow only (never for behaviour a real model can show).

Each call pops the next scripted item: a string (the model's text), a dict (returned as JSON text), an exception
(raised), or a callable ``(messages, kwargs) -> str | dict`` (computed). ``calls`` records what was asked::

    >>> import asyncio
    >>> b = FakeBackend(["first", {"decision": "allow"}])
    >>> asyncio.run(b.chat([{"role": "user", "content": "x"}])).text
    'first'
    >>> asyncio.run(b.chat([{"role": "user", "content": "y"}], json_schema={})).parsed
    {'decision': 'allow'}
    >>> len(b.calls)
    2
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error
from mad_guardrails.agents.config import LLMConfig

Script = str | dict | BaseException | Callable[[list[dict], dict], Any]


class FakeBackend(BaseBackend):
    name = "fake"
    supports_grammar = True  # records the grammar; does not enforce it

    def __init__(self, script: list[Script] | Callable[[list[dict], dict], Any] | None = None,
                 cfg: LLMConfig | None = None, *, model_aliases: dict[str, str] | None = None):
        super().__init__(cfg or LLMConfig(backend="fake", model="fake", retries=0), model_aliases=model_aliases)
        self.backoff_base_s = 0.01
        self._script = script if callable(script) else list(script or [])
        self.calls: list[dict] = []

    def push(self, *items: Script) -> None:
        assert isinstance(self._script, list)
        self._script.extend(items)

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop,
                         grammar: str | None = None) -> LLMResponse:
        kwargs = {"model": model, "json_schema": json_schema, "temperature": temperature, "max_tokens": max_tokens,
                  "seed": seed, "stop": stop, "grammar": grammar}
        self.calls.append({"messages": messages, **kwargs})
        if callable(self._script):
            item = self._script(messages, kwargs)
        elif self._script:
            item = self._script.pop(0)
        else:
            raise backend_error("backend", "the fake backend's script is exhausted", where="FakeBackend",
                                fix="push more scripted responses in the test")
        if callable(item) and not isinstance(item, BaseException):
            item = item(messages, kwargs)
        if isinstance(item, BaseException):
            raise item
        text = json.dumps(item) if isinstance(item, dict) else str(item)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        return LLMResponse(text=text, model=model, finish_reason="stop",
                           usage=TokenUsage(prompt_tokens=prompt_chars // 4, completion_tokens=len(text) // 4))
