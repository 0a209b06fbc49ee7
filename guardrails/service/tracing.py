"""OpenTelemetry spans, when ``opentelemetry`` is importable (optional; a no-op otherwise).

One server span per request (``guardrail.request``: route, status, request id), one child span per check
(``guardrail.check``: decision, path, failure, LLM usage, each graph stage's seconds as ``guardrail.stage.<name>_s``
attributes) and under it one span per graph node run (``guardrail.node.<name>``: retrieve, screen, entail, each
debater's ``argue``, coordinate, verify ...; the graph runs on the Guardrail's own event loop, so the check carries
the caller's trace context there: :func:`capture` / :func:`attached`).

``--otel api`` (the default) uses whatever tracer provider the process has: none configured → OpenTelemetry's no-op
provider. ``--otel console`` / ``--otel otlp`` install an SDK provider with that exporter (the OTLP exporter reads the
standard ``OTEL_EXPORTER_OTLP_*`` variables). ``--otel off``, or no ``opentelemetry`` package, costs nothing: every call
below returns at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

_tracer = None  # an opentelemetry Tracer once set up; None = tracing off
_providers: list = []  # SDK providers this module installed (flushed at shutdown)


def setup(kind: str = "api", service_name: str = "mad-guardrails") -> bool:
    """Turn tracing on (see the module doc). Returns whether spans will be made."""
    global _tracer
    _tracer = None
    if kind == "off":
        return False
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    if kind in ("console", "otlp"):
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

            provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
            if kind == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            else:  # a debugging aid: each span printed when it ends
                provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
            trace.set_tracer_provider(provider)
            _providers.append(provider)
        except ImportError as e:
            log.warning("--otel %s needs opentelemetry-sdk%s: %s; spans go to the default provider", kind,
                        " and opentelemetry-exporter-otlp" if kind == "otlp" else "", e)
    _tracer = trace.get_tracer("mad_guardrails.service")
    return True


def shutdown() -> None:
    """Flush and stop the providers :func:`setup` installed (the service's lifespan calls it: a SIGTERM'd process
    runs no atexit hooks after uvicorn re-raises the signal)."""
    while _providers:
        try:
            _providers.pop().shutdown()
        except Exception:
            log.debug("tracer provider shutdown failed", exc_info=True)


def enabled() -> bool:
    return _tracer is not None


def capture() -> Any:
    """The caller's trace context, to carry into another thread or event loop (None when tracing is off)."""
    if _tracer is None:
        return None
    from opentelemetry import context

    return context.get_current()


@contextlib.contextmanager
def attached(ctx: Any) -> Iterator[None]:
    """Make ``ctx`` (from :func:`capture`) the current trace context inside the block."""
    if ctx is None:
        yield
        return
    from opentelemetry import context

    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any] | None = None, *, server: bool = False,
         carrier: dict[str, str] | None = None) -> Iterator[Any]:
    """A span (or ``None`` when tracing is off). A server span continues the caller's trace when ``carrier`` (the
    request headers) has a W3C ``traceparent``. Set more attributes with :func:`set_attrs`."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    parent = None
    if carrier and "traceparent" in carrier:
        from opentelemetry.propagate import extract

        parent = extract(carrier)
    with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER if server else SpanKind.INTERNAL,
                                       attributes={k: v for k, v in (attributes or {}).items() if v is not None}) as s:
        yield s


def inject(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current trace context (``traceparent``) for an outgoing call (the proxy's upstream)."""
    if _tracer is not None:
        from opentelemetry.propagate import inject as _inject

        _inject(headers)
    return headers


def set_attrs(s: Any, attributes: dict[str, Any]) -> None:
    if s is None:
        return
    for k, v in attributes.items():
        if v is not None:
            s.set_attribute(k, v)


def verdict_attrs(v) -> dict[str, Any]:
    """A Verdict as span attributes: decision, path, failure, usage, per-stage seconds."""
    out: dict[str, Any] = {"guardrail.decision": v.decision, "guardrail.path": v.path,
                           "guardrail.failure": v.failure, "guardrail.violations": len(v.violations),
                           "guardrail.llm_calls": v.usage.llm_calls,
                           "guardrail.prompt_tokens": v.usage.prompt_tokens,
                           "guardrail.completion_tokens": v.usage.completion_tokens}
    for stage, secs in (v.timings or {}).items():
        out[f"guardrail.stage.{stage}_s"] = float(secs)
    return out


def record_error(s: Any, exc: BaseException) -> None:
    if s is None:
        return
    from opentelemetry.trace import Status, StatusCode

    s.record_exception(exc)
    s.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
