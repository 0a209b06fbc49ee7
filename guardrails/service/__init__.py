"""The guard as a service: ``mad-guardrails api`` (FastAPI + uvicorn).

One loaded :class:`~mad_guardrails.guardrails.guardrail.Guardrail` serves every request:

* ``POST /v1/check``, ``POST /v1/check/batch`` — verdicts, the library's JSON schema;
* ``POST /v1/chat/completions`` — a guarded OpenAI-compatible proxy to an upstream server (``--upstream``);
* ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` (Prometheus text), ``/docs`` (OpenAPI).

Modules: :mod:`.settings` (what the CLI sets), :mod:`.auth` (API keys, hashed at rest), :mod:`.limits` (admission:
concurrency with a bounded wait queue), :mod:`.metrics`, :mod:`.tracing` (OpenTelemetry when importable),
:mod:`.middleware` (request ids, body limit, JSON access log), :mod:`.app` (routes), :mod:`.proxy` (the chat proxy and
its streaming). docs/service.md is the user's guide. FastAPI and uvicorn are imported only here (they come with the
``vllm-cpu`` / ``gpu`` extras), so the library never needs them.
"""

from mad_guardrails.guardrails.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def create_app(settings: ServiceSettings, **kwargs):
    """The FastAPI app (see :func:`mad_guardrails.guardrails.service.app.create_app`)."""
    from mad_guardrails.guardrails.service.app import create_app as _create

    return _create(settings, **kwargs)
