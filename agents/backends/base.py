"""The one LLM interface every agent speaks: chat messages in, text + parsed JSON + usage + latency out.

Backends implement :class:`LLMBackend` (``chat`` and ``aclose``). The shared machinery lives in :class:`BaseBackend`:
a concurrency semaphore (``cfg.concurrency``), a per-call timeout (``cfg.timeout_s``), retries with exponential
backoff on retryable failures (429 / 5xx / connection errors, ``cfg.retries`` extra attempts) and one error type,
:class:`mad_guardrails.core.errors.BackendError`, whose ``reason`` is ``timeout`` / ``connection`` / ``http_<status>`` /
``unparseable`` / ``backend``::

    >>> import asyncio
    >>> from mad_guardrails.agents.backends.fake import FakeBackend
    >>> b = FakeBackend(['{"stance": "compliant"}'])
    >>> r = asyncio.run(b.chat([{"role": "user", "content": "hi"}], json_schema={"type": "object"}))
    >>> r.parsed
    {'stance': 'compliant'}
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, Field

from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.core.errors import BackendError

log = logging.getLogger(__name__)
T = TypeVar("T")


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class LLMResponse(BaseModel):
    text: str
    parsed: dict | None = Field(default=None, description="the JSON object when a json_schema was asked and it parsed")
    usage: TokenUsage = Field(default_factory=TokenUsage)
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str | None = None


@runtime_checkable
class LLMBackend(Protocol):
    name: str

    async def chat(
        self,
        messages: list[dict],
        *,
        model: str | None = None,
        json_schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        grammar: str | None = None,
    ) -> LLMResponse: ...

    async def aclose(self) -> None: ...


def backend_error(reason: str, message: str, *, where: str | None = None, fix: str | None = None,
                  retryable: bool = False) -> BackendError:
    """A :class:`BackendError` tagged with ``reason`` (and whether a retry may help)."""
    err = BackendError(message, where=where, fix=fix)
    err.reason = reason  # type: ignore[attr-defined]
    err.retryable = retryable  # type: ignore[attr-defined]
    return err


def error_reason(err: BaseException) -> str:
    return getattr(err, "reason", "backend")


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (plain, fenced in ```json, or embedded in prose); ``None`` if there is none.

    >>> extract_json_object('Sure! ```json\\n{"a": 1}\\n``` done')
    {'a': 1}
    >>> extract_json_object('no json here') is None
    True

    Only top-level objects count: the inner objects of an answer cut at ``max_tokens`` are not "the" answer
    (:func:`mad_guardrails.agents.parsing.close_partial_json` reads what survives of the outer one).

    >>> extract_json_object('{"stance": "x", "claims": [{"text": "a"}') is None
    True
    """
    s = text.strip()
    candidates = [s] + [m.group(1).strip() for m in _FENCE.finditer(s)]
    for c in candidates:
        try:
            obj = json.loads(c)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    dec = json.JSONDecoder()
    for start in _top_level_braces(s):
        try:
            obj, _ = dec.raw_decode(s[start:])
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def json_scan(s: str, *, prose_outside: bool = False):
    """Yield ``(offset, char)`` for each character of ``s`` outside JSON strings, and ``(offset, '"')`` where a string
    closes; a text that ends inside a string yields ``(len(s), "")`` last. ``prose_outside``: outside any object the
    text is prose, whose quotes open no string.

    >>> [c for _, c in json_scan('{"a{": [1]}')]
    ['{', '"', ':', ' ', '[', '1', ']', '}']
    """
    depth, in_str, esc = 0, False, False
    for i, ch in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
                yield i, '"'
            continue
        if ch == '"' and (depth or not prose_outside):
            in_str = True
            continue
        if ch == "{":
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
        yield i, ch
    if in_str:
        yield len(s), ""


def _top_level_braces(s: str):
    """Offsets of the ``{`` that open an object at nesting depth 0."""
    depth = 0
    for i, ch in json_scan(s, prose_outside=True):
        if ch == "{":
            if depth == 0:
                yield i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1


