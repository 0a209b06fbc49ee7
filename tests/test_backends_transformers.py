"""transformers + peft backend on the converted SmolLM2 (CPU, a few tokens): base model and a LoRA adapter by name."""

from __future__ import annotations

import pytest

from mad_guardrails.agents.backends import make_backend
from mad_guardrails.agents.backends.transformers_peft import TransformersBackend
from mad_guardrails.agents.config import LLMConfig, ServeConfig

MSGS = [{"role": "user", "content": "List three colours."}]


@pytest.fixture(scope="module")
def tf_backend(smollm2_path, tiny_lora_dir):
    cfg = LLMConfig(backend="transformers", model="smollm2", max_tokens=8, temperature=0.0, timeout_s=300,
                    serve=ServeConfig(model=str(smollm2_path), lora_modules={"coordinator": str(tiny_lora_dir)}))
    b = make_backend(cfg)
    assert isinstance(b, TransformersBackend)
    return b


async def test_base_and_adapter_generate(tf_backend):
    base = await tf_backend.chat(MSGS)
    again = await tf_backend.chat(MSGS)
    lora = await tf_backend.chat(MSGS, model="coordinator")
    assert tf_backend.adapters == ["coordinator"]
    for r in (base, lora):
        assert r.text.strip() and 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 5
        assert r.latency_s > 0
    assert base.text == again.text  # greedy decoding is deterministic
    assert lora.model == "coordinator" and base.model == "smollm2"
    assert lora.text != base.text  # the (random, non-zero) adapter is really applied

