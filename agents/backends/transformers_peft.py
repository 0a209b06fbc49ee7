"""transformers + peft in process: a base model plus LoRA adapters (e.g. the coordinator's) where vLLM is unavailable.

The base model is ``llm.serve.model`` (or ``llm.model``), resolved by :func:`mad_guardrails.agents.models.resolve_model`
(``bundled:smollm2`` → the converted SmolLM2 folder); adapters are ``llm.serve.lora_modules`` (name → path), loaded
with ``PeftModel.from_pretrained`` / ``load_adapter``. A call for an adapter's name runs with that adapter active; any
other name runs the base model (adapters disabled). No constrained decoding here: with a ``json_schema`` the backend
parses the first JSON object of the answer (``parsed`` stays ``None`` when there is none). Slow on CPU — use it for
small checks and as a fallback.

    >>> from mad_guardrails.agents.config import LLMConfig, ServeConfig
    >>> b = TransformersBackend(LLMConfig(backend="transformers", model="smollm2",
    ...                                   serve=ServeConfig(model="bundled:smollm2")))
    >>> b.name
    'transformers'
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error
from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.agents.models import resolve_lora_modules, resolve_model
from mad_guardrails.core.errors import ModelUnavailableError

log = logging.getLogger(__name__)


class TransformersBackend(BaseBackend):
    name = "transformers"

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None, device: str = "cpu",
                 dtype: str = "float32"):
        super().__init__(cfg, model_aliases=model_aliases)
        self.serve = cfg.serve or ServeConfig(model=cfg.model)
        self.device = device
        self.dtype = dtype
        self._model = None
        self._tok = None
        self._adapters: list[str] = []
        self._lock = threading.Lock()

    def _load(self):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_model(self.serve.model)
        t0 = time.perf_counter()
        try:
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, self.dtype))
        except OSError as e:
            raise ModelUnavailableError(f"cannot load model {path!r} ({e})", where="llm.serve.model",
                                        fix="use a local folder, 'bundled:smollm2', or a hub id cached locally") from e
        loras, missing = resolve_lora_modules(self.serve.lora_modules)
        for name in missing:
            log.warning("LoRA module %r: bundled adapter not trained yet; %r falls back to the base model", name, name)
            self.model_aliases.setdefault(name, self.cfg.model)
        if loras:
            from peft import PeftModel

            items = sorted(loras.items())
            model = PeftModel.from_pretrained(model, items[0][1], adapter_name=items[0][0])
            for name, p in items[1:]:
                model.load_adapter(p, adapter_name=name)
            self._adapters = [n for n, _ in items]
        model.to(self.device).eval()
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        self._model, self._tok = model, tok
        log.info("transformers backend loaded %s (+%s) in %.1f s", path, self._adapters, time.perf_counter() - t0)

    def _generate(self, messages, model, temperature, max_tokens, seed, stop) -> LLMResponse:
        import contextlib

        import torch

        with self._lock:
            if self._model is None:
                self._load()
            m, tok = self._model, self._tok
            enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            n_prompt = int(enc["input_ids"].shape[1])
            gen_kw: dict = {"max_new_tokens": max_tokens, "pad_token_id": tok.pad_token_id}
            if temperature and temperature > 0:
                gen_kw.update(do_sample=True, temperature=temperature)
                if seed is not None:
                    torch.manual_seed(seed)
            else:
                gen_kw.update(do_sample=False)
            if stop:
                gen_kw.update(stop_strings=stop, tokenizer=tok)
            if model in self._adapters:
                m.set_adapter(model)
                ctx = contextlib.nullcontext()
            elif self._adapters:
                ctx = m.disable_adapter()
            else:
                ctx = contextlib.nullcontext()
            with ctx, torch.inference_mode():
                out = m.generate(**enc, **gen_kw)
        new = out[0, n_prompt:]
        text = tok.decode(new, skip_special_tokens=True)
        if stop:
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
        finish = "length" if len(new) >= max_tokens else "stop"
        return LLMResponse(text=text, model=model, finish_reason=finish,
                           usage=TokenUsage(prompt_tokens=n_prompt, completion_tokens=int(len(new))))

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop) -> LLMResponse:
        try:
            return await asyncio.to_thread(self._generate, messages, model, temperature, max_tokens, seed, stop)
        except ModelUnavailableError:
            raise
        except Exception as e:  # noqa: BLE001
            raise backend_error("backend", f"transformers generation failed: {type(e).__name__}: {e}",
                                where=self.name) from e

    @property
    def adapters(self) -> list[str]:
        return list(self._adapters)
