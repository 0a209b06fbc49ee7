"""vLLM in process (``vllm.LLM``): a debate round as ONE batched engine call, structured output, the adapter by name.

Opt-in (``GUARDRAILS_TEST_SLOW=1``): a second engine in the test process (beside the session server) took 9 min on
the shared 2-core machine (engine start 3.5 min, one 3-prompt batch 3.5 min) — past the ~2 min a CI test may take.
Run it with ``GUARDRAILS_TEST_SLOW=1 pytest tests/test_vllm_inproc.py``."""

from __future__ import annotations

import asyncio
import os

import pytest

from mad_guardrails.agents.backends.vllm_inproc import VLLMInprocBackend
from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.agents.debater import Debater, turn_schema
from mad_guardrails.agents.roles import load_roles
from tests.fixtures.llm_server import VLLM_AVAILABLE, VLLM_TEST_ARGS, VLLM_TEST_ENV
from tests.test_agents import CASE, EV, RULES

pytestmark = [pytest.mark.vllm, pytest.mark.slow,
              pytest.mark.skipif(not VLLM_AVAILABLE, reason="vLLM not installed"),
              pytest.mark.skipif(os.environ.get("GUARDRAILS_TEST_SLOW") != "1",
                                 reason="slow (minutes on 2 cores): set GUARDRAILS_TEST_SLOW=1 to run")]


@pytest.fixture(scope="module")
def inproc(smollm2_path, tiny_lora_dir):
    cfg = LLMConfig(backend="vllm", model="smollm2", max_tokens=24, temperature=0.0, timeout_s=900, concurrency=4,
                    serve=ServeConfig(model=str(smollm2_path), served_model_name="smollm2",
                                      lora_modules={"coordinator": str(tiny_lora_dir)}, max_lora_rank=8,
                                      extra_args=VLLM_TEST_ARGS, env=VLLM_TEST_ENV))
    b = VLLMInprocBackend(cfg)
    b.engine()
    yield b
    asyncio.run(b.aclose())


def test_generate_batch_is_one_engine_call_with_structured_output(inproc):
    roles = load_roles()
    msgs = [Debater(r, inproc, "smollm2").messages(CASE, EV, RULES, [], 1) for r in roles]
    schema = turn_schema([e.unit_id for e in EV], [r.id for r in RULES])
    before = len(inproc.batches)
    outs = inproc.generate_batch(msgs, json_schema=schema, max_tokens=24)
    assert inproc.batches[before:] == [3] and len(outs) == 3
    for o in outs:
        assert o.text.startswith('{"stance":"') and o.usage.completion_tokens <= 24 and o.usage.prompt_tokens > 100


async def test_concurrent_chats_are_micro_batched(inproc):
    before = len(inproc.batches)
    rs = await asyncio.gather(*(inproc.chat([{"role": "user", "content": f"Say {w}."}], max_tokens=6)
                                for w in ("yes", "no", "maybe")))
    assert inproc.batches[before:] == [3]
    assert all(r.text.strip() and r.model == "smollm2" for r in rs)


async def test_adapter_by_name(inproc):
    prompt = [{"role": "user", "content": "Write one sentence about the sea."}]
    base, lora = await asyncio.gather(inproc.chat(prompt, max_tokens=10),
                                      inproc.chat(prompt, model="coordinator", max_tokens=10))
    assert lora.model == "coordinator" and lora.text.strip() and lora.text != base.text
