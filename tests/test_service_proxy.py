"""The guarded OpenAI-compatible proxy (``POST /v1/chat/completions``) as the official ``openai`` client meets it.

Without vLLM: a scripted upstream (tests/test_service_support.py: FakeUpstream, JSON and SSE) gives answers whose
verdicts are known — an off-topic answer (fast allow), a wrong NIS2 deadline (key-fact block, no LLM), evasion advice
that goes to a debate whose LLM answers after 30 s, so it fails closed to flag at the service's 4 s deadline (and is
held: ``--on-flag hold``). With vLLM (marker ``vllm``): the offline profile's real server is both the upstream and the
guardrail's LLM, for plain and streaming calls."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from mad_guardrails.core.verdict import Verdict, Violation
from tests.fixtures.llm_server import ScriptedServer
from tests.test_service_support import (
    ALLOW_TEXT,
    EVADE,
    EVADE_QUERY,
    WRONG,
    WRONG_QUERY,
    FakeUpstream,
    ServiceProcess,
    write_profile,
)

KEY = "proxy-key"
BREAD_Q = "How do I bake bread?"
BREAD_A = f"{ALLOW_TEXT} Then bake the loaf until it is golden."
STREAM_WRONG = ("The early warning is the first report to the CSIRT. " + WRONG + " "
                + "Keep a record of every step you take. " * 40)


def _answer(user: str) -> str | int:
    if user == BREAD_Q:
        return BREAD_A
    if user == WRONG_QUERY:
        return WRONG
    if user == WRONG_QUERY + " (stream)":
        return STREAM_WRONG
    if user == EVADE_QUERY:
        return EVADE
    if user == "fail please":
        return 500
    return "I do not know."


@pytest.fixture(scope="module")
def upstream():
    u = FakeUpstream(_answer, chunk_chars=6, delay_s=0.01)
    yield u
    u.close()


@pytest.fixture(scope="module")
def proxy(base_profile_path, real_small_index_dir, upstream, tmp_path_factory):
    slow_llm = ScriptedServer(lambda body: (503, {"error": "slow"}, 30.0))
    d = tmp_path_factory.mktemp("proxy")
    profile = write_profile(base_profile_path, real_small_index_dir, slow_llm.base_url, d / "profile.yaml",
                            retries=0)
    svc = ServiceProcess(["--profile", str(profile), "--upstream", upstream.base_url, "--upstream-key", "up-secret",
                          "--on-flag", "hold", "--timeout-s", "4", "--keepalive-s", "1"],
                         d / "service.log", env={"MAD_GUARDRAILS_API_KEYS": KEY})
    svc.wait_loaded()
    yield svc
    svc.stop()
    slow_llm.close()


@pytest.fixture()
def oai(proxy):
    return openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def _user(q: str) -> list[dict]:
    return [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": q}]


# -- pure parts ------------------------------------------------------------------------------------------------------
def test_actions_and_replacement_texts():
    from mad_guardrails.guardrails.service.proxy import action_for, release_point, replacement_text
    from mad_guardrails.guardrails.service.settings import DEFAULT_HOLD, DEFAULT_REFUSAL

    flag = Verdict(decision="flag", rationale="The agents could not settle it.",
                   violations=[Violation(rule_id="nis2.x", provisions=["nis2:art_23.4.a"])])
    assert action_for(flag, "pass") == "pass" and action_for(flag, "hold") == "hold"
    held = replacement_text(flag, "hold", refusal=DEFAULT_REFUSAL, hold=DEFAULT_HOLD)
    assert held.startswith("This answer was held for review") and "nis2:art_23.4.a" in held
    failed = Verdict.failed("timeout: the check took longer than 4 s")
    assert "could not be completed (timeout" in replacement_text(failed, "hold", refusal="", hold=DEFAULT_HOLD)
    block = Verdict(decision="block", violations=[Violation(rule_id="gdpr.r", provisions=["gdpr:art_33.1"])])
    assert replacement_text(block, "block", refusal="No ({provisions}; {rules}) {missing}", hold="") == \
        "No (gdpr:art_33.1; gdpr.r) {missing}"
    t = "One. Two? Three"
    assert t[:release_point(t, 0)] == "One. Two? " and release_point("x" * 500, 0) == 0
    assert release_point("word " * 100, 0) == 500  # no sentence end for 400+ characters: up to the last space


# -- the proxy, scripted upstream ------------------------------------------------------------------------------------
def test_allowed_answer_passes_with_the_verdict_attached(oai, upstream):
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=_user(BREAD_Q))
    r = raw.parse()
    assert raw.headers["x-guardrail-decision"] == "allow"
    assert r.choices[0].message.content == BREAD_A and r.choices[0].finish_reason == "stop"
    g = r.guardrail
    assert (g["decision"], g["path"], g["action"], g["violations"], g["failure"]) == (
        "allow", "fast_allow", "pass", [], None)
    assert upstream.requests[-1]["messages"][-1]["content"] == BREAD_Q and "guardrail" not in upstream.requests[-1]


def test_blocked_answer_is_replaced_naming_the_provision(oai):
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=_user(WRONG_QUERY))
    r = raw.parse()
    assert raw.headers["x-guardrail-decision"] == "block"
    c = r.choices[0]
    assert c.finish_reason == "content_filter" and "72 hours" not in c.message.content
    assert c.message.content.startswith("I can't provide that answer") and "nis2:art_23.4.a" in c.message.content
    g = r.guardrail
    assert (g["decision"], g["path"], g["action"]) == ("block", "fast_block", "block")
    assert any("nis2:art_23.4.a" in v["provisions"] for v in g["violations"])


def test_flagged_answer_is_held_for_review(oai):
    t0 = time.monotonic()
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=_user(EVADE_QUERY))
    r = raw.parse()
    assert time.monotonic() - t0 < 20
    assert raw.headers["x-guardrail-decision"] == "flag"
    c = r.choices[0]
    assert c.finish_reason == "content_filter" and "CSIRT" not in c.message.content
    assert c.message.content.startswith("This answer was held for review")
    g = r.guardrail
    assert (g["decision"], g["path"], g["action"]) == ("flag", "failure", "hold") and g["failure"].startswith("timeout")


def test_stream_of_an_allowed_answer(oai):
    stream = oai.chat.completions.create(model="m", messages=_user(BREAD_Q), stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == BREAD_A
    contentful = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(contentful) >= 2  # released sentence by sentence, not all at the end
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert final.choices[0].finish_reason == "stop"
    assert (final.guardrail["decision"], final.guardrail["action"]) == ("allow", "pass")
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 12


def test_stream_stops_before_a_wrong_sentence_and_ends_with_why(oai, upstream):
    aborted = upstream.aborted
    with httpx.stream("POST", str(oai.base_url) + "chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "m", "messages": _user(WRONG_QUERY + " (stream)"), "stream": True},
                      timeout=60) as resp:
        assert resp.headers["x-guardrail-decision"] == "pending"
        lines = [ln for ln in resp.iter_lines() if ln]
    assert lines[-1] == "data: [DONE]"
    import json

    events = [json.loads(ln[5:]) for ln in lines if ln.startswith("data: {")]
    deltas = [e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]]
    released = "".join(deltas[:-1])
    assert released == "The early warning is the first report to the CSIRT. "  # never the wrong sentence
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "content_filter"
    assert "nis2:art_23.4.a" in deltas[-1] and deltas[-1].startswith("\n\nI can't provide that answer")
    g = last["guardrail"]
    assert (g["decision"], g["path"], g["action"]) == ("block", "fast_block", "block")
    assert g["stopped_early"]["released_chars"] == len(released)
    for _ in range(50):  # the upstream request was closed: it stops generating
        if upstream.aborted > aborted:
            break
        time.sleep(0.1)
    assert upstream.aborted == aborted + 1


def test_stream_held_after_a_slow_full_check_with_keepalives(proxy):
    # the fast check finds no wrong key fact, so sentences are released; the full check (a debate whose LLM never
    # answers in time) fails closed to flag at the 4 s deadline, keep-alive comments meanwhile; --on-flag hold
    with httpx.stream("POST", proxy.base_url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                      json={"model": "m", "messages": _user(EVADE_QUERY), "stream": True}, timeout=60) as resp:
        lines = [ln for ln in resp.iter_lines() if ln]
    assert lines.count(": keep-alive") >= 2
    import json

    events = [json.loads(ln[5:]) for ln in lines if ln.startswith("data: {")]
    deltas = [e["choices"][0]["delta"].get("content") or "" for e in events]
    released = "".join(deltas[:-1])
    assert released and EVADE.startswith(released) and released != EVADE  # the last sentence is still held
    assert deltas[-1].startswith("\n\nThis answer was held for review")
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "content_filter"
    assert (last["guardrail"]["decision"], last["guardrail"]["action"]) == ("flag", "hold")


def test_upstream_error_passes_through_and_keys_are_checked(oai, proxy):
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=_user("fail please"))
    bad = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="m", messages=_user(BREAD_Q))
    assert [m.id for m in oai.models.list().data] == ["m"]


# -- the proxy in front of the real vLLM server ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def vllm_proxy(offline_profile, vllm_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm-proxy")
    svc = ServiceProcess(["--profile", offline_profile, "--upstream", vllm_server.base_url, "--timeout-s", "300"],
                         d / "service.log")
    svc.wait_loaded()
    yield svc
    svc.stop()


@pytest.mark.vllm
@pytest.mark.slow
def test_real_upstream_plain_and_streaming(vllm_proxy, vllm_server):
    client = openai.OpenAI(base_url=vllm_proxy.base_url + "/v1", api_key="unused", max_retries=0, timeout=600)
    direct = openai.OpenAI(base_url=vllm_server.base_url, api_key="EMPTY", max_retries=0, timeout=600)
    msgs = [{"role": "user", "content": "Give me one tip for baking bread."}]
    kw = {"model": "smollm2", "messages": msgs, "max_tokens": 24, "temperature": 0.0, "seed": 0}

    raw = client.chat.completions.with_raw_response.create(**kw)
    r = raw.parse()
    g = r.guardrail
    assert raw.headers["x-guardrail-decision"] == g["decision"] and g["decision"] in ("allow", "flag", "block")
    expected = direct.chat.completions.create(**kw).choices[0].message.content
    if g["action"] == "pass":
        assert r.choices[0].message.content == expected
    else:
        assert r.choices[0].finish_reason == "content_filter"

    chunks = list(client.chat.completions.create(**kw, stream=True))
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    gs = final.guardrail
    assert gs["decision"] in ("allow", "flag", "block")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    if gs["action"] == "pass":
        assert text == expected and final.choices[0].finish_reason in ("stop", "length")
    else:
        assert final.choices[0].finish_reason == "content_filter"
