"""What ``mad-guardrails api`` is told: the profile, where it listens, its keys and limits, and the proxy's upstream.

    >>> s = ServiceSettings(profile="offline")
    >>> s.max_concurrency, s.max_queue, s.max_body_bytes
    (8, 64, 4194304)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: default text that replaces a blocked answer; placeholders: {provisions} (cited unit ids), {rules} (rule ids),
#: {reason} (what was found, or why the check failed closed)
DEFAULT_REFUSAL = "I can't provide that answer. The compliance guardrail blocked it: {reason}."
#: default text that replaces a flagged answer held for review (``--on-flag hold``); same placeholders
DEFAULT_HOLD = "This answer was held for review by the compliance guardrail: {reason}."


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = Field("offline", description="profile name or config YAML path")
    host: str = "127.0.0.1"
    port: int = 8080
    key_digests: list[str] = Field(default_factory=list, description="sha256 hex digests of the accepted API keys; "
                                   "empty = no auth (then only a loopback host is allowed)")
    # limits
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="largest request body; larger → 413")
    max_concurrency: int = Field(8, ge=1, description="requests checked at once (a batch or a proxied call counts one)")
    max_queue: int = Field(64, ge=0, description="requests waiting for a slot; past it → 429 with Retry-After")
    queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a slot before 429")
    max_batch: int = Field(64, ge=1, le=1024, description="items per /v1/check/batch")
    batch_concurrency: int = Field(4, ge=1, description="items of one batch checked at once")
    timeout_s: float | None = Field(None, gt=0, description="per-check deadline (overrides the profile's timeout_s); "
                                    "past it the verdict fails closed")
    # proxy
    upstream: str | None = Field(None, description="base URL of the upstream OpenAI-compatible server (…/v1)")
    upstream_key: str | None = None
    upstream_timeout_s: float = Field(600.0, gt=0)
    on_flag: Literal["pass", "hold"] = "pass"
    refusal: str = DEFAULT_REFUSAL
    hold_message: str = DEFAULT_HOLD
    proxy_mode: str = Field("balanced", description="check mode of proxied answers")
    stream_mode: Literal["sentence", "buffer"] = Field(
        "sentence", description="sentence: release streamed text sentence by sentence once the fast deterministic "
        "check passes it, full check at the end; buffer: release nothing until the full check")
    keepalive_s: float = Field(10.0, gt=0, description="SSE comment interval while a streamed answer is checked")
    # observability
    otel: Literal["off", "api", "console", "otlp"] = Field(
        "api", description="api: spans through whatever OpenTelemetry provider the process has (none = no-op); "
        "console / otlp: install an SDK provider with that exporter")
    # tests only: honour the x-test-hold-s header (hold the admission slot that long) to make 429 deterministic
    test_hooks: bool = False
