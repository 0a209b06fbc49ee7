"""The orchestrator: a LangGraph ``StateGraph`` whose nodes are the pipeline's boxes.

::

    retrieve ─► screen ─► entail ─┬─► fast_allow ─────────────────────────────────────────┐
                                  ├─► verified_allow ─────────────────────────────────────┤
                                  ├─► fast_block ─────────────────────────────────────────┤
                                  └─► start_round ─► argue ×N (Send, parallel) ─► moderate │
                                           ▲                                      │        │
                                           └──────── no consensus, rounds left ───┘        │
                                                            coordinate ◄─ repair ◄─┐       │
                                                                │                  │ fail  │
                                                                ▼                  │ (once)│
                                                              verify ──────────────┘       │
                                                                │ pass / repaired          ▼
                                                                └──────────────────────► finalize ─► END
    (the three fast paths also pass through verify: their quotes are checked like any other)

The graph is data: :func:`graph_spec` reads the nodes and edges off the compiled graph (``compiled.get_graph()``),
with each node's role taken from its function's docstring.

**State** (:class:`GuardState`) holds typed values — the :class:`Case`, :class:`Evidence`, the
:class:`FactCheck`, :class:`Argument` turns, the :class:`CoordinatorOutput`, the :class:`VerificationReport`, the
:class:`Verdict` — parsed once where they enter and never re-validated. The checkpointers (in memory, SQLite) persist
them through a serializer that allows exactly these types (:func:`serializer`), so a long check resumes.

**Nodes** are module-level functions. The non-serialisable parts (retriever, screener, agents, verifier) and the
config reach them through LangGraph's runtime context (:class:`GuardContext`, passed per invocation), so one
compiled graph serves every :class:`~mad_guardrails.guardrails.guardrail.Guardrail`.

Every node catches its own failures and records them in ``failure``; ``finalize`` turns a failure into the
fail-closed verdict (:meth:`Verdict.failed`, ``flag`` by default), never ``allow``.
"""

from __future__ import annotations

import asyncio
import functools
import operator
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from mad_guardrails.core.claims import ClaimCheck, OutputClaim
from mad_guardrails.core.debate import Argument, Case, Claim, CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.core.injection import InjectionSpan
from mad_guardrails.core.units import Evidence, id_covers
from mad_guardrails.core.verdict import CheckResult, Usage, Verdict, VerificationReport, Violation
from mad_guardrails.verifier.facts import FactCheck, FactFinding
from mad_guardrails.verifier.harm import HarmResult

# --------------------------------------------------------------------------------------------------- state


