"""LoRA training of the coordinator on a tiny random Llama: loss falls, checkpoints resume, the adapter loads back
with peft, targets only modules vLLM serves, and the batched generator runs it."""

from __future__ import annotations

import json

import pytest

from mad_guardrails.agents.training.trainer import (
    PRESETS,
    VLLM_LORA_TARGETS,
    TrainExample,
    check_vllm_compatible,
    encode,
    preset,
    train_lora,
)
from mad_guardrails.core.errors import ConfigError

TARGET = ('EVIDENCE:\n[nis2:art_23.2] "within 24 hours"\nANSWER:\ndecision: block\nviolations: none\n'
          "rationale: 72 hours is late.\nconfidence: 0.8")


def _examples(n: int = 4) -> list[TrainExample]:
    return [TrainExample(messages=[{"role": "system", "content": "You are the coordinator."},
                                   {"role": "user", "content": f"Decide case {i}. Start with EVIDENCE:"}],
                         target=TARGET) for i in range(n)]


def test_presets_follow_the_seed():
    seed = PRESETS["seed"]
    assert (seed.r, seed.alpha, seed.quantization, seed.epochs, seed.effective_batch) == (32, 64, "nf4", 2, 7)
    assert set(seed.target_modules) == set(VLLM_LORA_TARGETS)
    assert preset("smollm2", r=8, lr=None).r == 8 and preset("smollm2").r == 16
    with pytest.raises(ConfigError):
        preset("nope")


def test_encode_masks_the_prompt(tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    ex = _examples(1)[0]
    ids, labels = encode(tok, ex.messages, ex.target)
    n_prompt = sum(1 for x in labels if x == -100)
    assert len(ids) == len(labels) and 0 < n_prompt < len(ids)
    answer = tok.decode(ids[n_prompt:])
    assert answer.startswith("EVIDENCE:") and answer.rstrip().endswith("<|im_end|>")


def test_lora_steps_lower_the_loss_resume_and_load_back(tiny_llama_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    p = preset("tiny")
    out = tmp_path / "adapter"
    first = train_lora(_examples(), str(tiny_llama_dir), out, p, seed=3, device="cpu", max_steps=2, save_every=1,
                       keep_checkpoints=True, progress=False)
    assert first.steps == 2 and (out / "checkpoints").is_dir()
    res = train_lora(_examples(), str(tiny_llama_dir), out, p, seed=3, device="cpu", max_steps=16, save_every=4,
                     progress=False)
    assert res.resumed_from == 2 and res.steps == 16 and len(res.losses) == 16
    assert res.losses[:2] == first.losses  # the resumed run continues the same curve
    assert res.losses[-1] < res.losses[0] - 0.5, res.losses  # the loss falls
    assert sum(res.losses[-3:]) < sum(res.losses[:3]), res.losses
    assert not (out / "checkpoints").exists()

    cfg = json.loads((out / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == set(VLLM_LORA_TARGETS) and cfg["r"] == p.r
    assert check_vllm_compatible(out) == []
    assert json.loads((out / "training.json").read_text())["steps"] == 16

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    x = torch.tensor([[1, 5, 9, 12, 40]])
    with torch.no_grad():
        before = base(x).logits
        tuned = PeftModel.from_pretrained(base, str(out)).eval()
        after = tuned(x).logits
    assert not torch.allclose(before, after)  # the trained LoRA weights are really there

    # the same seed gives the same run
    again = train_lora(_examples(), str(tiny_llama_dir), tmp_path / "again", p, seed=3, device="cpu", max_steps=2,
                       progress=False)
    assert again.losses == pytest.approx(first.losses, rel=1e-5)


def test_local_generator_with_adapter(tiny_llama_dir, tmp_path):
    from mad_guardrails.agents.training.generate import LocalGenerator

    out = tmp_path / "adapter"
    train_lora(_examples(2), str(tiny_llama_dir), out, preset("tiny"), device="cpu", max_steps=1, progress=False)
    gen = LocalGenerator(str(tiny_llama_dir), device="cpu", batch_size=4)
    prompts = [ex.messages for ex in _examples(3)]
    base = gen.generate(prompts, n=1, max_tokens=8, progress=False)
    sampled = gen.generate(prompts, n=2, temperature=1.0, max_tokens=8, seed=1, progress=False)
    assert [len(x) for x in base] == [1, 1, 1] and [len(x) for x in sampled] == [2, 2, 2]
    assert all(o.finish_reason in ("stop", "length") and o.completion_tokens <= 8 for x in sampled for o in x)
    assert gen.generate(prompts, n=2, temperature=1.0, max_tokens=8, seed=1, progress=False) == sampled
    gen.set_adapter(str(out))
    assert gen.adapter == str(out)
    gen.set_adapter(None)
    assert gen.generate(prompts, n=1, max_tokens=8, progress=False) == base


def test_qlora_needs_a_gpu(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError, match="CUDA"):
        train_lora(_examples(1), str(tiny_llama_dir), tmp_path / "a", preset("seed"), device="cpu", progress=False)
