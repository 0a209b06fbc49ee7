"""The vLLM CPU LoRA plugin computes exactly what vLLM's own torch ops compute, without the per-token weight gather."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from agents import vllm_plugin

VLLM = importlib.util.find_spec("vllm") is not None


def _reference(name):
    """vLLM's original op when vLLM is installed (read from the source module, before any patch), else the formula."""
    if VLLM:
        import importlib

        mod = importlib.import_module("vllm.lora.ops.torch_ops.lora_ops")
        fn = getattr(mod, name)
        if fn.__module__ == "vllm.lora.ops.torch_ops.lora_ops":
            return fn
    return None


@pytest.mark.parametrize("indices", [[0, 0, 0, 0, 0, 0], [0, 1, 1, -1, 0, 2], [-1, -1, -1, -1, -1, -1]])
@pytest.mark.parametrize("four_d", [False, True])
def test_grouped_ops_equal_the_per_token_formula(indices, four_d):
    g = torch.Generator().manual_seed(0)
    idx = torch.tensor(indices)
    x = torch.randn(6, 8, generator=g)
    a = torch.randn(3, 4, 8, generator=g)  # shrink weights: 3 slots, rank 4, in 8
    b = torch.randn(3, 10, 4, generator=g)  # expand weights: out 10, rank 4
    if four_d:
        a, b = a[:, None], b[:, None]
    a3, b3 = (a[:, 0], b[:, 0]) if four_d else (a, b)

    out = torch.zeros(6, 4)
    vllm_plugin.bgmv_shrink(x, a, out, idx, 0.5)
    assert torch.allclose(out, 0.5 * torch.einsum("bi,boi->bo", x, a3[idx]), atol=1e-5)

    h = torch.randn(6, 4, generator=g)
    base = torch.randn(6, 14, generator=g)
    got = base.clone()
    vllm_plugin.bgmv_expand_slice(h, b, got, idx, 2, 10, add_inputs=True)
    want = base.clone()
    want[:, 2:12] += torch.einsum("bi,boi->bo", h, b3[idx])
    assert torch.allclose(got, want, atol=1e-5)

    got = base[:, :10].clone()
    vllm_plugin.bgmv_expand(h, b, got, idx, add_inputs=False)
    assert torch.allclose(got, torch.einsum("bi,boi->bo", h, b3[idx]), atol=1e-5)

    for name, args in (("bgmv_shrink", (x, a, torch.zeros(6, 4), idx, 0.5)),
                       ("bgmv_expand_slice", (h, b, base.clone(), idx, 2, 10, True))):
        ref = _reference(name)
        if ref is None:
            continue
        mine = [t.clone() if torch.is_tensor(t) else t for t in args]
        theirs = [t.clone() if torch.is_tensor(t) else t for t in args]
        getattr(vllm_plugin, name)(*mine)
        ref(*theirs)
        assert torch.allclose(mine[2], theirs[2], atol=1e-5), name


@pytest.mark.skipif(not VLLM, reason="vLLM is not installed")
def test_the_plugin_is_registered_for_vllm():
    from importlib.metadata import entry_points

    eps = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert eps.get("mad_guardrails_cpu_lora") == "agents.vllm_plugin:register"
