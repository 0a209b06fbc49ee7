"""Backends: retries/backoff, timeouts, connection errors, structured-output fallback, concurrency limit, dispatch.

Fault injection uses a scripted HTTP endpoint (tests/fixtures/llm_server.py); the real vLLM server is exercised in
tests/test_vllm_server.py."""

from __future__ import annotations

import asyncio
import importlib.util
import time

import pytest

from mad_guardrails.agents.backends import effective_coordinator_model, make_backend, model_aliases
from mad_guardrails.agents.backends.base import LLMResponse, extract_json_object
from mad_guardrails.agents.backends.fake import FakeBackend
from mad_guardrails.agents.backends.openai_http import OpenAIBackend
from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.core.errors import BackendError, ConfigError
from tests.fixtures.llm_server import completion, free_port

MSGS = [{"role": "user", "content": "hello"}]


def cfg_for(url: str, **kw) -> LLMConfig:
    base = {"backend": "openai", "base_url": url, "model": "m", "timeout_s": 10, "retries": 2, "concurrency": 4}
    base.update(kw)
    return LLMConfig(**base)


def fast(b):
    b.backoff_base_s = 0.01
    return b


async def test_retries_on_503_then_succeeds(scripted_server):
    calls = {"n": 0}

    def handler(body):
        calls["n"] += 1
        if calls["n"] <= 2:
            return 503, {"error": {"message": "overloaded"}}, 0
        return 200, completion("fine", prompt_tokens=7, completion_tokens=3), 0

    srv = scripted_server(handler)
    b = fast(OpenAIBackend(cfg_for(srv.base_url, retries=2)))
    r = await b.chat(MSGS)
    await b.aclose()
    assert isinstance(r, LLMResponse) and r.text == "fine"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (7, 3)
    assert calls["n"] == 3 and r.latency_s > 0


async def test_gives_up_after_retries_with_http_reason(scripted_server):
    srv = scripted_server(lambda body: (429, {"error": {"message": "slow down"}}, 0))
    b = fast(OpenAIBackend(cfg_for(srv.base_url, retries=1)))
    with pytest.raises(BackendError) as ei:
        await b.chat(MSGS)
    await b.aclose()
    assert ei.value.reason == "http_429"
    assert len(srv.requests) == 2  # one try + one retry


async def test_404_is_not_retried_and_says_what_to_fix(scripted_server):
    srv = scripted_server(lambda body: (404, {"error": {"message": "The model `x` does not exist."}}, 0))
    b = fast(OpenAIBackend(cfg_for(srv.base_url, retries=3)))
    with pytest.raises(BackendError) as ei:
        await b.chat(MSGS, model="x")
    await b.aclose()
    assert ei.value.reason == "http_404" and len(srv.requests) == 1
    assert "lora-modules" in str(ei.value)


async def test_timeout_is_fast(scripted_server):
    srv = scripted_server(lambda body: (200, completion("late"), 5.0))
    b = fast(OpenAIBackend(cfg_for(srv.base_url, timeout_s=0.5, retries=2)))
    t0 = time.perf_counter()
    with pytest.raises(BackendError) as ei:
        await b.chat(MSGS)
    await b.aclose()
    assert ei.value.reason == "timeout"
    assert time.perf_counter() - t0 < 3.0  # timeouts are not retried: the deadline budget is the caller's


async def test_connection_refused_is_fast():
    b = fast(OpenAIBackend(cfg_for(f"http://127.0.0.1:{free_port()}/v1", retries=1)))
    t0 = time.perf_counter()
    with pytest.raises(BackendError) as ei:
        await b.chat(MSGS)
    await b.aclose()
    assert ei.value.reason == "connection"
    assert "mad-guardrails serve" in str(ei.value)
    assert time.perf_counter() - t0 < 3.0


async def test_structured_outputs_param_then_fallback_to_response_format(scripted_server):
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}

    def handler(body):
        if "structured_outputs" in body:
            return 400, {"error": {"message": "Unrecognized request argument: structured_outputs"}}, 0
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == schema
        return 200, completion('{"a": 1}'), 0

    srv = scripted_server(handler)
    b = OpenAIBackend(cfg_for(srv.base_url))
    r = await b.chat(MSGS, json_schema=schema)
    assert r.parsed == {"a": 1} and b.schema_mode == "response_format"
    r2 = await b.chat(MSGS, json_schema=schema)  # remembered: no second rejected request
    await b.aclose()
    assert r2.parsed == {"a": 1}
    assert [("structured_outputs" in q) for q in srv.requests] == [True, False, False]
    assert srv.requests[0]["structured_outputs"] == {"json": schema}


