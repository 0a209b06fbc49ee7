"""The parts a guardrail is assembled from, behind small protocols so the graph can be tested with real parts or,
for control-flow unit tests, with a scripted LLM backend.

``build_components(cfg)`` assembles the real ones for a profile: the retriever over the FAISS/BM25 index (built on the
fly from the policy packs when no index exists yet), the policy set and its screener, the verifier, the debaters and
the coordinator on one LLM backend (a vLLM server the profile may start itself).

The LLM backend is lazy (:class:`LazyBackend`): nothing starts the vLLM server or builds the client until the first
case goes to the debate, so a check settled on a fast path never waits for an LLM (listeners registered with
:func:`status_listener` hear "starting the LLM server..." while it starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mad_guardrails.core.debate import Argument, Case
from mad_guardrails.core.units import Evidence
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)


class RetrieverLike(Protocol):
    def search(self, query: str, k: int | None = None) -> Any: ...  # RetrievalResult: evidence, abstained, reason

    def lookup(self, unit_id: str) -> str | None: ...


class ScreenerLike(Protocol):
    def screen(self, output: str, query: str | None = None, top: int = 5) -> list[Any]: ...  # ScreenHit


class DebaterLike(Protocol):
    role: Any

    async def turn(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                   round: int) -> tuple[Argument, Any]: ...


class CoordinatorLike(Protocol):
    async def decide(self, case: Case, evidence: list[Evidence], rules: list[Rule], transcript: list[Argument],
                     feedback: list[str] | None = None) -> Any: ...


#: who hears what a guardrail is doing right now (the CLI's status line); see :func:`status_listener`
_LISTENERS: list[Callable[[str], None]] = []


def report_status(message: str) -> None:
    """Tell every registered listener (e.g. the CLI spinner) what is happening; a listener's failure is ignored."""
    log.info("%s", message)
    for fn in list(_LISTENERS):
        try:
            fn(message)
        except Exception:  # a display must never break a check
            log.debug("status listener failed", exc_info=True)


@contextlib.contextmanager
def status_listener(fn: Callable[[str], None]) -> Iterator[None]:
    """Register ``fn`` for :func:`report_status` messages while the block runs.

    >>> seen = []
    >>> with status_listener(seen.append):
    ...     report_status("starting the LLM server...")
    >>> seen
    ['starting the LLM server...']
    """
    _LISTENERS.append(fn)
    try:
        yield
    finally:
        _LISTENERS.remove(fn)


#: backends that honour ``chat(grammar=...)``, answered before the backend is built (the coordinator asks first)
_GRAMMAR_BACKENDS = {"openai", "fake", "llamacpp"}


class LazyBackend:
    """The LLM backend, started on first use: the first ``chat`` starts the profile's vLLM server (when it autostarts
    and none answers) and builds the real backend; until then nothing is loaded. ``started`` says whether it ran.

    Once the server is up, a coordinator model it does not serve falls back to the base model (an alias).

        >>> from mad_guardrails.agents.config import LLMConfig
        >>> b = LazyBackend(LLMConfig(backend="fake"))
        >>> b.started, b.name
        (False, 'fake')
    """

    def __init__(self, llm_cfg, *, coordinator_model: str | None = None,
                 on_start: Callable[[LazyBackend], None] | None = None):
        self.cfg = llm_cfg
        self.name = llm_cfg.backend
        self.coordinator_model = coordinator_model
        self.on_start = on_start
        self.backend: Any = None
        self.server: Any = None
        self.start_seconds: float | None = None  # how long the start took (server included)
        self.start_window: tuple[float, float | None] | None = None  # (began, ended) on time.monotonic()
        self._lock = threading.Lock()
        self._preflight()

    def _preflight(self) -> None:
        """What can be checked without loading anything: an opt-in model (``fetched:NAME``) that was never fetched
        fails now, naming the command, not at the first debate."""
        serve = getattr(self.cfg, "serve", None)
        spec = (getattr(serve, "model", None) if serve is not None else None) or getattr(self.cfg, "model", None)
        if isinstance(spec, str) and spec.startswith("fetched:"):
            from mad_guardrails.agents.models import resolve_model

            resolve_model(spec)

    @property
    def started(self) -> bool:
        return self.backend is not None

    @property
    def supports_grammar(self) -> bool:
        if self.backend is not None:
            return bool(getattr(self.backend, "supports_grammar", False))
        return self.name in _GRAMMAR_BACKENDS

    def start(self) -> Any:
        """Start the server (if the profile starts one) and build the backend, once; returns the backend."""
        with self._lock:
            if self.backend is not None:
                return self.backend
            t0 = time.perf_counter()
            began = time.monotonic()
            self.start_window = (began, None)
            try:
                backend = self._build()
            finally:  # started or failed: the window closes (a failed start is retried on the next debate)
                self.start_window = (began, time.monotonic())
            self.backend = backend
            if self.on_start is not None:
                self.on_start(self)
            self.start_seconds = round(time.perf_counter() - t0, 2)
            report_status(f"LLM backend ready after {self.start_seconds:.1f} s")
            return backend

    def _build(self) -> Any:
        from mad_guardrails.agents.backends import make_backend
        from mad_guardrails.agents.serve import ensure_server

        if self.cfg.backend == "openai" and self.cfg.serve is not None and self.cfg.serve.autostart:
            report_status("starting the LLM server (first debate of this run; on CPU this takes minutes)...")
        else:
            report_status(f"loading the LLM backend ({self.cfg.backend})...")
        self.server = ensure_server(self.cfg) if self.cfg.backend == "openai" else None
        backend = make_backend(self.cfg)
        cm = self.coordinator_model
        if self.server is not None and cm and hasattr(self.server, "served_models"):
            served = set(self.server.served_models())
            if cm not in served and hasattr(backend, "model_aliases"):
                log.warning("coordinator model %r is not served (served: %s); using the base model %r",
                            cm, sorted(served), self.cfg.model)
                backend.model_aliases[cm] = self.cfg.model
        return backend

    def start_overlap(self, since: float) -> float:
        """Seconds since ``since`` (time.monotonic) spent starting the backend: a check's deadline does not count
        them (the first debate of a cold process waits minutes for a CPU vLLM server)."""
        if self.start_window is None:
            return 0.0
        began, ended = self.start_window
        end = ended if ended is not None else time.monotonic()
        return max(0.0, end - max(began, since))

    async def chat(self, messages: list[dict], **kwargs) -> Any:
        backend = self.backend if self.backend is not None else await asyncio.to_thread(self.start)
        return await backend.chat(messages, **kwargs)

    async def aclose(self) -> None:
        if self.backend is not None and hasattr(self.backend, "aclose"):
            await self.backend.aclose()

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@dataclass
class Components:
    retriever: RetrieverLike
    policy_set: Any
    screener: ScreenerLike
    verifier: Any
    debaters: list[DebaterLike]
    coordinator: CoordinatorLike
    backend: Any = None
    server: Any = None
    claims_model: Any = None  # scores (clause sentence, claim) pairs; None = claim check off
    harm_screen: Any = None  # verifier.harm.HarmScreen: (query, answer) -> harmful / partial / refusal / safe
    models: dict[str, str] = field(default_factory=dict)

    async def aclose(self) -> None:
        if self.backend is not None and hasattr(self.backend, "aclose"):
            try:
                await self.backend.aclose()
            except Exception:  # closing must never mask the verdict
                log.debug("backend close failed", exc_info=True)
        try:  # the claim probe's llama.cpp context, when the profile reads claims with it
            self.verifier.entailment.close()
        except Exception:
            log.debug("verifier close failed", exc_info=True)

    def close_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if isinstance(self.backend, LazyBackend):
            self.backend.stop_server()

    @property
    def llm_started(self) -> bool:
        """Whether the LLM backend was built (a lazy one starts on the first debate)."""
        return self.backend is not None and getattr(self.backend, "started", True)


