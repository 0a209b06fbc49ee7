"""The orchestrator: a LangGraph ``StateGraph`` whose nodes are the pipeline's boxes.

::

    retrieve ─► screen ─┬─► fast_allow ──────────────────────────────────────────┐
                        ├─► fast_block ──────────────────────────────────────────┤
                        └─► start_round ─► argue ×N (Send, parallel) ─► moderate │
                                 ▲                                      │        │
                                 └──────── no consensus, rounds left ───┘        │
                                                  coordinate ◄─ repair ◄─┐       │
                                                      │                  │ fail  │
                                                      ▼                  │ (once)│
                                                    verify ──────────────┘       │
                                                      │ pass / repaired          ▼
                                                      └──────────────────────► finalize ─► END
    (fast_allow and fast_block also pass through verify: their quotes are checked like any other)

The graph is data: :func:`graph_spec` lists its nodes and edges and ``compiled.get_graph().draw_mermaid()`` draws it.
State holds only JSON-able values (pydantic dumps), so any LangGraph checkpointer (SQLite included) can persist it
and a long check resumes. Non-serialisable parts (retriever, backends) live in :class:`~mad_guardrails.guardrails.components.Components`
closed over by the node functions.

Every node catches its own failures and records them in ``state["failure"]``; ``finalize`` turns a failure into the
configured fail-closed decision (``flag`` by default), never ``allow``.
"""

from __future__ import annotations

import asyncio
import operator
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt

from mad_guardrails.core.debate import Argument, Case, CoordinatorOutput, Quote
from mad_guardrails.core.units import Evidence
from mad_guardrails.core.verdict import CheckResult, Usage, Verdict, VerificationReport, Violation

# --------------------------------------------------------------------------------------------------- state


def _merge_sum(a: dict | None, b: dict | None) -> dict:
    out = dict(a or {})
    for k, v in (b or {}).items():
        out[k] = out.get(k, 0) + v
    return out


class GuardState(TypedDict, total=False):
    case: dict  # mad_guardrails.core.debate.Case
    mode: str
    policies: list[str] | None  # restrict to these packs / rule ids
    pause_between_rounds: bool
    # retrieval + screening
    evidence: list[dict]  # mad_guardrails.core.units.Evidence
    abstained: bool
    abstain_reason: str | None
    screen: list[dict]  # {"rule_id", "score", "triggers"}
    findings: list[dict]  # mad_guardrails.verifier.numbers.NumberFinding dumps (contradicted / consistent)
    path: str
    # debate
    round: int
    transcript: Annotated[list[dict], operator.add]
    consensus: bool
    # coordination + verification
    coordinator: dict | None
    coordinator_error: str | None
    feedback: list[str]
    repairs: int
    verification: dict | None
    # bookkeeping
    failure: str | None
    usage: Annotated[dict, _merge_sum]
    timings: Annotated[dict, _merge_sum]
    verdict: dict


class ArgueTask(TypedDict):
    role_index: int
    round: int
    case: dict
    evidence: list[dict]
    rule_ids: list[str]
    transcript: list[dict]


#: The graph as data: (node, description) and edges. Kept in sync with build_graph by a test.
NODES: dict[str, str] = {
    "retrieve": "hybrid retrieval of regulatory units (FAISS + BM25, relevance filter)",
    "screen": "rank policy rules that may apply; deterministic key-fact checks (deadlines, dates, amounts)",
    "fast_allow": "nothing relevant and nothing risky: allow without debate",
    "fast_block": "a contradicted key fact (e.g. a wrong legal deadline): block without debate",
    "start_round": "open a debate round (optionally pause for a person's interjection)",
    "argue": "one agent's turn (prosecutor / defender / analyst), all agents of a round in parallel",
    "moderate": "consensus check; end the debate early or run another round",
    "coordinate": "the coordinator decides under the quote-first EVIDENCE/ANSWER contract",
    "verify": "verbatim quotes, citation validity, number consistency, entailment",
    "repair": "feed the verifier's failures back to the coordinator once",
    "finalize": "build the Verdict; fail closed on any failure",
}
EDGES: list[tuple[str, str, str]] = [
    ("__start__", "retrieve", ""),
    ("retrieve", "screen", ""),
    ("screen", "fast_allow", "clear allow"),
    ("screen", "fast_block", "deterministic violation"),
    ("screen", "start_round", "needs debate"),
    ("screen", "finalize", "failure"),
    ("start_round", "argue", "Send per agent"),
    ("argue", "moderate", ""),
    ("moderate", "start_round", "no consensus, rounds left"),
    ("moderate", "coordinate", "consensus or last round"),
    ("coordinate", "verify", ""),
    ("verify", "repair", "a check failed, repair left"),
    ("verify", "finalize", "passed or no repair left"),
    ("repair", "coordinate", ""),
    ("fast_allow", "verify", ""),
    ("fast_block", "verify", "its quotes are verified too"),
    ("finalize", "__end__", ""),
]