async def test_request_carries_sampling_knobs(scripted_server):
    srv = scripted_server(lambda body: (200, completion("x"), 0))
    b = OpenAIBackend(cfg_for(srv.base_url, temperature=0.3, max_tokens=77, seed=5, frequency_penalty=0.5))
    await b.chat(MSGS, stop=["\n\n"])
    await b.chat(MSGS, temperature=0.0, max_tokens=5, seed=9, model="coordinator")
    await b.aclose()
    a, c = srv.requests
    assert (a["temperature"], a["max_tokens"], a["seed"], a["stop"], a["model"]) == (0.3, 77, 5, ["\n\n"], "m")
    assert (c["temperature"], c["max_tokens"], c["seed"], c["model"]) == (0.0, 5, 9, "coordinator")
    assert a["frequency_penalty"] == c["frequency_penalty"] == 0.5


async def test_concurrency_semaphore_limits_in_flight_requests(scripted_server):
    srv = scripted_server(lambda body: (200, completion("x"), 0.3))
    b = OpenAIBackend(cfg_for(srv.base_url, concurrency=2))
    await asyncio.gather(*(b.chat(MSGS) for _ in range(6)))
    await b.aclose()
    assert len(srv.requests) == 6 and srv.max_in_flight == 2


async def test_fake_backend_scripts_and_errors():
    b = FakeBackend(["plain", {"k": "v"}, BackendError("boom")])
    assert (await b.chat(MSGS)).text == "plain"
    assert (await b.chat(MSGS, json_schema={"type": "object"})).parsed == {"k": "v"}
    with pytest.raises(BackendError):
        await b.chat(MSGS)
    with pytest.raises(BackendError, match="exhausted"):
        await b.chat(MSGS)
    assert [c["json_schema"] for c in b.calls][:2] == [None, {"type": "object"}]


def test_extract_json_object_variants():
    assert extract_json_object('{"a": 1}') == {"a": 1}
    assert extract_json_object('text ```json\n{"b": [1, 2]}\n``` more') == {"b": [1, 2]}
    assert extract_json_object('Answer: {"c": {"d": 2}} thanks') == {"c": {"d": 2}}
    assert extract_json_object("[1, 2]") is None and extract_json_object("") is None
    assert extract_json_object('A {brace} then {"e": 3}') == {"e": 3}
    # cut at max_tokens: an inner object is not the answer
    assert extract_json_object('{"stance": "x", "claims": [{"text": "a", "quotes": [{"doc_id": "n"}]') is None


def test_make_backend_dispatch():
    for kind, cls in [("openai", "OpenAIBackend"), ("vllm", "VLLMInprocBackend"), ("llamacpp", "LlamaCppBackend"),
                      ("transformers", "TransformersBackend"), ("fake", "FakeBackend")]:
        b = make_backend(LLMConfig(backend=kind, model="bundled:smollm2" if kind == "llamacpp" else "m"))
        assert type(b).__name__ == cls and b.name == kind


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is not None or importlib.util.find_spec("ik_llama_cpp") is not None,
                    reason="a llama.cpp binding is installed")
async def test_llamacpp_missing_gives_install_hint():
    b = make_backend(LLMConfig(backend="llamacpp", model="bundled:smollm2"))
    with pytest.raises(ConfigError, match=r"mad-guardrails\[llamacpp\]"):
        await b.chat(MSGS)


def test_missing_bundled_adapter_falls_back_to_base_model(tmp_path, monkeypatch):
    import mad_guardrails.agents.models as models

    monkeypatch.setattr(models, "COORDINATOR_ADAPTER_DIR", tmp_path / "coordinator-smollm2")
    cfg = LLMConfig(model="smollm2", coordinator_model="coordinator",
                    serve=ServeConfig(model="bundled:smollm2", lora_modules={"coordinator": "bundled:coordinator"}))
    assert model_aliases(cfg) == {"coordinator": "smollm2"}
    assert effective_coordinator_model(cfg) == "smollm2"
    b = make_backend(cfg)
    assert b.model_name("coordinator") == "smollm2" and b.model_name(None) == "smollm2"
    # once the training helper has written the adapter, the adapter's name is used as is
    (tmp_path / "coordinator-smollm2").mkdir()
    (tmp_path / "coordinator-smollm2" / "adapter_config.json").write_text("{}")
    assert model_aliases(cfg) == {} and effective_coordinator_model(cfg) == "coordinator"


async def test_aliased_model_name_reaches_the_server(scripted_server, tmp_path, monkeypatch):
    import mad_guardrails.agents.models as models

    monkeypatch.setattr(models, "COORDINATOR_ADAPTER_DIR", tmp_path / "none")
    srv = scripted_server(lambda body: (200, completion("ok", model=body["model"]), 0))
    cfg = cfg_for(srv.base_url, model="smollm2",
                  serve=ServeConfig(model="bundled:smollm2", lora_modules={"coordinator": "bundled:coordinator"}))
    b = make_backend(cfg)
    r = await b.chat(MSGS, model="coordinator")
    await b.aclose()
    assert srv.requests[0]["model"] == "smollm2" and r.model == "smollm2"
