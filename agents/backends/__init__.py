"""LLM backends behind one interface (:class:`~mad_guardrails.agents.backends.base.LLMBackend`); :func:`make_backend` picks one.

    >>> from mad_guardrails.agents.config import LLMConfig
    >>> make_backend(LLMConfig(backend="fake")).name
    'fake'
"""

from __future__ import annotations

import logging

from mad_guardrails.agents.backends.base import (
    BaseBackend,
    LLMBackend,
    LLMResponse,
    TokenUsage,
    backend_error,
    error_reason,
)
from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["LLMBackend", "LLMResponse", "TokenUsage", "BaseBackend", "backend_error", "error_reason",
           "make_backend", "model_aliases", "effective_coordinator_model"]


def model_aliases(cfg: LLMConfig) -> dict[str, str]:
    """Served names that fall back to the base model because their bundled adapter has not been trained yet."""
    if cfg.serve is None or not cfg.serve.lora_modules:
        return {}
    from mad_guardrails.agents.models import resolve_lora_modules

    _, missing = resolve_lora_modules(cfg.serve.lora_modules)
    base = cfg.model
    for name in missing:
        log.warning("LoRA module %r (%s) is not available yet (train it with `mad-guardrails train coordinator`); "
                    "requests for %r use the base model %r", name, cfg.serve.lora_modules[name], name, base)
    return {name: base for name in missing}


def effective_coordinator_model(cfg: LLMConfig) -> str:
    """The served name the coordinator should use: ``coordinator_model``, or the base model when it is unset or its
    bundled adapter does not exist yet."""
    name = cfg.coordinator_model or cfg.model
    return model_aliases(cfg).get(name, name)


def make_backend(cfg: LLMConfig) -> LLMBackend:
    """Build the backend named by ``cfg.backend`` (heavy libraries are imported only for the one chosen)."""
    aliases = model_aliases(cfg)
    if cfg.backend == "openai":
        from mad_guardrails.agents.backends.openai_http import OpenAIBackend

        return OpenAIBackend(cfg, model_aliases=aliases)
    if cfg.backend == "vllm":
        from mad_guardrails.agents.backends.vllm_inproc import VLLMInprocBackend

        return VLLMInprocBackend(cfg, model_aliases=aliases)
    if cfg.backend == "llamacpp":
        from mad_guardrails.agents.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(cfg, model_aliases=aliases)
    if cfg.backend == "transformers":
        from mad_guardrails.agents.backends.transformers_peft import TransformersBackend

        return TransformersBackend(cfg, model_aliases=aliases)
    if cfg.backend == "fake":
        from mad_guardrails.agents.backends.fake import FakeBackend

        return FakeBackend(cfg=cfg, model_aliases=aliases)
    raise ConfigError(f"unknown backend {cfg.backend!r}", where="llm.backend",
                      fix="use openai, vllm, llamacpp, transformers or fake")