def build_components(cfg, *, eager_llm: bool = False) -> Components:  # cfg: GuardrailConfig
    """Assemble the real parts for a config. Heavy imports happen here, not at module import. The LLM backend starts
    on the first debate, or here with ``eager_llm`` (a service that must be ready when it says so)."""
    from mad_guardrails.agents.coordinator import Coordinator
    from mad_guardrails.agents.debater import Debater
    from mad_guardrails.agents.roles import load_roles
    from mad_guardrails.policies.loader import load_packs
    from mad_guardrails.policies.screen import PolicyScreener
    from mad_guardrails.retrieval.retriever import Retriever
    from mad_guardrails.verifier import Verifier

    policy_set = load_packs(cfg.policies.packs, disabled=cfg.policies.disabled)
    retriever = Retriever.from_config(cfg.retrieval, cfg.profile)
    screener = PolicyScreener(policy_set, retriever.embedder)
    coordinator_model = cfg.llm.coordinator_model or cfg.llm.model
    backend = LazyBackend(cfg.llm, coordinator_model=coordinator_model)  # starts (server too) on the first debate

    def known(unit_id: str) -> bool:
        if unit_id.startswith("policy:"):
            return policy_set.get(unit_id.split(":", 1)[1]) is not None
        return retriever.lookup(unit_id) is not None

    def lookup(unit_id: str) -> str | None:
        if unit_id.startswith("policy:"):
            unit = policy_set.unit(unit_id.split(":", 1)[1])
            return None if unit is None else unit.text
        return retriever.lookup(unit_id)

    verifier = Verifier(lookup=lookup, known=known, nli_model=cfg.verifier.nli_model)
    claims_model = None
    if cfg.verifier.nli_model and cfg.verifier.claims:
        from mad_guardrails.verifier.entailment import ClaimScorer

        if verifier.entailment.load():  # a model that cannot load leaves the claim check off, with a warning
            claims_model = ClaimScorer(verifier.entailment)
    from mad_guardrails.verifier.harm import load_harm_screen

    harm_screen = load_harm_screen(cfg.verifier.harm_model)  # on but unloadable raises: no silent unscreened guard
    dc = cfg.debate
    debaters = [Debater(role, backend, cfg.llm.model, evidence_chars=dc.evidence_chars, max_tokens=dc.turn_max_tokens,
                        max_claims=dc.max_claims, max_quotes=dc.max_quotes, max_chars=dc.max_text_chars)
                for role in load_roles(dc.roles)]
    coordinator = Coordinator(backend, coordinator_model, mode=cfg.llm.coordinator_mode,
                              evidence_chars=dc.evidence_chars, max_tokens=dc.coordinator_max_tokens)
    models = {
        "embedder": getattr(retriever.embedder, "model_id", str(cfg.retrieval.embedder.model)),
        "debaters": cfg.llm.model,
        "coordinator": coordinator_model,
        "nli": cfg.verifier.nli_model or "none",
        "harm": cfg.verifier.harm_model or "none",
    }

    def started(b: LazyBackend) -> None:  # the coordinator name actually used once the server said what it serves
        models["coordinator"] = getattr(b.backend, "model_aliases", {}).get(coordinator_model, coordinator_model)

    backend.on_start = started
    if eager_llm:
        backend.start()
    return Components(retriever=retriever, policy_set=policy_set, screener=screener, verifier=verifier,
                      debaters=debaters, coordinator=coordinator, backend=backend, server=None, models=models,
                      claims_model=claims_model, harm_screen=harm_screen)