class BaseBackend:
    """Shared semaphore / timeout / retry logic. Subclasses implement ``_chat_once`` and may override ``aclose``."""

    name = "base"
    #: whether ``chat(grammar=...)`` (a Lark grammar the answer must follow) is honoured; others refuse it
    supports_grammar = False

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None):
        self.cfg = cfg
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: asyncio.AbstractEventLoop | None = None
        #: served names that are not really there (a bundled adapter not trained yet) -> the name to use instead
        self.model_aliases = dict(model_aliases or {})
        self.backoff_base_s = 0.5
        self.backoff_max_s = 8.0

    # -- helpers --------------------------------------------------------------------------------------------------
    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:  # a semaphore is bound to the loop that first uses it
            self._sem = asyncio.Semaphore(max(1, self.cfg.concurrency))
            self._sem_loop = loop
        return self._sem

    def model_name(self, model: str | None) -> str:
        m = model or self.cfg.model
        return self.model_aliases.get(m, m)

    def _defaults(self, temperature, max_tokens, seed) -> tuple[float, int, int | None]:
        return (
            self.cfg.temperature if temperature is None else temperature,
            self.cfg.max_tokens if max_tokens is None else max_tokens,
            self.cfg.seed if seed is None else seed,
        )

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run ``call`` under the semaphore and the per-call timeout; retry retryable failures with backoff."""
        attempts = 1 + max(0, self.cfg.retries)
        last: BackendError | None = None
        for attempt in range(attempts):
            try:
                async with self._semaphore():
                    return await asyncio.wait_for(call(), timeout=self.cfg.timeout_s)
            except asyncio.TimeoutError:
                last = backend_error(
                    "timeout", f"{what}: no answer within {self.cfg.timeout_s:g} s", where=self.name,
                    fix="raise llm.timeout_s, lower llm.max_tokens, or check that the server is not overloaded",
                    retryable=False,
                )
            except BackendError as e:
                last = e
            if not getattr(last, "retryable", False) or attempt == attempts - 1:
                break
            delay = min(self.backoff_max_s, self.backoff_base_s * 2**attempt) * (0.5 + random.random() / 2)
            log.warning("%s failed (%s), retry %d/%d in %.1f s", what, last, attempt + 1, attempts - 1, delay)
            await asyncio.sleep(delay)
        assert last is not None
        raise last

    @staticmethod
    def _parse(text: str, json_schema: dict | None) -> dict | None:
        return extract_json_object(text) if json_schema is not None else None

    async def chat(
        self,
        messages: list[dict],
        *,
        model: str | None = None,
        json_schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        stop: list[str] | None = None,
        grammar: str | None = None,
    ) -> LLMResponse:
        """One answer. ``json_schema``: the answer must be that JSON; ``grammar``: it must follow that Lark grammar
        (vLLM structured outputs; only backends with ``supports_grammar``)."""
        if not messages:
            raise backend_error("backend", "chat() called with no messages", where=self.name)
        if grammar is not None and not self.supports_grammar:
            raise backend_error("unsupported", f"the {self.name} backend cannot constrain answers to a grammar",
                                where=self.name, fix="use a vLLM server (llm.backend: openai, e.g. --profile offline "
                                "--serve) for grammar-constrained sampling")
        extra = {"grammar": grammar} if grammar is not None else {}
        name = self.model_name(model)
        t, mt, sd = self._defaults(temperature, max_tokens, seed)

        async def once() -> LLMResponse:
            t0 = time.perf_counter()
            resp = await self._chat_once(messages, model=name, json_schema=json_schema, temperature=t,
                                         max_tokens=mt, seed=sd, stop=stop, **extra)
            resp.latency_s = time.perf_counter() - t0
            if resp.parsed is None:
                resp.parsed = self._parse(resp.text, json_schema)
            return resp

        return await self._with_retries(f"chat with {name!r}", once)

    async def _chat_once(self, messages: list[dict], *, model: str, json_schema: dict | None, temperature: float,
                         max_tokens: int, seed: int | None, stop: list[str] | None) -> LLMResponse:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
