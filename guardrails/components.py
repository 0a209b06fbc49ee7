"""The parts a guardrail is assembled from, behind small protocols so the graph can be tested with real parts or,
for control-flow unit tests, with a scripted LLM backend.

``build_components(cfg)`` assembles the real ones for a profile: the retriever over the FAISS/BM25 index (built on the
fly from the policy packs when no index exists yet), the policy set and its screener, the verifier, the debaters and
the coordinator on one LLM backend (a vLLM server the profile may start itself).
"""

from __future__ import annotations

import logging
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
    models: dict[str, str] = field(default_factory=dict)

    async def aclose(self) -> None:
        if self.backend is not None and hasattr(self.backend, "aclose"):
            try:
                await self.backend.aclose()
            except Exception:  # closing must never mask the verdict
                log.debug("backend close failed", exc_info=True)

    def close_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def build_components(cfg) -> Components:  # cfg: GuardrailConfig
    """Assemble the real parts for a config. Heavy imports happen here, not at module import."""
    from mad_guardrails.agents.backends import make_backend
    from mad_guardrails.agents.coordinator import Coordinator
    from mad_guardrails.agents.debater import Debater
    from mad_guardrails.agents.roles import load_roles
    from mad_guardrails.agents.serve import ensure_server
    from mad_guardrails.policies.loader import load_packs
    from mad_guardrails.policies.screen import PolicyScreener
    from mad_guardrails.retrieval.retriever import Retriever
    from mad_guardrails.verifier import Verifier

    policy_set = load_packs(cfg.policies.packs, disabled=cfg.policies.disabled)
    retriever = Retriever.from_config(cfg.retrieval, cfg.profile)
    screener = PolicyScreener(policy_set, retriever.embedder)
    server = ensure_server(cfg.llm) if cfg.llm.backend == "openai" else None
    backend = make_backend(cfg.llm)
    coordinator_model = cfg.llm.coordinator_model or cfg.llm.model
    if server is not None and hasattr(server, "served_models"):
        served = set(server.served_models())
        if coordinator_model not in served:
            log.warning("coordinator model %r is not served (served: %s); using the base model %r",
                        coordinator_model, sorted(served), cfg.llm.model)
            coordinator_model = cfg.llm.model

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
    }
    return Components(retriever=retriever, policy_set=policy_set, screener=screener, verifier=verifier,
                      debaters=debaters, coordinator=coordinator, backend=backend, server=server, models=models,
                      claims_model=claims_model)