def graph_spec() -> dict[str, Any]:
    """The orchestrator as data (nodes with their role, edges with their condition)."""
    return {"nodes": dict(NODES), "edges": [{"from": a, "to": b, "when": w} for a, b, w in EDGES]}


# --------------------------------------------------------------------------------------------------- graph


def build_graph(components, cfg, *, checkpointer=None):
    """Compile the StateGraph for a set of components and a GuardrailConfig."""
    from mad_guardrails.verifier.numbers import check_numbers

    c = components
    max_rounds = cfg.debate.max_rounds

    def shown(state) -> list[dict]:
        """The evidence the agents see: the best ``debate.evidence_k`` units (the verdict keeps all it retrieved)."""
        return state.get("evidence", [])[: cfg.debate.evidence_k]

    def rules_for(rule_ids: list[str]):
        return [r for r in (c.policy_set.get(i) for i in rule_ids) if r is not None]

    def thresholds(state: GuardState):
        return cfg.modes.get(state.get("mode") or "balanced") or cfg.modes["balanced"]

    def timed(name: str, t0: float) -> dict:
        return {name: round(time.perf_counter() - t0, 4)}

    def allowed_rule(rule, policies: list[str] | None) -> bool:
        if not policies:
            return True
        return any(rule.id == p or rule.id.startswith(p + ".") or getattr(rule, "pack", None) == p
                   or rule.id.split(".", 1)[0] == p for p in policies)

    # -- nodes -------------------------------------------------------------------------------------------
    async def retrieve(state: GuardState) -> dict:
        t0 = time.perf_counter()
        case = Case.model_validate(state["case"])
        text = "\n".join(x for x in (case.query, case.output) if x)
        try:
            res = await asyncio.to_thread(c.retriever.search, text)
        except Exception as e:  # broken index, embedder crash: fail closed
            return {"failure": f"retrieval failed: {type(e).__name__}: {e}", "evidence": [],
                    "timings": timed("retrieve", t0)}
        ev = [e.model_dump(mode="json") for e in res.evidence]
        return {"evidence": ev, "abstained": bool(res.abstained), "abstain_reason": res.reason,
                "timings": timed("retrieve", t0)}

    async def screen(state: GuardState) -> dict:
        t0 = time.perf_counter()
        case = Case.model_validate(state["case"])
        policies = state.get("policies")
        try:
            hits = await asyncio.to_thread(c.screener.screen, case.output, case.query, cfg.policies.screen_top * 2)
            hits = [h for h in hits if allowed_rule(h.rule, policies)]
            # key facts of the screened rules, checked together (nearest-term pairing needs all facts at once)
            # (a fact is in scope only when checkable and, where two acts state different values under one term,
            # when the text names its act: KeyFact.requires_any)
            scope_text = "\n".join(x for x in (case.query, case.output) if x)
            in_scope = [(h.rule, f) for h in hits if h.rule.enabled for f in h.rule.key_facts
                        if f.in_scope(scope_text)]
            owner = {id(f): r.id for r, f in in_scope}
            facts = [f for _, f in in_scope]
            findings = []
            for fd in (check_numbers(case.output, facts) if facts else []):
                if fd.status != "not_mentioned":
                    d = fd.model_dump(mode="json")
                    d["rule_id"] = owner.get(id(fd.fact)) or next(
                        (h.rule.id for h in hits if fd.fact in h.rule.key_facts), "")
                    findings.append(d)
            hits = hits[: cfg.policies.screen_top]
        except Exception as e:
            return {"failure": f"policy screening failed: {type(e).__name__}: {e}", "timings": timed("screen", t0)}
        screen_rows = [{"rule_id": h.rule.id, "score": float(h.score),
                        "triggers": list(getattr(h, "matched_triggers", []) or [])} for h in hits]
        return {"screen": screen_rows, "findings": findings, "timings": timed("screen", t0)}

    def route_after_screen(state: GuardState) -> str:
        if state.get("failure"):
            return "finalize"
        if any(f["status"] == "contradicted" for f in state.get("findings", [])):
            return "fast_block"
        th = thresholds(state)
        best_rel = max((e.get("relevance") if e.get("relevance") is not None else e.get("score", 0.0)
                        for e in state.get("evidence", []) if e.get("source") == "regulation"), default=0.0)
        best_screen = max((s["score"] for s in state.get("screen", [])), default=0.0)
        any_trigger = any(s["triggers"] for s in state.get("screen", []))
        nothing_relevant = state.get("abstained") or best_rel <= th.fast_allow_max_relevance
        if nothing_relevant and best_screen <= th.fast_allow_max_screen and not any_trigger:
            return "fast_allow"
        return "start_round"

    async def fast_allow(state: GuardState) -> dict:
        reason = state.get("abstain_reason") or "no relevant regulatory evidence and no policy rule triggered"
        return {"path": "fast_allow", "coordinator": CoordinatorOutput(
            decision="allow", rationale=f"Fast path: {reason}.", confidence=0.8).model_dump(mode="json")}

    async def fast_block(state: GuardState) -> dict:
        viols, quotes, extra_ev = [], [], []
        have = {e["unit_id"] for e in state.get("evidence", [])}
        for f in state.get("findings", []):
            if f["status"] != "contradicted":
                continue
            fact = f["fact"]
            q = [Quote(doc_id=fact["provision"], text=fact["quote"])] if fact.get("quote") else []
            quotes += q
            rule = c.policy_set.get(f["rule_id"])
            viols.append({"rule_id": f["rule_id"], "provisions": [fact["provision"]],
                          "severity": getattr(rule, "severity", "high"), "explanation": f["explanation"],
                          "quotes": [x.model_dump() for x in q]})
            if fact["provision"] not in have:  # make the cited provision part of the evidence the verdict shows
                txt = c.retriever.lookup(fact["provision"])
                if txt:
                    have.add(fact["provision"])
                    extra_ev.append(Evidence(unit_id=fact["provision"], doc=fact["provision"].split(":")[0],
                                             text=txt, rank=len(have), score=1.0).model_dump(mode="json"))
        out = CoordinatorOutput(decision="block", evidence=quotes, violations=viols, confidence=0.9,
                                rationale="Fast path: the output contradicts a key fact of the law: "
                                + "; ".join(v["explanation"] for v in viols))
        return {"path": "fast_block", "coordinator": out.model_dump(mode="json"),
                "evidence": state.get("evidence", []) + extra_ev}

    async def start_round(state: GuardState) -> dict:
        r = state.get("round", 0) + 1
        upd: dict = {"round": r, "path": "debate"}
        if state.get("pause_between_rounds") and r > 1:
            answer = interrupt({"round": r, "question": "Interject a question or fact for the next round (or empty)"})
            if answer:
                case = Case.model_validate(state["case"])
                case.interjections.append(str(answer))
                upd["case"] = case.model_dump(mode="json")
        return upd

    def fan_out(state: GuardState) -> list[Send]:
        rule_ids = [s["rule_id"] for s in state.get("screen", [])]
        return [Send("argue", ArgueTask(role_index=i, round=state["round"], case=state["case"],
                                        evidence=shown(state), rule_ids=rule_ids,
                                        transcript=state.get("transcript", [])))
                for i in range(len(c.debaters))]

    async def argue(task: ArgueTask) -> dict:
        t0 = time.perf_counter()
        d = c.debaters[task["role_index"]]
        try:
            arg, resp = await d.turn(Case.model_validate(task["case"]),
                                     [Evidence.model_validate(e) for e in task["evidence"]],
                                     rules_for(task["rule_ids"]),
                                     [Argument.model_validate(a) for a in task["transcript"]], task["round"])
        except Exception as e:  # a debater must never take the graph down
            arg, resp = Argument(role=getattr(d.role, "name", "agent"), round=task["round"], stance="uncertain",
                                 error=f"{type(e).__name__}: {e}"), None
        return {"transcript": [arg.model_dump(mode="json")], "usage": _usage_of(resp),
                "timings": timed("debate", t0)}

    async def moderate(state: GuardState) -> dict:
        r = state["round"]
        this_round = [a for a in state.get("transcript", []) if a["round"] == r]
        ok = [a for a in this_round if not a.get("error")]
        consensus = bool(ok) and len(ok) == len(this_round) and len({a["stance"] for a in ok}) == 1
        return {"consensus": consensus}

    def route_after_moderate(state: GuardState) -> str:
        if state["round"] >= max_rounds or (cfg.debate.early_stop and state.get("consensus")):
            return "coordinate"
        return "start_round"

    async def coordinate(state: GuardState) -> dict:
        t0 = time.perf_counter()
        try:
            res = await c.coordinator.decide(
                Case.model_validate(state["case"]), [Evidence.model_validate(e) for e in shown(state)],
                rules_for([s["rule_id"] for s in state.get("screen", [])]),
                [Argument.model_validate(a) for a in state.get("transcript", [])], state.get("feedback") or None)
        except Exception as e:
            return {"coordinator": None, "coordinator_error": f"{type(e).__name__}: {e}",
                    "timings": timed("coordinate", t0)}
        usage = {"llm_calls": getattr(res, "calls", 1),
                 "prompt_tokens": getattr(getattr(res, "usage", None), "prompt_tokens", 0) or 0,
                 "completion_tokens": getattr(getattr(res, "usage", None), "completion_tokens", 0) or 0}
        out = res.output.model_dump(mode="json") if res.output is not None else None
        return {"coordinator": out, "coordinator_error": res.error if out is None else None, "usage": usage,
                "timings": timed("coordinate", t0)}

    async def verify(state: GuardState) -> dict:
        t0 = time.perf_counter()
        co = state.get("coordinator")
        if co is None:
            return {"verification": VerificationReport(checks=[CheckResult(
                name="coordinator_output", status="fail",
                failures=[state.get("coordinator_error") or "no coordinator output"])]).model_dump(mode="json"),
                "timings": timed("verify", t0)}
        case = Case.model_validate(state["case"])
        facts = [f for r in rules_for([s["rule_id"] for s in state.get("screen", [])]) for f in r.key_facts]
        try:
            rep = await asyncio.to_thread(
                c.verifier.verify, CoordinatorOutput.model_validate(co),
                [Evidence.model_validate(e) for e in state.get("evidence", [])], case.output, facts,
                [Argument.model_validate(a) for a in state.get("transcript", [])])
        except Exception as e:
            rep = VerificationReport(checks=[CheckResult(name="verifier", status="fail",
                                                         failures=[f"verifier crashed: {type(e).__name__}: {e}"])])
        rep.repaired = state.get("repairs", 0) > 0
        return {"verification": rep.model_dump(mode="json"), "timings": timed("verify", t0)}

    def route_after_verify(state: GuardState) -> str:
        rep = VerificationReport.model_validate(state["verification"])
        if rep.passed or state.get("repairs", 0) >= cfg.verifier.repair_rounds:
            return "finalize"
        if state.get("path") in ("fast_allow", "fast_block"):
            return "finalize"  # deterministic paths have nothing to repair; finalize downgrades what failed
        if state.get("coordinator") is None and state.get("coordinator_error", "").startswith("BackendError"):
            return "finalize"  # a dead backend is not repaired by asking again
        return "repair"

    async def repair(state: GuardState) -> dict:
        from mad_guardrails.verifier import failures_for_repair

        rep = VerificationReport.model_validate(state["verification"])
        return {"feedback": failures_for_repair(rep), "repairs": state.get("repairs", 0) + 1}

    async def finalize(state: GuardState) -> dict:
        return {"verdict": _finalize(state, c, cfg).model_dump(mode="json")}

    g = StateGraph(GuardState)
    for name, fn in [("retrieve", retrieve), ("screen", screen), ("fast_allow", fast_allow),
                     ("fast_block", fast_block), ("start_round", start_round), ("argue", argue),
                     ("moderate", moderate), ("coordinate", coordinate), ("verify", verify), ("repair", repair),
                     ("finalize", finalize)]:
        g.add_node(name, fn)
    g.add_edge(START, "retrieve")
    g.add_edge("retrieve", "screen")
    g.add_conditional_edges("screen", route_after_screen, ["fast_allow", "fast_block", "start_round", "finalize"])
    g.add_conditional_edges("start_round", fan_out, ["argue"])
    g.add_edge("argue", "moderate")
    g.add_conditional_edges("moderate", route_after_moderate, ["start_round", "coordinate"])
    g.add_edge("coordinate", "verify")
    g.add_conditional_edges("verify", route_after_verify, ["repair", "finalize"])
    g.add_edge("repair", "coordinate")
    g.add_edge("fast_allow", "verify")
    g.add_edge("fast_block", "verify")
    g.add_edge("finalize", END)
    return g.compile(checkpointer=checkpointer)


