"""Several LLM endpoints behind the OpenAI backend (agents/backends/endpoints.py), against loopback HTTP servers: a tiny
fake OpenAI server is enough for routing and fail-over (what is routed is the control flow, not the answer)."""

from __future__ import annotations

import asyncio

import pytest

from mad_guardrails.agents.backends import make_backend
from mad_guardrails.agents.backends.endpoints import ENV_URLS, endpoint_urls
from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.core.errors import BackendError
from tests.fixtures.llm_server import completion, free_port

MSGS = [{"role": "user", "content": "hi"}]


def answering(name: str, delay: float = 0.0):
    """A scripted endpoint's handler: answers ``answer from <name>`` after ``delay`` seconds."""
    return lambda body: (200, completion(f"answer from {name}", model=name), delay)


def backend(urls: list[str], **kw):
    cfg = LLMConfig(backend="openai", base_url=urls[0], base_urls=urls, model="m", timeout_s=10, retries=1,
                    concurrency=2, **kw)
    b = make_backend(cfg)
    b.backoff_base_s = 0.01
    b.endpoints.retry_s = 0.05
    return b


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


async def test_requests_go_to_the_endpoint_with_the_fewest_in_flight(scripted_server):
    a, b = scripted_server(answering("a", 0.3)), scripted_server(answering("b", 0.3))
    be = backend([a.base_url, b.base_url])
    out = await asyncio.gather(*(be.chat(MSGS) for _ in range(4)))
    await be.aclose()
    assert sorted(r.text for r in out) == ["answer from a"] * 2 + ["answer from b"] * 2
    assert (len(a.requests), len(b.requests)) == (2, 2) and a.max_in_flight == b.max_in_flight == 2


async def test_an_endpoint_that_does_not_answer_is_taken_out_and_every_request_answered(scripted_server):
    b = scripted_server(answering("b"))
    dead = dead_url()
    be = backend([dead, b.base_url])
    out = [await be.chat(MSGS) for _ in range(5)]
    stats = {s["url"]: s for s in be.endpoints.stats()}
    await be.aclose()
    assert [r.text for r in out] == ["answer from b"] * 5
    assert stats[dead]["healthy"] is False and stats[dead]["last_error"]
    assert stats[dead]["requests"] == 1  # tried once, then taken out: the rest went straight to b
    assert len(b.requests) == 5


async def test_an_endpoint_comes_back_when_its_health_check_passes(scripted_server):
    port = free_port()
    a = scripted_server(answering("a"))
    late_url = f"http://127.0.0.1:{port}/v1"
    be = backend([late_url, a.base_url])
    assert (await be.chat(MSGS)).text == "answer from a"
    assert not be.endpoints.stats()[0]["healthy"]
    late = scripted_server(answering("late"), port=port)  # the replica starts
    for _ in range(50):
        await asyncio.sleep(0.06)
        await be.chat(MSGS)  # requests trigger the background probe once retry_s has passed
        if be.endpoints.stats()[0]["healthy"]:
            break
    assert be.endpoints.stats()[0]["healthy"]
    out = await asyncio.gather(*(be.chat(MSGS) for _ in range(4)))
    await be.aclose()
    assert any(r.text == "answer from late" for r in out) and late.requests


async def test_none_answering_fails_closed_with_a_connection_error():
    be = backend([dead_url(), dead_url()])
    with pytest.raises(BackendError) as ei:
        await be.chat(MSGS)
    await be.aclose()
    assert ei.value.reason == "connection" and "none of the 2 LLM endpoint(s) answers" in str(ei.value)


def test_the_guardrail_fails_closed_when_no_endpoint_answers(surfaces_units):
    """Through the whole graph (small real retrieval/screening parts, the real debaters and coordinator on the
    OpenAI backend with two endpoints, neither answering): a flag naming the outage, never an allow."""
    from mad_guardrails.agents.coordinator import Coordinator
    from mad_guardrails.agents.debater import Debater
    from mad_guardrails.agents.roles import load_roles
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    be = backend([dead_url(), dead_url()])
    parts = make_components()
    parts.debaters = [Debater(r, be, "m") for r in load_roles("default")]
    parts.coordinator = Coordinator(be, "m")
    parts.backend = be
    with Guardrail(GuardrailConfig(profile="surfaces-test", timeout_s=60), components=parts) as g:
        v = g.check("Essential entities may simply skip the early warning if the incident looks small.",
                    query="Do I have to notify the CSIRT?")
    assert v.path == "failure" and v.decision == "flag", (v.path, v.rationale)
    assert "answers" in v.rationale or "connect" in v.rationale


def test_endpoint_urls_from_env_override_the_config(monkeypatch):
    cfg = LLMConfig(base_url="http://a/v1", base_urls=["http://b/v1"])
    assert endpoint_urls(cfg) == ["http://b/v1"]
    monkeypatch.setenv(ENV_URLS, "http://x:1/v1, http://y:2/v1/,")
    assert endpoint_urls(cfg) == ["http://x:1/v1", "http://y:2/v1"]
    monkeypatch.delenv(ENV_URLS)
    assert endpoint_urls(LLMConfig(base_url="http://a/v1")) == ["http://a/v1"]