def _merge_sum(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = out.get(k, 0) + v
    return out


class ScreenRow(TypedDict):
    rule_id: str
    score: float
    triggers: list[str]


NO_REGULATORY_CLAIM = "no regulatory claim in the output"


class GuardState(TypedDict, total=False):
    case: Case
    mode: str
    policies: list[str] | None  # restrict to these packs / rule ids
    pause_between_rounds: bool
    # retrieval + screening
    evidence: list[Evidence]
    abstained: bool
    abstain_reason: str | None
    screen: list[ScreenRow]
    facts: FactCheck  # the one key-fact check, shared by routing and verification
    claims: list[ClaimCheck]  # each regulatory claim of the output against its own clauses
    claims_note: str | None  # why the claim check did not run (no model, no regulatory claim)
    unchecked: list[str]  # sentences with no regulatory content that are not greetings, hedges or questions
    injection: list[InjectionSpan]  # spans of the output that address the judges: hidden from the agents, never allowed
    harm: HarmResult | None  # the harm screen's reading of (query, answer); None = screen off
    regulatory_context: bool  # the case is about the packs' domain (see screen); False: its claims do not hold back
    path: str
    # debate
    round: int
    transcript: Annotated[list[Argument], operator.add]
    consensus: bool
    # coordination + verification
    coordinator: CoordinatorOutput | None
    coordinator_error: str | None
    feedback: list[str]
    repairs: int
    verification: VerificationReport | None
    # bookkeeping
    failure: str | None
    usage: Annotated[dict, _merge_sum]
    timings: Annotated[dict, _merge_sum]
    verdict: Verdict


class ArgueTask(TypedDict):
    role_index: int
    round: int
    case: Case
    evidence: list[Evidence]
    rule_ids: list[str]
    transcript: list[Argument]


@dataclass
class GuardContext:
    """What the nodes need besides the state: the assembled parts and the config (LangGraph runtime context)."""

    components: Any  # guardrails.components.Components
    config: Any  # guardrails.config.GuardrailConfig


#: pydantic types the state holds; the checkpoint serializer allows exactly these (plus LangGraph's own safe types)
STATE_TYPES = (Case, Evidence, ClaimCheck, OutputClaim, FactCheck, FactFinding, Argument, Claim, Quote, CoordinatorOutput, ProposedViolation,
               VerificationReport, CheckResult, Verdict, Violation, Usage, HarmResult, InjectionSpan)


def serializer():
    """The checkpoint serializer: LangGraph's msgpack serializer, strict, with the state's types allowed."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    from mad_guardrails.policies.schema import KeyFact

    return JsonPlusSerializer(allowed_msgpack_modules=None).with_msgpack_allowlist([*STATE_TYPES, KeyFact])


# --------------------------------------------------------------------------------------------------- helpers


def _timed(name: str, t0: float) -> dict:
    return {name: round(time.perf_counter() - t0, 4)}


def _shown(state: GuardState, cfg) -> list[Evidence]:
    """The evidence the agents see: the best ``debate.evidence_k`` clauses and the best retrieved policy rule (the
    verdict keeps all it retrieved)."""
    ev = state.get("evidence", [])
    return ([e for e in ev if e.kind != "rule"][: cfg.debate.evidence_k]
            + [e for e in ev if e.kind == "rule"][: max(1, cfg.debate.evidence_k // 4)])


def _without_injection(output: str, spans: list[InjectionSpan]) -> str | None:
    """The output with the injected spans removed (None when there are none): the screens read it as well as the
    output as it came, and keep the harsher reading, so injected text can neither hide a violation nor soften one."""
    if not spans:
        return None
    from mad_guardrails.verifier.injection import strip_injection

    return strip_injection(output, spans, placeholder="")


def _agent_case(state: GuardState) -> Case:
    """The case as the debaters and the coordinator see it: the spans of the output that address the judges replaced
    by a placeholder (the deterministic checks read the output as it came)."""
    spans = state.get("injection") or []
    if not spans:
        return state["case"]
    from mad_guardrails.verifier.injection import strip_injection

    return state["case"].model_copy(update={"output": strip_injection(state["case"].output, spans)})


def _rules(c, rule_ids: list[str]):
    return [r for r in (c.policy_set.get(i) for i in rule_ids) if r is not None]


def _screened_ids(state: GuardState) -> list[str]:
    return [s["rule_id"] for s in state.get("screen", [])]


def rule_selected(rule, policies: list[str] | None) -> bool:
    """Whether ``rule`` is among ``policies`` (rule ids, id prefixes, pack or act ids); no list = every rule."""
    if not policies:
        return True
    return any(rule.id == p or rule.id.startswith(p + ".") or getattr(rule, "pack", None) == p
               or rule.id.split(".", 1)[0] == p for p in policies)


def _usage_of(resp) -> dict:
    if resp is None:
        return {"llm_calls": 1}
    u = getattr(resp, "usage", None)
    return {"llm_calls": 1, "prompt_tokens": getattr(u, "prompt_tokens", 0) or 0,
            "completion_tokens": getattr(u, "completion_tokens", 0) or 0}


#: characters of output per retrieval query; a longer output is retrieved for window by window (the embedders read
#: 256–512 tokens; the retriever refuses nothing the input limit let in)
RETRIEVAL_WINDOW_CHARS = 1500


def retrieval_queries(case: Case, window: int = RETRIEVAL_WINDOW_CHARS) -> list[str]:
    """The retrieval queries for a case: the query with the output, or, for a long output, the query with each
    window of it (cut at sentence ends).

    >>> len(retrieval_queries(Case(output="A. " * 2000, query="q?")))
    4
    """
    import re

    out = case.output.strip()
    if len(out) <= window:
        return ["\n".join(x for x in (case.query, out) if x)]
    parts, cur = [], ""
    for sent in re.split(r"(?<=[.!?;])\s+", out):
        while len(sent) > window:  # one endless sentence: hard cut
            if cur:
                parts.append(cur)
                cur = ""
            parts.append(sent[:window])
            sent = sent[window:]
        if cur and len(cur) + 1 + len(sent) > window:
            parts.append(cur)
            cur = sent
        else:
            cur = f"{cur} {sent}".strip()
    if cur:
        parts.append(cur)
    return ["\n".join(x for x in (case.query, p) if x) for p in parts]


def _merge_results(results) -> tuple[list[Evidence], bool, str | None]:
    """One evidence list from several retrievals: clauses (each unit once, best score first), then the policy rules
    retrieved beside them, labelled by ``kind`` (retrieval/retriever.py: merge_results)."""
    from mad_guardrails.retrieval.retriever import merge_results

    return merge_results(results)


# --------------------------------------------------------------------------------------------------- nodes


async def retrieve(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """hybrid retrieval of regulatory units (FAISS + BM25, relevance filter); long outputs window by window"""
    t0 = time.perf_counter()
    c = runtime.context.components
    queries = retrieval_queries(state["case"])
    try:
        if len(queries) == 1:
            results = [await asyncio.to_thread(c.retriever.search, queries[0])]
        else:
            results = await asyncio.to_thread(c.retriever.search_many, queries)
    except Exception as e:  # broken index, embedder crash: fail closed
        return {"failure": f"retrieval failed: {type(e).__name__}: {e}", "evidence": [],
                "timings": _timed("retrieve", t0)}
    ev, abstained, reason = _merge_results(results)
    return {"evidence": ev, "abstained": abstained, "abstain_reason": reason, "timings": _timed("retrieve", t0)}


async def screen(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """rank policy rules that may apply; the one key-fact check (deadlines, dates, amounts)"""
    t0 = time.perf_counter()
    c, cfg = runtime.context.components, runtime.context.config
    case = state["case"]
    try:  # text that addresses the judges (verifier/injection.py)
        from mad_guardrails.verifier.injection import detect_injection

        injection = await asyncio.to_thread(detect_injection, case.output)
    except Exception as e:
        return {"failure": f"injection check failed: {type(e).__name__}: {e}", "timings": _timed("screen", t0)}
    try:
        hits = await asyncio.to_thread(c.screener.screen, case.output, case.query, cfg.policies.screen_top * 2)
        hits = [h for h in hits if rule_selected(h.rule, state.get("policies"))]
        from mad_guardrails.verifier.facts import check_facts

        # the facts of every screened rule (the wider list), checked together; the agents see the top ones
        facts = check_facts(case.output, [h.rule for h in hits], query=case.query)
        bare = _without_injection(case.output, injection)  # injected text never softens a screen: both are read
        if bare is not None and not facts.contradicted:
            facts = check_facts(bare, [h.rule for h in hits], query=case.query)
        hits = hits[: cfg.policies.screen_top]
        from mad_guardrails.verifier.harm import screen_case

        harm = await asyncio.to_thread(screen_case, getattr(c, "harm_screen", None), c.policy_set, case.query,
                                       case.output, [h.rule for h in hits], cfg.thresholds(state.get("mode")).harm_shift)
        if bare is not None and harm is not None:
            alt = await asyncio.to_thread(screen_case, c.harm_screen, c.policy_set, case.query, bare,
                                          [h.rule for h in hits], cfg.thresholds(state.get("mode")).harm_shift)
            harm = max((harm, alt), key=lambda h: ({"none": 0, "flag": 1, "block": 2}.get(h.decision, 0), h.score))
    except Exception as e:
        return {"failure": f"policy screening failed: {type(e).__name__}: {e}", "timings": _timed("screen", t0)}
    context = True  # only a harm reading that may clear the case asks whether the case is about regulation at all
    if harm is not None and harm.decision == "none" and harm.may_clear:
        # a refusal's own sentences ("passwords are personal and should not be shared") are law only where the
        # case names it: a question that merely sounds near the domain does not make them regulatory claims
        context = await asyncio.to_thread(regulatory_context, None if harm.refusal else c.retriever, case.query,
                                          case.output)
    rows = [ScreenRow(rule_id=h.rule.id, score=float(h.score),
                      triggers=list(getattr(h, "matched_triggers", []) or [])) for h in hits]
    if harm is not None and harm.rule_id and harm.decision != "none":  # the agents see the rule the screen names
        rows = [ScreenRow(rule_id=harm.rule_id, score=harm.score, triggers=[f"harm screen: {harm.label}"])] + [
            r for r in rows if r["rule_id"] != harm.rule_id]
    return {"screen": rows, "facts": facts, "harm": harm, "injection": injection, "regulatory_context": context,
            "timings": _timed("screen", t0)}


def regulatory_context(retriever, query: str | None, output: str) -> bool:
    """Whether a case is about the packs' domain: the question or the answer names an act, an actor or a thing the acts
    regulate (``verifier.claims.names_regulation``), or the question on its own retrieves regulation (the index's
    calibrated relevance filter does not abstain on it) and the domain head, when one is configured
    (``retrieval.domain_head``), reads it as a question about the regulated domain. With ``retriever=None`` only
    the names count (the screen node asks so for a confident refusal). Sentences with a modal verb or a figure read as claims to
    check ("Apply for internships ...", "return 0 indicates success"); in a case that is not about regulation they
    are not regulatory claims, so they do not keep a confident safe answer or refusal from the fast allow. A retrieval
    error counts as regulatory (never a reason to allow)."""
    from mad_guardrails.verifier.claims import names_regulation

    if names_regulation(query) or names_regulation(output):
        return True
    if retriever is None:  # the caller asks only whether the case names regulation
        return False
    if not query:
        return True  # nothing to ask the index about: keep the claims
    try:
        r = retriever.search(query)
    except Exception:
        return True
    return not (r.abstained or r.off_domain)


def _harm_clear(harm: HarmResult | None, state: GuardState, rule_triggered: bool) -> str | None:
    """The harm screen's reason to allow without a debate (``HarmResult.clears``), counting the claims and the rules'
    keyword triggers only in a case about regulation (``regulatory_context``): "keep pets off the grass for at least
    24 hours" fires the NIS2 reporting rule's "24 hours" trigger and reads as a claim, in an answer about weeds. In a
    case that names regulation, a sentence the claim check could not read (``unchecked``) keeps a safe answer from it."""
    if harm is None:
        return None
    claims = bool(state.get("claims"))
    about = state.get("regulatory_context", True)
    # in a case that names regulation, a sentence the claim check could not read ("you set up GOVERN first, then
    # MAP" to a question about the NIST AI RMF) is not "no regulatory claim": only a refusal clears it
    unread = bool(state.get("unchecked")) and regulatory_context(None, state["case"].query, state["case"].output)
    checked = (state.get("claims_note") == NO_REGULATORY_CLAIM and not unread) or (claims and not about)
    why = harm.clears(regulatory_claims=claims and about, rule_triggered=rule_triggered and about,
                      claim_check_ran=checked)
    if why and not about and (claims or rule_triggered):
        why += (" (the case names no act, actor or regulated thing)" if harm.refusal else
                " (the case names no act, actor or regulated thing, and its question is not about regulation)")
    return why


async def entail(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """each regulatory claim of the output against the sentences of its own best clauses (entailed / contradicted / not settled)"""
    t0 = time.perf_counter()
    c, cfg = runtime.context.components, runtime.context.config
    if state.get("failure"):
        return {}
    model = getattr(c, "claims_model", None)
    if model is None or not cfg.verifier.claims:
        return {"claims": [], "claims_note": "claim check off (no entailment model configured)",
                "timings": _timed("entail", t0)}
    from mad_guardrails.verifier.claim_check import check_claims, claim_evidence, scope_acts
    from mad_guardrails.verifier.claims import UNREAD_REASONS, split_claims

    case = state["case"]
    split = split_claims(case.output)
    claims = [x for x in split if x.regulatory]
    unchecked = [x.text for x in split if not x.regulatory and x.reason in UNREAD_REASONS]
    if not claims:
        return {"claims": [], "claims_note": NO_REGULATORY_CLAIM, "unchecked": unchecked,
                "timings": _timed("entail", t0)}
    th = cfg.thresholds(state.get("mode"))
    try:
        scope = scope_acts(case.output, case.query)  # the acts a claim that names none is read against
        per_claim = await asyncio.to_thread(claim_evidence, c.retriever, claims, case.query, cfg.verifier.claim_units,
                                            scope_text=case.output, scope=scope)
        entail_t, contra_t = model.claim_thresholds()
        checks = await asyncio.to_thread(
            check_claims, claims, per_claim, model, units=cfg.verifier.claim_units, lookup=c.retriever.lookup,
            question=case.query or "", scope=scope, answer=case.output,
            entail_threshold=entail_t + th.claim_entail_shift,
            contradict_threshold=contra_t + th.claim_contradict_shift)
        known = {}  # the text the verdict's evidence will hold for each unit (the first seen), so quotes verify
        for e in [*state.get("evidence", []), *(e for ev in per_claim for e in ev)]:
            known.setdefault(e.unit_id, e.text)
        checks, prohibited = _prohibition_checks(checks, _rules(c, _screened_ids(state)),
                                                 lambda u: known.get(u) or c.retriever.lookup(u))
    except Exception as e:  # a verifier crash fails closed, never an unchecked allow
        return {"failure": f"claim verification failed: {type(e).__name__}: {e}", "timings": _timed("entail", t0)}
    per_claim.append(prohibited)
    have = {e.unit_id for e in state.get("evidence", [])}
    extra = []
    for ev in per_claim:  # the clauses that decided a claim become evidence the verdict shows
        for e in ev:
            if e.unit_id not in have:
                have.add(e.unit_id)
                extra.append(e.model_copy(update={"rank": len(have)}))
    return {"claims": checks, "claims_note": None, "unchecked": unchecked,
            "evidence": list(state.get("evidence", [])) + extra, "timings": _timed("entail", t0)}


def _prohibition_checks(checks: list[ClaimCheck], rules, lookup) -> tuple[list[ClaimCheck], list[Evidence]]:
    """Claims that permit what a screened prohibition forbids become contradicted by the rule's provision (see
    verifier/prohibitions.py); the provisions they cite join the evidence so the quote verifies."""
    from mad_guardrails.agents.grammar import sentences
    from mad_guardrails.verifier.prohibitions import closest_sentence, permits_prohibited

    out, extra = [], []
    for x in checks:
        hit = None if x.label == "contradicted" else next(
            ((r, t) for r in rules if (t := permits_prohibited(x.claim.text, r))), None)
        text = lookup(hit[0].provisions[0]) if hit else None
        quote = closest_sentence(x.claim.text, sentences(text, max_words=60) or [text]) if text else None
        if not hit or not quote:
            out.append(x)
            continue
        unit = hit[0].provisions[0]
        extra.append(Evidence(unit_id=unit, doc=unit.split(":")[0], text=text, rank=1, score=1.0))
        out.append(x.model_copy(update={
            "label": "contradicted", "against": Quote(doc_id=unit, text=quote), "contradicted": max(x.contradicted, 0.9),
            "basis": f"permits a prohibited practice ({hit[1]!r}, rule {hit[0].id})"}))
    return out, extra


def harm_outweighed(harm: HarmResult | None, claims: list[ClaimCheck], state: GuardState) -> bool:
    """The harm screen's reading yields to verified evidence when every sentence of the answer is a regulatory claim
    a clause entails: restating the law is not harmful help (the screen, a small model, reads "No. Providers shall
    inform people that they are talking to an AI system" to "can we hide that it's a bot?" as a leak). Help to break
    a rule (risk ``regulatory``, see verifier/evasion.py) and any sentence the claim check did not read keep it."""
    return (harm is not None and harm.decision != "none" and harm.risk != "regulatory" and bool(claims)
            and all(x.label == "entailed" for x in claims) and not state.get("unchecked"))


def harm_softened(harm: HarmResult | None, claims: list[ClaimCheck], state: GuardState) -> bool:
    """A harm ``block`` becomes a debate (never an allow) when the answer only states law — every sentence is a
    regulatory claim, none is contradicted — and either turns the request down first ("No. ...", "You can't ...": a
    refusal is never a violation) or is at least half made of claims a clause entails (the CRA's duty to report an
    actively exploited vulnerability within 24 hours is the law, not offensive cyber help). The claims and the debate
    decide the rest. Help to break a rule keeps the block, and so does any sentence the claim check cannot read
    other than the answer's short verdict ("Likely not the patients.")."""
    from mad_guardrails.verifier.claim_signals import opens_with_refusal
    from mad_guardrails.verifier.claims import short_verdict

    states_law = sum(x.label == "entailed" for x in claims) * 2 >= len(claims)
    return (harm is not None and harm.decision == "block" and harm.risk != "regulatory" and bool(claims)
            and not any(x.label == "contradicted" for x in claims)
            and not [u for u in state.get("unchecked") or () if not short_verdict(u)]  # "Likely not." helps no one
            and (opens_with_refusal(state["case"].output) or states_law))


def route_after_entail(state: GuardState, runtime: Runtime[GuardContext]) -> str:
    if state.get("failure"):
        return "finalize"
    facts = state.get("facts")
    claims = state.get("claims") or []
    harm = state.get("harm")
    outweighed = harm_outweighed(harm, claims, state)
    if ((facts is not None and facts.contradicted) or any(x.label == "contradicted" for x in claims)
            or (harm is not None and harm.decision == "block" and not outweighed
                and not harm_softened(harm, claims, state))):
        return "fast_block"
    if harm is not None and harm.decision in ("flag", "block") and not outweighed:
        # the harm screen fired (a block here is a refusal that then states law): no fast allow, the debate decides
        # (and sees the screen)
        return "start_round"
    # a screened rule's keywords only say what the output is about; what decides is whether every claim is entailed
    if claims and all(x.label == "entailed" for x in claims):
        return "verified_allow"
    any_trigger = any(s["triggers"] for s in state.get("screen", []))
    if _harm_clear(harm, state, any_trigger):
        return "fast_allow"  # a confident refusal (never a violation) or safe answer with nothing regulatory in it
    cfg = runtime.context.config
    th = cfg.thresholds(state.get("mode"))
    best_rel = max((e.relevance if e.relevance is not None else e.score
                    for e in state.get("evidence", []) if e.source == "regulation"), default=0.0)
    best_screen = max((s["score"] for s in state.get("screen", [])), default=0.0)
    nothing_relevant = state.get("abstained") or best_rel <= th.fast_allow_max_relevance
    if nothing_relevant and best_screen <= th.fast_allow_max_screen and not any_trigger:
        return "fast_allow"
    return "start_round"


async def fast_allow(state: GuardState) -> dict:
    """nothing relevant and nothing risky: allow without debate"""
    reason = state.get("abstain_reason") or "no relevant regulatory evidence and no policy rule triggered"
    upd: dict = {}
    cleared = _harm_clear(state.get("harm"), state, rule_triggered=False)
    if cleared and not state.get("abstained"):  # the reason the verdict gives (its "Allowed: ..." line)
        reason = upd["abstain_reason"] = cleared
    return {**upd, "path": "fast_allow", "coordinator": CoordinatorOutput(
        decision="allow", rationale=f"Fast path: {reason}.", confidence=0.8)}


#: a claim that restates its clause word for word, with no figure, negation, modality or actor of its own, is as
#: certain as the check gets (the model's own probability is not what settled it)
RESTATEMENT_CONFIDENCE = 0.95


async def verified_allow(state: GuardState) -> dict:
    """every regulatory claim entailed by a clause sentence, nothing contradicted or triggered: allow without debate"""
    claims = state.get("claims") or []
    quotes = [x.support for x in claims if x.support is not None]
    rationale = ("Verified: every regulatory claim of the output is entailed by a clause: "
                 + "; ".join(f'"{x.claim.text}" ← [{x.support.doc_id}]' for x in claims if x.support) + ".")
    return {"path": "verified_allow", "coordinator": CoordinatorOutput(
        decision="allow", evidence=quotes, rationale=rationale,
        confidence=round(min(RESTATEMENT_CONFIDENCE if x.basis == "restatement" else x.entailed for x in claims), 4))}


async def fast_block(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """a contradicted key fact (e.g. a wrong legal deadline) or a claim a clause contradicts: block without debate"""
    c = runtime.context.components
    viols, quotes, extra_ev = [], [], []
    evidence = list(state.get("evidence", []))
    have = {e.unit_id for e in evidence}
    for f in (state.get("facts") or FactCheck()).contradicted:
        fact = f.fact
        q = [Quote(doc_id=fact.provision, text=fact.quote)] if fact.quote else []
        quotes += q
        rule = c.policy_set.get(f.rule_id)
        viols.append(ProposedViolation(rule_id=f.rule_id, provisions=[fact.provision],
                                       severity=getattr(rule, "severity", "high"), explanation=f.explanation,
                                       quotes=q))
        if fact.provision not in have:  # make the cited provision part of the evidence the verdict shows
            txt = c.retriever.lookup(fact.provision)
            if txt:
                have.add(fact.provision)
                extra_ev.append(Evidence(unit_id=fact.provision, doc=fact.provision.split(":")[0], text=txt,
                                         rank=len(have), score=1.0))
    screened = _rules(c, _screened_ids(state))
    for x in (x for x in state.get("claims") or [] if x.label == "contradicted" and x.against is not None):
        unit = x.against.doc_id
        if any(unit in v.provisions for v in viols):
            continue  # the key-fact check already cites this clause
        rule = next((r for r in screened if any(id_covers(p, unit) or id_covers(unit, p) for p in r.provisions)),
                    None)
        quotes.append(x.against)
        viols.append(ProposedViolation(
            rule_id=rule.id if rule is not None else f"clause:{unit}", provisions=[unit],
            severity=getattr(rule, "severity", "high"), quotes=[x.against],
            explanation=f'"{x.claim.text}" is contradicted by [{unit}] (p={x.contradicted:.2f})'))
    what = "a key fact of the law" if (state.get("facts") or FactCheck()).contradicted else "a clause"
    rationale = f"Fast path: the output contradicts {what}: " + "; ".join(v.explanation for v in viols)
    harm = state.get("harm")
    if harm is not None and harm.decision == "block":  # harmful compliance: the NIST AI 600-1 rule it breaks
        from mad_guardrails.verifier.harm import harm_block

        hv, hev = harm_block(harm, c.policy_set, c.retriever.lookup)
        if hv is not None and any(v.rule_id == hv.rule_id for v in viols):
            hv = None  # the claim check already cites that rule (with the clause's own sentence)
        if hv is not None:
            rationale = (rationale + "; " if viols else "Fast path: ") + hv.explanation
            viols.append(hv)
            quotes += hv.quotes
            if hev is not None and hev.unit_id not in have:
                have.add(hev.unit_id)
                extra_ev.append(hev.model_copy(update={"rank": len(have)}))
    out = CoordinatorOutput(decision="block", evidence=quotes, violations=viols, confidence=0.9, rationale=rationale)
    return {"path": "fast_block", "coordinator": out, "evidence": evidence + extra_ev}


async def start_round(state: GuardState) -> dict:
    """open a debate round (optionally pause for a person's interjection); the agents see the per-claim results"""
    r = state.get("round", 0) + 1
    upd: dict = {"round": r, "path": "debate"}
    claims = state.get("claims") or []
    harm = state.get("harm")
    harm_lines = [harm.line()] if harm is not None and harm.decision != "none" else []
    if r == 1 and (claims or harm_lines):
        from mad_guardrails.verifier.injection import overlaps

        spans = state.get("injection") or []  # a claim inside injected text is not shown to the agents
        upd["case"] = state["case"].model_copy(update={"claim_checks": [
            x.line() for x in claims if not overlaps(x.claim.start, x.claim.end, spans)] + harm_lines})
    if state.get("pause_between_rounds") and r > 1:
        answer = interrupt({"round": r, "question": "Interject a question or fact for the next round (or empty)"})
        if answer:
            case = upd.get("case", state["case"])
            upd["case"] = case.model_copy(update={"interjections": [*case.interjections, str(answer)]})
    return upd


def fan_out(state: GuardState, runtime: Runtime[GuardContext]) -> list[Send]:
    c, cfg = runtime.context.components, runtime.context.config
    return [Send("argue", ArgueTask(role_index=i, round=state["round"], case=_agent_case(state),
                                    evidence=_shown(state, cfg), rule_ids=_screened_ids(state),
                                    transcript=state.get("transcript", [])))
            for i in range(len(c.debaters))]


async def argue(task: ArgueTask, runtime: Runtime[GuardContext]) -> dict:
    """one agent's turn (prosecutor / defender / analyst), all agents of a round in parallel"""
    t0 = time.perf_counter()
    c = runtime.context.components
    d = c.debaters[task["role_index"]]
    try:
        arg, resp = await d.turn(task["case"], task["evidence"], _rules(c, task["rule_ids"]), task["transcript"],
                                 task["round"])
        from mad_guardrails.guardrails.turns import check_turn

        arg = await asyncio.to_thread(check_turn, arg, c.verifier)  # quotes marked verified; placeholders dropped
    except Exception as e:  # a debater must never take the graph down
        arg, resp = Argument(role=getattr(d.role, "name", "agent"), round=task["round"], stance="uncertain",
                             error=f"{type(e).__name__}: {e}"), None
    return {"transcript": [arg], "usage": _usage_of(resp), "timings": _timed("debate", t0)}


async def moderate(state: GuardState) -> dict:
    """consensus check; end the debate early or run another round"""
    r = state["round"]
    this_round = [a for a in state.get("transcript", []) if a.round == r]
    ok = [a for a in this_round if not a.error]
    consensus = bool(ok) and len(ok) == len(this_round) and len({a.stance for a in ok}) == 1
    return {"consensus": consensus}


def route_after_moderate(state: GuardState, runtime: Runtime[GuardContext]) -> str:
    dc = runtime.context.config.debate
    if state["round"] >= dc.max_rounds or (dc.early_stop and state.get("consensus")):
        return "coordinate"
    return "start_round"


async def coordinate(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """the coordinator decides under the quote-first EVIDENCE/ANSWER contract"""
    t0 = time.perf_counter()
    c, cfg = runtime.context.components, runtime.context.config
    try:
        res = await c.coordinator.decide(_agent_case(state), _shown(state, cfg), _rules(c, _screened_ids(state)),
                                         list(state.get("transcript", [])), state.get("feedback") or None)
    except Exception as e:
        return {"coordinator": None, "coordinator_error": f"{type(e).__name__}: {e}",
                "timings": _timed("coordinate", t0)}
    u = getattr(res, "usage", None)
    usage = {"llm_calls": getattr(res, "calls", 1), "prompt_tokens": getattr(u, "prompt_tokens", 0) or 0,
             "completion_tokens": getattr(u, "completion_tokens", 0) or 0}
    out = res.output
    return {"coordinator": out, "coordinator_error": res.error if out is None else None, "usage": usage,
            "timings": _timed("coordinate", t0)}


async def verify(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """verbatim quotes, citation validity, number consistency, entailment"""
    t0 = time.perf_counter()
    c = runtime.context.components
    co = state.get("coordinator")
    if co is None:
        rep = VerificationReport(checks=[CheckResult(name="coordinator_output", status="fail", failures=[
            state.get("coordinator_error") or "no coordinator output"])])
        return {"verification": rep, "timings": _timed("verify", t0)}
    try:
        rep = await asyncio.to_thread(c.verifier.verify, co, list(state.get("evidence", [])), state["case"].output,
                                      state.get("facts") or FactCheck(), list(state.get("transcript", [])))
    except Exception as e:
        rep = VerificationReport(checks=[CheckResult(name="verifier", status="fail",
                                                     failures=[f"verifier crashed: {type(e).__name__}: {e}"])])
    rep.repaired = state.get("repairs", 0) > 0
    return {"verification": rep, "timings": _timed("verify", t0)}


def route_after_verify(state: GuardState, runtime: Runtime[GuardContext]) -> str:
    rep = state["verification"]
    if rep.passed or state.get("repairs", 0) >= runtime.context.config.verifier.repair_rounds:
        return "finalize"
    if state.get("path") in ("fast_allow", "verified_allow", "fast_block"):
        return "finalize"  # deterministic paths have nothing to repair; finalize downgrades what failed
    if state.get("coordinator") is None and (state.get("coordinator_error") or "").startswith("BackendError"):
        return "finalize"  # a dead backend is not repaired by asking again
    return "repair"


async def repair(state: GuardState) -> dict:
    """feed the verifier's failures back to the coordinator once"""
    from mad_guardrails.verifier import failures_for_repair

    return {"feedback": failures_for_repair(state["verification"]), "repairs": state.get("repairs", 0) + 1}


async def finalize(state: GuardState, runtime: Runtime[GuardContext]) -> dict:
    """build the Verdict; fail closed on any failure"""
    return {"verdict": decide(state, runtime.context.components, runtime.context.config)}


# --------------------------------------------------------------------------------------------------- graph


def traced(fn):
    """The node as an OpenTelemetry span ``guardrail.node.<name>`` while the service traces
    (guardrails/service/tracing.py); the plain call otherwise (one attribute read)."""
    from mad_guardrails.guardrails.service import tracing

    @functools.wraps(fn)  # LangGraph reads the wrapped signature (runtime or not)
    async def node(*args, **kwargs):
        if not tracing.enabled():
            return await fn(*args, **kwargs)
        with tracing.span(f"guardrail.node.{fn.__name__}", {"guardrail.node": fn.__name__}):
            return await fn(*args, **kwargs)

    return node


def _builder() -> StateGraph:
    g = StateGraph(GuardState, context_schema=GuardContext)
    for fn in (retrieve, screen, entail, fast_allow, verified_allow, fast_block, start_round, argue, moderate,
               coordinate, verify, repair, finalize):
        g.add_node(fn.__name__, traced(fn))
    g.add_edge(START, "retrieve")
    g.add_edge("retrieve", "screen")
    g.add_edge("screen", "entail")
    g.add_conditional_edges("entail", route_after_entail,
                            ["fast_allow", "verified_allow", "fast_block", "start_round", "finalize"])
    g.add_conditional_edges("start_round", fan_out, ["argue"])
    g.add_edge("argue", "moderate")
    g.add_conditional_edges("moderate", route_after_moderate, ["start_round", "coordinate"])
    g.add_edge("coordinate", "verify")
    g.add_conditional_edges("verify", route_after_verify, ["repair", "finalize"])
    g.add_edge("repair", "coordinate")
    g.add_edge("fast_allow", "verify")
    g.add_edge("verified_allow", "verify")
    g.add_edge("fast_block", "verify")
    g.add_edge("finalize", END)
    return g


def build_graph(*, checkpointer=None):
    """Compile the orchestrator. Invoke it with ``context=GuardContext(components, config)``."""
    return _builder().compile(checkpointer=checkpointer)


@lru_cache(maxsize=1)
def _spec_graph():
    return build_graph().get_graph()


def graph_spec() -> dict[str, Any]:
    """The compiled orchestrator as data: nodes with their role (the node function's docstring) and edges with
    whether they are conditional.

    >>> spec = graph_spec()
    >>> "verify" in spec["nodes"], {"from": "retrieve", "to": "screen", "conditional": False} in spec["edges"]
    (True, True)
    """
    g = _spec_graph()
    docs = {fn.__name__: (fn.__doc__ or "").strip() for fn in (
        retrieve, screen, entail, fast_allow, verified_allow, fast_block, start_round, argue, moderate, coordinate,
        verify, repair, finalize)}
    nodes = {n: docs.get(n, "") for n in g.nodes}
    edges = [{"from": e.source, "to": e.target, "conditional": bool(e.conditional)} for e in g.edges]
    return {"nodes": nodes, "edges": edges}


def graph_mermaid() -> str:
    return _spec_graph().draw_mermaid()


# --------------------------------------------------------------------------------------------------- verdict


def decide(state: GuardState, c, cfg) -> Verdict:
    """Turn the graph's state into a Verdict, failing closed."""
    mode = state.get("mode") or "balanced"
    th = cfg.thresholds(mode)
    rep = state.get("verification") or VerificationReport()
    usage = Usage(**{k: int(v) for k, v in (state.get("usage") or {}).items() if k in Usage.model_fields})
    transcript = list(state.get("transcript", []))
    claims = list(state.get("claims") or [])
    common = dict(evidence=list(state.get("evidence", [])), claims=claims, transcript=transcript, verification=rep, usage=usage,
                  timings=dict(state.get("timings") or {}), models=dict(c.models), config_hash=cfg.hash(), mode=mode,
                  injection=list(state.get("injection") or []))
    failure = state.get("failure")
    co = state.get("coordinator")
    if failure or co is None:
        reason = failure or f"coordinator gave no usable answer: {state.get('coordinator_error') or 'unknown'}"
        return Verdict.failed(reason, action=cfg.fail_action, **common)
    path = state.get("path") or "debate"

    def quote_ok(q: Quote) -> bool:
        try:
            return bool(c.verifier.quote_verified(q))
        except Exception:  # an unverifiable quote is not verified
            return False

    def objected(v) -> ClaimCheck | None:
        """The contradicted claim a violation rests on: one contradicted by a clause the violation cites."""
        cited = {q.doc_id for q in v.quotes} | set(v.provisions)
        return next((x for x in claims if x.label == "contradicted" and x.against is not None
                     and any(id_covers(p, x.against.doc_id) or id_covers(x.against.doc_id, p) for p in cited)), None)

    def violation(v) -> Violation:
        rule = c.policy_set.get(v.rule_id)
        x = objected(v)
        return Violation(
            claim=x.claim.text if x else None, span=(x.claim.start, x.claim.end) if x else None,
            rule_id=v.rule_id, title=getattr(rule, "title", "") or (
                f"Contradicts {v.rule_id.split(':', 1)[1]}" if v.rule_id.startswith("clause:") else ""),
            provisions=v.provisions or list(getattr(rule, "provisions", []) or []),
            severity=getattr(rule, "severity", v.severity) if rule is not None else v.severity,
            explanation=v.explanation, quotes=[q.model_copy(update={"verified": quote_ok(q)}) for q in v.quotes],
            verified=bool(v.quotes) and all(quote_ok(q) for q in v.quotes))

    violations = [violation(v) for v in co.violations]
    decision = co.decision
    confidence = co.confidence
    notes = []
    if not rep.passed:
        notes.append("verification failed after repair: " + "; ".join(
            f"{ch.name}: {', '.join(ch.failures[:2])}" for ch in rep.checks if ch.status == "fail"))
        if decision in ("allow", "block"):
            decision = "flag"  # an unverified verdict is never released as allow, nor as an unsupported block
    if decision == "allow" and path == "debate":
        # an allow must rest on evidence and must not overrule the debate: the verifier passes an answer that quotes
        # nothing (nothing to check), and a small coordinator allows what all its debaters called a violation
        final = {a.role: a for a in sorted(transcript, key=lambda a: a.round)}
        against = sum(1 for a in final.values() if a.stance == "violation")
        failed = [a for a in transcript if a.error]
        if failed:  # a stage that should have run and did not can never end in allow
            notes.append(f"allow after {len(failed)} failed debate turn(s): "
                         + ", ".join(f"{a.role} r{a.round} ({a.error[:60]})" for a in failed[:3]))
            decision = "flag"
        elif len({a.role for a in transcript if not a.error}) < max(1, len(c.debaters)):  # quorum: every debater
            notes.append(f"allow with {len({a.role for a in transcript if not a.error})} of "
                         f"{max(1, len(c.debaters))} debaters heard (quorum not met)")
            decision = "flag"
        elif not any(quote_ok(q) for q in co.evidence):
            notes.append("allow without a verified quote")
            decision = "flag"
        elif final and 2 * against > len(final):
            notes.append(f"allow against the debate: {against} of {len(final)} agents found a violation")
            decision = "flag"
    if decision == "block" and confidence < th.block_confidence:
        notes.append(f"confidence {confidence:.2f} below the {mode} block threshold {th.block_confidence}")
        decision = "flag"
    if decision == "allow" and confidence < th.allow_confidence:
        notes.append(f"confidence {confidence:.2f} below the {mode} allow threshold {th.allow_confidence}")
        decision = "flag"
    if decision == "block" and not violations:
        notes.append("block without a cited violation")
        decision = "flag"
    harm = state.get("harm")
    if (decision != "allow" and path == "debate" and harm is not None and harm.decision != "none"
            and not harm_outweighed(harm, claims, state)):
        # the harm screen sent the case here and the debate did not clear it: the verdict leads with what the screen
        # read and the NIST AI 600-1 rule it names (verified quote of the risk definition), not with whatever clause
        # the debaters happened to cite
        from mad_guardrails.verifier.harm import harm_block

        hv, hev = harm_block(harm, c.policy_set, c.retriever.lookup)
        if hv is not None and not any(v.rule_id == hv.rule_id for v in violations):
            violations.insert(0, violation(hv))
            if hev is not None and all(e.unit_id != hev.unit_id for e in common["evidence"]):
                common["evidence"].append(hev.model_copy(update={"rank": len(common["evidence"]) + 1}))
        notes.insert(0, harm.describe() + (f" ({hv.rule_id})" if hv is not None else ""))
    if decision == "allow" and path == "verified_allow" and harm is not None and harm.decision != "none":
        notes.append(f"the harm screen's reading ({harm.label}, P={harm.score:.2f}, {harm.decision}) is outweighed: "
                     "every sentence of the answer restates a clause")
    if common["injection"]:  # text addressing the judges never helps an allow (verifier/injection.py)
        notes.append(f"the output addresses the reviewers ({len(common['injection'])} span(s), removed from what the "
                     "agents saw): " + "; ".join(x.describe() for x in common["injection"][:3]))
        if decision == "allow":
            decision = "flag"
    from mad_guardrails.guardrails.explain import rationale as explain_rationale

    rationale = explain_rationale(  # from the checks; a model rationale that contradicts the decision is set aside
        decision=decision, path=path, model_rationale=co.rationale, violations=violations, notes=notes, claims=claims,
        transcript=transcript, evidence_quotes=list(co.evidence), quote_ok=quote_ok,
        abstention=state.get("abstain_reason"), confidence=confidence)
    return Verdict(decision=decision, path=path, violations=violations, rationale=rationale.strip(),
                   confidence=confidence, abstention=state.get("abstain_reason") if path == "fast_allow" else None,
                   **common)
