"""Batched generation with transformers (+ an optional peft adapter): best-of-N teacher samples and eval answers in
one process, many prompts at a time — the fast path on a GPU (or for a tiny model on a CPU).

The served path (vLLM with ``--lora-modules``, any :class:`~mad_guardrails.agents.backends.base.LLMBackend`) goes through
:func:`mad_guardrails.agents.training.raft.sample_candidates` / :func:`mad_guardrails.agents.training.evaluate.predict_with_backend` instead; both
write the same JSONL records.

    >>> GenOut(text="EVIDENCE: ...", finish_reason="stop").finish_reason
    'stop'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pydantic import BaseModel

log = logging.getLogger(__name__)


class GenOut(BaseModel):
    text: str
    finish_reason: str
    completion_tokens: int = 0


class LocalGenerator:
    """A causal LM (``model_path``: folder, hub id or ``bundled:smollm2``) with an optional LoRA ``adapter``.

    ``generate`` renders chat messages with the model's template, left-pads a batch, and decodes greedily
    (``temperature == 0``) or samples ``n`` answers per prompt. Reproducible for a seed and batch size."""

    def __init__(self, model_path: str, *, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
                 batch_size: int = 16):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from mad_guardrails.agents.models import resolve_model

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        path = resolve_model(model_path)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.tok.padding_side = "left"
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        self.base = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(self.device).eval()
        self.model = self.base
        self.adapter: str | None = None
        self.batch_size = batch_size
        if adapter:
            self.set_adapter(adapter)

    def set_adapter(self, adapter: str | None) -> None:
        """Put a LoRA adapter on the base model, replacing the previous one (``None``: the base model alone)."""
        from peft import PeftModel

        if self.adapter is not None:
            self.base = self.model.unload()
        self.model = self.base if adapter is None else PeftModel.from_pretrained(self.base, adapter)
        self.model.to(self.device).eval()
        self.adapter = adapter

    def generate(self, prompts: Sequence[list[dict]], *, n: int = 1, temperature: float = 0.0, max_tokens: int = 320,
                 seed: int = 0, progress: bool = True, desc: str = "generating") -> list[list[GenOut]]:
        """``n`` answers for each prompt (in prompt order)."""
        import torch

        from mad_guardrails.core.progress import make_progress

        texts = [self.tok.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in prompts]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths batch together
        out: list[list[GenOut]] = [[] for _ in texts]
        per_batch = max(1, self.batch_size // max(1, n)) if n > 1 else self.batch_size
        eos = self.tok.eos_token_id
        t0 = time.perf_counter()
        with make_progress(disable=not progress) as bar:
            task = bar.add_task(desc, total=len(texts))
            for b, s in enumerate(range(0, len(order), per_batch)):
                idx = order[s: s + per_batch]
                enc = self.tok([texts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                kw: dict = {"max_new_tokens": max_tokens, "pad_token_id": self.tok.pad_token_id, "eos_token_id": eos}
                if temperature and temperature > 0:
                    kw.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0, num_return_sequences=n)
                    torch.manual_seed(seed * 100003 + b)
                else:
                    kw.update(do_sample=False, num_return_sequences=1)
                with torch.inference_mode():
                    gen = self.model.generate(**enc, **kw)
                width = enc["input_ids"].shape[1]
                reps = n if kw.get("do_sample") else 1
                for j, i in enumerate(idx):
                    for r in range(reps):
                        row = gen[j * reps + r, width:]
                        ids = row.tolist()
                        ended = eos in ids
                        if ended:
                            ids = ids[: ids.index(eos)]
                        while ids and ids[-1] == self.tok.pad_token_id:
                            ids.pop()
                        out[i].append(GenOut(text=self.tok.decode(ids, skip_special_tokens=True).strip(),
                                             finish_reason="stop" if ended else "length", completion_tokens=len(ids)))
                bar.advance(task, len(idx))
        log.info("generated %d x %d answers in %.1f s", len(texts), n, time.perf_counter() - t0)
        if not (temperature and temperature > 0) and n > 1:  # greedy: the same answer n times
            out = [o * n for o in out]
        return out
