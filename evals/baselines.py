"""The systems an eval compares, each producing the same :class:`~mad_guardrails.evals.metrics.CaseRecord` per case.

* ``mad`` — the guardrail itself (:class:`guardrails.Guardrail`): retrieval, screening, fast paths, debate,
  coordinator, verifier.
* ``single`` — the same graph with the debate and the coordinator replaced by ONE judge call
  (``prompts/judge_single.j2``) through the same backend, shown the same evidence and screened rules.
* ``majority`` — N independent judges (temperature 0.7, seeds ``seed * 1000 + i``) vote; N = the debate's mean LLM
  calls per verdict on the cases it sent to the LLM (equal compute: both take the same fast paths at zero calls).
  Ties → ``flag``.
* ``noretrieval`` — the single judge without the retrieved regulatory evidence (it still sees the screened policy
  rules); its quotes are verified against the evidence the guardrail retrieved, like everyone's.
* ``screening`` — no LLM: the graph's deterministic key-fact check (``fast_block``) and fast allow, and for the
  cases the debate would get, ``flag`` when a policy rule screens above the mode's threshold or a rule trigger
  matched, else ``allow``.

Baselines are ablations that run through the real orchestrator (``Guardrail(config, components=...)``) with only the
deliberation step swapped, so routing, fast paths, the verifier, the one repair round and the fail-closed finalize
are identical for every system and the comparison isolates the debate. The placeholder debater that stands in for
the debate makes no LLM call; the graph still counts its turn as one call, which :func:`record_from_verdict`
subtracts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import Counter
from typing import Any

from mad_guardrails.core.debate import Argument, Case, CoordinatorOutput
from mad_guardrails.core.errors import GuardrailError, InputError
from mad_guardrails.core.units import Evidence
from mad_guardrails.core.verdict import Verdict
from mad_guardrails.evals.loaders import EvalCase
from mad_guardrails.evals.metrics import CHECKS, CaseRecord, CheckScore
from mad_guardrails.guardrails.config import GuardrailConfig, load_config

log = logging.getLogger(__name__)

PLACEHOLDER_ROLE = "no-debate"


# ------------------------------------------------------------------------------------------------ records
def record_from_verdict(system: str, case: EvalCase, v: Verdict, latency_s: float, **extra: Any) -> CaseRecord:
    phantom = sum(1 for a in v.transcript if a.role == PLACEHOLDER_ROLE)
    return CaseRecord(
        system=system, case_id=case.id, set=case.set, type=case.type, expected=case.expected, decision=v.decision,
        path=v.path, confidence=v.confidence, abstained=v.abstention is not None, failure=v.failure,
        latency_s=round(latency_s, 4), llm_calls=max(0, v.usage.llm_calls - phantom),
        prompt_tokens=v.usage.prompt_tokens, completion_tokens=v.usage.completion_tokens,
        checks={c.name: CheckScore(status=c.status, score=c.score) for c in v.verification.checks if c.name in CHECKS},
        n_quotes=sum(len(x.quotes) for x in v.violations), rules=[x.rule_id for x in v.violations],
        gold_rules=case.gold_rules, rationale=(v.rationale or "")[:500], extra=extra)


def error_record(system: str, case: EvalCase, error: str, latency_s: float = 0.0) -> CaseRecord:
    return CaseRecord(system=system, case_id=case.id, set=case.set, type=case.type, expected=case.expected,
                      decision=None, error=error[:500], latency_s=round(latency_s, 4), gold_rules=case.gold_rules)


INFRA_PREFIX = "infrastructure: "
_INFRA = re.compile(r"BackendError \((connection|http_5\d\d)\)")


def infrastructure_failure(v: Verdict) -> str | None:
    """Why a verdict reflects a dead or broken LLM server rather than the system under test, or None.

    The guardrail rightly fails closed when its backend is unreachable (``connection``) or answers 5xx; for an eval
    such a verdict is an infrastructure error: not scored, counted in ``errors``, re-run by ``--retry-errors``.
    Timeouts stay verdicts (slowness is the system's own behaviour, reported as its failure rate).

    >>> infrastructure_failure(Verdict(decision="flag", failure="coordinator gave no usable answer: BackendError "
    ...                                "(connection): cannot connect"))
    'coordinator gave no usable answer: BackendError (connection): cannot connect'
    >>> infrastructure_failure(Verdict(decision="flag", failure="timeout: the check took longer than 120 s")) is None
    True
    """
    if v.failure and _INFRA.search(v.failure):
        return v.failure[:300]
    bad = [a.error for a in v.transcript if a.error and _INFRA.search(a.error)]
    return f"{len(bad)} debate turn(s) failed: {bad[0][:250]}" if bad else None


# ------------------------------------------------------------------------------------------------ resources
class EvalResources:
    """What the systems share: the config, the guardrail (built lazily; it may start the LLM server) and the
    variant guardrails the baselines run on. Close it to stop what it started."""

    def __init__(self, profile: str | GuardrailConfig = "offline", *, need_llm: bool = True, guardrail=None):
        self.config: GuardrailConfig = guardrail.config if guardrail is not None else (
            profile if isinstance(profile, GuardrailConfig) else load_config(profile))
        self.need_llm = need_llm
        self._guardrail = guardrail
        self._own_guardrail = guardrail is None
        self._light = None
        self._variants: list[Any] = []

    @property
    def config_hash(self) -> str:
        return self.config.hash()

    @property
    def models(self) -> dict[str, str]:
        c = self._guardrail.components if self._guardrail is not None else self._light
        return dict(c.models) if c is not None else {}

    def guardrail(self):
        if self._guardrail is None:
            from mad_guardrails.guardrails.guardrail import Guardrail

            self._guardrail = Guardrail(self.config)
        return self._guardrail

    def components(self):
        """The full components when an LLM is needed (or a guardrail exists), else the LLM-free ones."""
        if self._guardrail is not None or self.need_llm:
            return self.guardrail().components
        if self._light is None:
            self._light = build_llm_free_components(self.config)
        return self._light

    def variant(self, **replace):
        """A guardrail on the same retriever / policies / verifier with some components swapped."""
        from mad_guardrails.guardrails.guardrail import Guardrail

        comps = dataclasses.replace(self.components(), server=None, **replace)
        g = Guardrail(self.config, components=comps)
        self._variants.append(g)
        return g

    def warm_up(self) -> None:
        """Load what loads lazily (embedder, the screener's rule embeddings) so the first case's latency does not
        include it."""
        c = self.components()
        try:
            c.retriever.search("warm-up: incident reporting deadline")
            c.screener.screen("warm-up: incident reporting deadline", None, 1)
        except Exception:  # a broken part shows up, with its reason, in the first case's verdict
            log.warning("warm-up failed", exc_info=True)

    def nominal_debate_calls(self) -> int:
        n_roles = len(self.components().debaters) if self.need_llm else 3
        return max(1, n_roles * self.config.debate.max_rounds + 1)

    def close(self) -> None:
        for g in self._variants:
            try:
                g.close()
            except Exception:  # closing one must not keep the others (or the server) alive
                log.warning("closing a baseline guardrail failed", exc_info=True)
        self._variants = []
        if self._guardrail is not None and self._own_guardrail:
            self._guardrail.close()
            self._guardrail = None


def build_llm_free_components(cfg: GuardrailConfig):
    """Retriever, policies, screener and verifier without any LLM backend or server (the screening baseline).

    Built by the guardrail's own :func:`mad_guardrails.guardrails.components.build_components` (so the recipe cannot drift) with
    the LLM switched to the never-called ``fake`` backend, whose parts are then removed."""
    from mad_guardrails.guardrails.components import build_components

    off = cfg.model_copy(update={"llm": cfg.llm.model_copy(update={"backend": "fake", "serve": None})})
    comps = build_components(off)
    models = dict(comps.models) | {"debaters": "none", "coordinator": "none"}
    return dataclasses.replace(comps, debaters=[], coordinator=None, backend=None, server=None, models=models)


# ------------------------------------------------------------------------------------------------ stand-ins
@dataclasses.dataclass
class _Role:
    name: str = PLACEHOLDER_ROLE


class PlaceholderDebater:
    """Stands in for the debate in ablations: no LLM call, an empty 'uncertain' turn (round 1 ends at once)."""

    role = _Role()

    async def turn(self, case: Case, evidence, rules, transcript, round: int):
        return Argument(role=PLACEHOLDER_ROLE, round=round, stance="uncertain", confidence=0.0,
                        raw="(no debate: ablation baseline)"), None


@dataclasses.dataclass
class Decision:
    """What a coordinator returns to the graph: ``output`` (or None with ``error``), calls and usage."""

    output: CoordinatorOutput | None
    calls: int = 0
    usage: Any = None
    error: str | None = None


class ScreeningCoordinator:
    """No LLM: decide from the policy screener's scores (the graph already did the number check and fast paths)."""

    def __init__(self, screener, threshold: float, top: int = 5):
        self.screener = screener
        self.threshold = threshold
        self.top = top

    async def decide(self, case: Case, evidence: list[Evidence], rules, transcript, feedback=None) -> Decision:
        hits = await asyncio.to_thread(self.screener.screen, case.output, case.query, self.top)
        best = max(hits, key=lambda h: float(h.score), default=None)
        triggered = [h for h in hits if getattr(h, "matched_triggers", None)]
        if best is not None and (float(best.score) > self.threshold or triggered):
            why = (f"rule {best.rule.id} screened at {float(best.score):.2f} (threshold {self.threshold:g})"
                   + (f"; triggers matched: {', '.join(h.rule.id for h in triggered[:3])}" if triggered else ""))
            return Decision(CoordinatorOutput(decision="flag", confidence=min(1.0, float(best.score)),
                                              rationale=f"Screening: {why}."))
        return Decision(CoordinatorOutput(decision="allow", confidence=0.6,
                                          rationale="Screening: no rule above threshold and no trigger."))


class UnsettledCoordinator:
    """No LLM: a case the claim check did not settle (verified allow / clause block) is a ``flag`` — the ``claims``
    system, claim verification alone."""

    async def decide(self, case: Case, evidence: list[Evidence], rules, transcript, feedback=None) -> Decision:
        return Decision(CoordinatorOutput(decision="flag", confidence=0.5, rationale=(
            "Claims: not every regulatory claim is entailed by a clause and none is contradicted; a person should "
            "review it.")))


# ------------------------------------------------------------------------------------------------ judges
def judge_model(res: EvalResources) -> str:
    """The judges run on the model the guardrail's coordinator uses (the coordinator adapter where it is served),
    so single / majority / no-retrieval differ from the debate only in the absence of the debate."""
    from mad_guardrails.agents.backends import effective_coordinator_model

    coord = res.components().coordinator
    return getattr(coord, "model", None) or effective_coordinator_model(res.config.llm)


class JudgeCoordinator:
    """One judge call (``prompts/judge_single.j2`` through :func:`mad_guardrails.agents.coordinator.single_judge`: the coordinator's
    EVIDENCE/ANSWER contract and parser, one format-repair retry). ``show_evidence=False`` hides the retrieved
    regulatory evidence (the no-retrieval baseline); the screened policy rules are still shown."""

    def __init__(self, backend, model: str, *, show_evidence: bool = True, temperature: float | None = None,
                 seed: int | None = None, **coordinator_kw):
        from mad_guardrails.agents.coordinator import single_judge

        target = backend if temperature is None and seed is None else _Sampling(backend, temperature, seed)
        self.judge = single_judge(target, model, **coordinator_kw)
        self.show_evidence = show_evidence

    async def decide(self, case: Case, evidence: list[Evidence], rules, transcript, feedback=None):
        return await self.judge.decide(case, evidence if self.show_evidence else [], rules, [], feedback)


class _Sampling:
    """A backend view that samples: every call gets this temperature and seed unless the caller sets its own."""

    def __init__(self, backend, temperature: float | None, seed: int | None):
        self.backend = backend
        self.name = getattr(backend, "name", "backend")
        self.temperature = temperature
        self.seed = seed

    async def chat(self, messages, **kw):
        if kw.get("temperature") is None and self.temperature is not None:
            kw["temperature"] = self.temperature
        if kw.get("seed") is None and self.seed is not None:
            kw["seed"] = self.seed
        return await self.backend.chat(messages, **kw)

    async def aclose(self) -> None:  # the wrapped backend is closed by its owner
        return None


class MajorityCoordinator:
    """N independent judges (temperature ``temperature``, seeds ``seed * 1000 + i``) vote on the decision; the
    answer of the most confident judge among the majority is released (its quotes and violations are verified like
    any other). A tie → ``flag``. Judges whose answer could not be read do not vote; if none can, the check fails
    closed. A verifier repair round asks one judge (temperature 0) again with the feedback, as the debate's
    coordinator is asked once."""

    def __init__(self, backend, model: str, *, n: int, seed: int = 0, temperature: float = 0.7, **coordinator_kw):
        self.n = n
        self.judges = [JudgeCoordinator(backend, model, temperature=temperature, seed=seed * 1000 + i,
                                        **coordinator_kw) for i in range(n)]
        self.repairer = JudgeCoordinator(backend, model, **coordinator_kw)

    async def decide(self, case: Case, evidence: list[Evidence], rules, transcript, feedback=None):
        from mad_guardrails.agents.backends.base import TokenUsage
        from mad_guardrails.agents.coordinator import CoordinatorResult

        if feedback:
            return await self.repairer.decide(case, evidence, rules, transcript, feedback)
        results = await asyncio.gather(*(j.decide(case, evidence, rules, transcript) for j in self.judges))
        usage = TokenUsage()
        for r in results:
            usage = usage + r.usage
        calls = sum(r.calls for r in results)
        ok = [r for r in results if r.output is not None]
        if not ok:
            errs = Counter((r.error or "no answer")[:120] for r in results)
            return CoordinatorResult(output=None, calls=calls, usage=usage,
                                     error=f"no judge of {self.n} gave a usable answer: " + "; ".join(
                                         f"{k} ({c}×)" for k, c in errs.most_common(2)))
        decision, votes = vote([r.output.decision for r in ok])
        pool = [r.output for r in ok if r.output.decision == decision]
        tally = ", ".join(f"{d} {votes.get(d, 0)}" for d in ("allow", "flag", "block"))
        if pool:
            best = max(pool, key=lambda o: o.confidence)
            out = best.model_copy(update={"rationale": f"[votes of {self.n}: {tally}] {best.rationale}"})
        else:  # a tie: flag, with the evidence quotes the judges agreed to cite (none of their violations)
            out = CoordinatorOutput(decision="flag", confidence=0.5,
                                    rationale=f"[votes of {self.n}: {tally}] The judges disagree (tie).")
        return CoordinatorResult(output=out, calls=calls, usage=usage)


# ------------------------------------------------------------------------------------------------ systems
class EvalSystem:
    """Base: ``evaluate(case)`` never raises; bad input and crashes become error records."""

    name = "system"

    async def check(self, case: EvalCase) -> tuple[Verdict, dict[str, Any]]:
        raise NotImplementedError

    async def evaluate(self, case: EvalCase) -> CaseRecord:
        t0 = time.perf_counter()
        try:
            v, extra = await self.check(case)
        except InputError as e:
            return error_record(self.name, case, f"input: {e}", time.perf_counter() - t0)
        except Exception as e:  # a crash is recorded, the run goes on (--retry-errors re-runs)
            log.warning("%s crashed on %s", self.name, case.id, exc_info=True)
            return error_record(self.name, case, f"crash: {type(e).__name__}: {e}", time.perf_counter() - t0)
        infra = infrastructure_failure(v)
        if infra:  # the server was down: that says nothing about the system, so it is no verdict to score
            return error_record(self.name, case, f"{INFRA_PREFIX}{infra}", time.perf_counter() - t0)
        return record_from_verdict(self.name, case, v, time.perf_counter() - t0, **extra)

    async def aclose(self) -> None:
        return None


class GuardrailSystem(EvalSystem):
    """Runs cases through a (possibly ablated) guardrail."""

    def __init__(self, name: str, guardrail, extra: dict[str, Any] | None = None):
        self.name = name
        self.g = guardrail
        self.extra = extra or {}

    async def check(self, case: EvalCase) -> tuple[Verdict, dict[str, Any]]:
        v = await self.g.acheck(case.output, query=case.query, context=case.context)
        return v, dict(self.extra)


def make_system(name: str, res: EvalResources, *, majority_n: int | None = None, seed: int = 0) -> EvalSystem:
    """Build one of the systems on shared resources."""
    cfg = res.config
    if name == "mad":
        return GuardrailSystem("mad", res.guardrail())
    if name == "screening":
        comps = res.components()
        th = (cfg.modes.get("balanced") or next(iter(cfg.modes.values()))).fast_allow_max_screen
        g = res.variant(debaters=[PlaceholderDebater()], backend=None,
                        coordinator=ScreeningCoordinator(comps.screener, th, cfg.policies.screen_top))
        return GuardrailSystem("screening", g)
    if name == "claims":
        g = res.variant(debaters=[PlaceholderDebater()], backend=None, coordinator=UnsettledCoordinator())
        return GuardrailSystem("claims", g)
    if name in ("single", "noretrieval", "majority"):
        from mad_guardrails.agents.backends import make_backend

        model = judge_model(res)
        backend = make_backend(cfg.llm)
        n = 1 if name != "majority" else max(1, majority_n or res.nominal_debate_calls())
        # the judges read what the debate's coordinator reads, as much of it, in the same answer budget
        same = {"evidence_chars": cfg.debate.evidence_chars, "max_tokens": cfg.debate.coordinator_max_tokens,
                "mode": cfg.llm.coordinator_mode}
        if name == "majority":
            coord = MajorityCoordinator(backend, model, n=n, seed=seed, **same)
        else:
            coord = JudgeCoordinator(backend, model, show_evidence=name != "noretrieval", **same)
        g = res.variant(debaters=[PlaceholderDebater()], coordinator=coord, backend=backend)
        extra = {"judge_model": model} | ({"n_judges": n} if name == "majority" else {})
        return GuardrailSystem(name, g, extra)
    raise GuardrailError(f"unknown system {name!r}", fix="use mad, single, majority, noretrieval, screening or claims")


def vote(decisions: list[str]) -> tuple[str, Counter]:
    """Majority decision; a tie between the top decisions gives ``flag`` (disagreement is not an allow).

    >>> vote(["allow", "block", "allow"])[0], vote(["allow", "block"])[0]
    ('allow', 'flag')
    """
    c = Counter(decisions)
    top = c.most_common()
    if not top:
        return "flag", c
    if len(top) > 1 and top[0][1] == top[1][1]:
        return "flag", c
    return top[0][0], c
