"""OpenAI-compatible HTTP backend: a vLLM server (``mad-guardrails serve``), a llama.cpp server or any compatible endpoint.

Structured output uses vLLM's parameter ``extra_body={"structured_outputs": {"json": schema}}`` (``guided_json`` was
removed in vLLM 0.12); when a server rejects it (HTTP 400/422) the backend switches, once and for good, to the OpenAI
``response_format={"type": "json_schema", ...}``. A LoRA adapter is just another served model name
(``vllm serve BASE --enable-lora --lora-modules coordinator=PATH`` → ``model="coordinator"``). The client is built with
``max_retries=0``: retries with backoff happen in :class:`~mad_guardrails.agents.backends.base.BaseBackend`.

    >>> from mad_guardrails.agents.config import LLMConfig
    >>> b = OpenAIBackend(LLMConfig(base_url="http://127.0.0.1:8011/v1", model="smollm2"))
    >>> b.name
    'openai'
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import openai

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error
from mad_guardrails.agents.backends.endpoints import EndpointPool, endpoint_urls
from mad_guardrails.agents.config import LLMConfig

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIBackend(BaseBackend):
    name = "openai"
    supports_grammar = True  # vLLM's structured_outputs.grammar (other OpenAI-compatible servers reject it: HTTP 400)

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None):
        super().__init__(cfg, model_aliases=model_aliases)
        #: one client per endpoint (llm.base_urls / $MAD_GUARDRAILS_LLM_URLS), least-in-flight routing, fail-over
        self.endpoints = EndpointPool(endpoint_urls(cfg), make_client=self._client_for, api_key=cfg.api_key)
        if len(self.endpoints.endpoints) > 1:  # llm.concurrency is per endpoint: N endpoints take N times the requests
            self.cfg = cfg.model_copy(update={"concurrency": cfg.concurrency * len(self.endpoints.endpoints)})
        self.client = self.endpoints.endpoints[0].client
        #: "structured_outputs" (vLLM >= 0.12) until a server rejects it, then "response_format"
        self.schema_mode = "structured_outputs"

    def _client_for(self, url: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=url, api_key=self.cfg.api_key or "EMPTY", timeout=self.cfg.timeout_s,
                                  max_retries=0)

    # -- error mapping --------------------------------------------------------------------------------------------
    def _map_error(self, e: Exception, model: str) -> Exception:
        where = f"{self.name} backend at {', '.join(self.endpoints.urls)}"
        if isinstance(e, openai.APITimeoutError):
            return backend_error("timeout", f"request to {model!r} timed out after {self.cfg.timeout_s:g} s",
                                 where=where, fix="raise llm.timeout_s or lower llm.max_tokens", retryable=False)
        if isinstance(e, openai.APIConnectionError):
            return backend_error(
                "connection", f"cannot connect ({e.__cause__ or e})", where=where,
                fix="start the server (mad-guardrails serve --profile offline) or correct llm.base_url", retryable=True)
        if isinstance(e, openai.APIStatusError):
            status = e.status_code
            msg = _status_message(e)
            fix = None
            if status == 404:
                fix = (f"the server does not serve a model named {model!r}: check llm.model / llm.coordinator_model "
                       "against GET /v1/models (LoRA adapters need --enable-lora --lora-modules NAME=PATH)")
            return backend_error(f"http_{status}", f"HTTP {status} for model {model!r}: {msg}", where=where, fix=fix,
                                 retryable=status in RETRYABLE_STATUS)
        if isinstance(e, openai.OpenAIError):
            return backend_error("unparseable", f"bad response for {model!r}: {e}", where=where, retryable=False)
        return e

    # -- one call -------------------------------------------------------------------------------------------------
    def _kwargs(self, messages, model, json_schema, temperature, max_tokens, seed, stop, mode,
                grammar: str | None = None) -> dict:
        kw: dict = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        if seed is not None:
            kw["seed"] = seed
        if self.cfg.frequency_penalty:
            kw["frequency_penalty"] = self.cfg.frequency_penalty
        if stop:
            kw["stop"] = stop
        if grammar is not None:
            kw["extra_body"] = {"structured_outputs": {"grammar": grammar}}
        elif json_schema is not None:
            if mode == "structured_outputs":
                kw["extra_body"] = {"structured_outputs": {"json": json_schema}}
            else:
                kw["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": json_schema.get("title", "output"), "schema": json_schema},
                }
        return kw

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop,
                         grammar: str | None = None) -> LLMResponse:
        mode = self.schema_mode
        try:
            kw = self._kwargs(messages, model, json_schema, temperature, max_tokens, seed, stop, mode, grammar)
            r = await self.endpoints.call(lambda ep: ep.client.chat.completions.create(**kw))
        except openai.APIStatusError as e:
            if json_schema is not None and mode == "structured_outputs" and e.status_code in (400, 422) \
                    and "structured" in _status_message(e).lower() + str(e).lower():
                log.warning("server rejected structured_outputs (%s); using response_format json_schema", e)
                self.schema_mode = "response_format"
                try:
                    kw = self._kwargs(messages, model, json_schema, temperature, max_tokens, seed, stop,
                                      "response_format")
                    r = await self.endpoints.call(lambda ep: ep.client.chat.completions.create(**kw))
                except openai.OpenAIError as e2:
                    raise self._map_error(e2, model) from e2
            else:
                raise self._map_error(e, model) from e
        except openai.OpenAIError as e:
            raise self._map_error(e, model) from e
        if not getattr(r, "choices", None):
            raise backend_error("unparseable", f"response for {model!r} has no choices", where=self.name)
        choice = r.choices[0]
        text = choice.message.content or ""
        usage = TokenUsage(
            prompt_tokens=getattr(r.usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(r.usage, "completion_tokens", 0) or 0,
        )
        return LLMResponse(text=text, usage=usage, model=r.model or model, finish_reason=choice.finish_reason)

    # -- extras (not part of the LLMBackend protocol) -------------------------------------------------------------
    async def stream_chat(self, messages: list[dict], *, model: str | None = None, temperature: float | None = None,
                          max_tokens: int | None = None, seed: int | None = None) -> AsyncIterator[str]:
        """Yield the answer's text pieces as the server streams them."""
        name = self.model_name(model)
        t, mt, sd = self._defaults(temperature, max_tokens, seed)
        try:
            async with self.endpoints.lease() as ep:
                stream = await ep.client.chat.completions.create(
                    **self._kwargs(messages, name, None, t, mt, sd, None, self.schema_mode), stream=True
                )
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
        except openai.OpenAIError as e:
            raise self._map_error(e, name) from e

    async def list_models(self) -> list[str]:
        """Served model names (base model and LoRA adapters), from ``GET /v1/models``."""
        t0 = time.perf_counter()
        try:
            page = await self.endpoints.call(lambda ep: ep.client.models.list())
        except openai.OpenAIError as e:
            raise self._map_error(e, "*") from e
        log.debug("models listed in %.2f s", time.perf_counter() - t0)
        return [m.id for m in page.data]

    async def aclose(self) -> None:
        await self.endpoints.aclose()


def _status_message(e: openai.APIStatusError) -> str:
    body = e.body
    if isinstance(body, dict):
        err = body.get("error")
        msg = err.get("message") if isinstance(err, dict) else body.get("message")
        if msg:
            return str(msg)[:500]
    return (e.message or "")[:500]
