"""Tracing of a check: one OpenTelemetry span per graph node, children of the caller's span (the service's request
span) although the graph runs on the Guardrail's own event loop; and the service's request id on the verdict.
The parts are the scripted ones of test_graph (control flow); the spans are the real OpenTelemetry SDK's."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from mad_guardrails.guardrails.service import tracing  # noqa: E402
from mad_guardrails.guardrails.trail import REQUEST_ID  # noqa: E402
from tests.test_graph import EW_BAD, EW_OK, Coordinator, ScriptedClaims, make, social_scoring_block  # noqa: E402


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing._tracer = provider.get_tracer("test")
    try:
        yield exporter
    finally:
        tracing._tracer = None


def test_each_graph_node_is_a_span_under_the_callers_span(spans):
    async def run(g):
        with tracing.span("guardrail.request", {"guardrail.request_id": "r-1"}, server=True) as parent:
            v = await g.acheck(EW_OK, query="When is the NIS2 early warning due?")
            return v, parent.get_span_context()

    with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims()) as g:
        v, parent = asyncio.run(run(g))
    nodes = [s for s in spans.get_finished_spans() if s.name.startswith("guardrail.node.")]
    names = [s.name.removeprefix("guardrail.node.") for s in nodes]
    assert names[:3] == ["retrieve", "screen", "entail"] and v.path in names, names
    assert all(s.context.trace_id == parent.trace_id for s in nodes)
    assert all(s.parent is not None and s.parent.span_id == parent.span_id for s in nodes)
    assert v.trace_id == format(parent.trace_id, "032x")


def test_no_spans_when_tracing_is_off():
    assert not tracing.enabled()
    with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims()) as g:
        v = g.check(EW_BAD, query="NIS2 early warning?")
    assert v.decision == "block" and v.request_id == ""


def test_the_verdict_carries_the_service_request_id():
    async def run(g):
        REQUEST_ID.set("req-42")  # what the service middleware does for each request
        return await g.acheck(EW_OK, query="When is the NIS2 early warning due?")

    with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims()) as g:
        v = asyncio.run(run(g))
    assert v.request_id == "req-42"