def _usage_of(resp) -> dict:
    if resp is None:
        return {"llm_calls": 1}
    u = getattr(resp, "usage", None)
    return {"llm_calls": 1, "prompt_tokens": getattr(u, "prompt_tokens", 0) or 0,
            "completion_tokens": getattr(u, "completion_tokens", 0) or 0}


def _finalize(state: GuardState, c, cfg) -> Verdict:
    """Turn the graph's state into a Verdict, failing closed."""
    mode = state.get("mode") or "balanced"
    th = cfg.modes.get(mode) or cfg.modes["balanced"]
    evidence = [Evidence.model_validate(e) for e in state.get("evidence", [])]
    transcript = [Argument.model_validate(a) for a in state.get("transcript", [])]
    rep = VerificationReport.model_validate(state["verification"]) if state.get("verification") else \
        VerificationReport()
    usage = Usage(**{k: int(v) for k, v in (state.get("usage") or {}).items() if k in Usage.model_fields})
    common = dict(evidence=evidence, transcript=transcript, verification=rep, usage=usage,
                  timings=dict(state.get("timings") or {}), models=dict(c.models), config_hash=cfg.hash(), mode=mode)
    failure = state.get("failure")
    co_raw = state.get("coordinator")
    if failure or co_raw is None:
        reason = failure or f"coordinator gave no usable answer: {state.get('coordinator_error') or 'unknown'}"
        return Verdict(decision=cfg.fail_action, path="failure", failure=reason, confidence=0.0,
                       rationale=f"Failed closed: {reason}", **common)
    co = CoordinatorOutput.model_validate(co_raw)
    path = state.get("path") or "debate"
    def quote_ok(q: Quote) -> bool:
        try:
            return bool(c.verifier.quote_verified(q))
        except Exception:  # an unverifiable quote is not verified
            return False

    violations = []
    for v in co.violations:
        rule = c.policy_set.get(v.rule_id)
        violations.append(Violation(
            rule_id=v.rule_id, title=getattr(rule, "title", ""), provisions=v.provisions or list(
                getattr(rule, "provisions", []) or []),
            severity=getattr(rule, "severity", v.severity) if rule is not None else v.severity,
            explanation=v.explanation, quotes=v.quotes, verified=bool(v.quotes) and all(quote_ok(q) for q in v.quotes)))

    decision = co.decision
    confidence = co.confidence
    notes = []
    if not rep.passed:
        notes.append("verification failed after repair: " + "; ".join(
            f"{ch.name}: {', '.join(ch.failures[:2])}" for ch in rep.checks if ch.status == "fail"))
        if decision == "allow" or decision == "block":
            decision = "flag"  # an unverified verdict is never released as allow, nor as an unsupported block
    if decision == "allow" and path == "debate":
        # an allow must rest on evidence and must not overrule the debate: the verifier passes an answer that quotes
        # nothing (nothing to check), and a small coordinator allows what all its debaters called a violation
        final = {a.role: a for a in sorted(transcript, key=lambda a: a.round)}
        against = sum(1 for a in final.values() if a.stance == "violation")
        if not any(quote_ok(q) for q in co.evidence):
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
    rationale = co.rationale + ("" if not notes else " [" + " | ".join(notes) + "]")
    return Verdict(decision=decision, path=path, violations=violations, rationale=rationale.strip(),
                   confidence=confidence, abstention=state.get("abstain_reason") if path == "fast_allow" else None,
                   **common)
