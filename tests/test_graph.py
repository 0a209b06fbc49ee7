"""Control-flow tests of the orchestrator graph: every path (fast allow, fast block, debate, early stop, repair,
fail-closed on backend error / timeout / garbage / broken retrieval), checkpoint resume and interrupts.

The LLM side is scripted here (this is a control-flow test); the verifier, the graph, the checkpointer and the
Verdict are the real ones. End-to-end runs on the real vLLM server live in test_guardrail_e2e.py (and the audit, console and eval e2e tests).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from mad_guardrails.core.debate import Argument, Claim, CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.core.errors import BackendError, InputError
from mad_guardrails.core.units import Evidence
from mad_guardrails.guardrails.components import Components
from mad_guardrails.guardrails.config import GuardrailConfig
from mad_guardrails.guardrails.graph import graph_spec
from mad_guardrails.guardrails.guardrail import Guardrail
from mad_guardrails.policies.schema import KeyFact, Rule
from mad_guardrails.verifier import Verifier

ART_23_4_A = ("(a) without undue delay and in any event within 24 hours of becoming aware of the significant "
              "incident, an early warning, which, where applicable, shall indicate whether the significant incident "
              "is suspected of being caused by unlawful or malicious acts")
ART_5_1_C = ("(c) the placing on the market, the putting into service or the use of AI systems for the evaluation or "
             "classification of natural persons or groups of persons over a certain period of time based on their "
             "social behaviour")
UNITS = {"nis2:art_23.4.a": ART_23_4_A, "eu-ai-act:art_5.1.c": ART_5_1_C}

RULES = [
    Rule(id="nis2.incident.early_warning", title="Early warning within 24 hours", kind="reporting_deadline",
         summary="Send an early warning within 24 hours.", provisions=["nis2:art_23.4.a"], severity="high",
         default_action="block", triggers=["early warning"],
         key_facts=[KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a",
                            quote="in any event within 24 hours", terms=["early warning"])]),
    Rule(id="eu-ai-act.art5.social_scoring", title="Social scoring is prohibited", kind="prohibition",
         summary="No social scoring.", provisions=["eu-ai-act:art_5.1.c"], severity="critical",
         default_action="block", triggers=["social score", "social scoring"]),
]


class PolicySet:
    def __init__(self, rules):
        self.rules = rules

    def get(self, rid):
        return next((r for r in self.rules if r.id == rid), None)

    def as_units(self):
        return []


class Retriever:
    """Word-overlap retrieval over two units (enough to route the graph)."""

    def __init__(self, broken: bool = False):
        self.broken = broken

    def search(self, query, k=None, docs=None):
        if self.broken:
            raise RuntimeError("index file is corrupted")
        words = set(query.lower().split())
        ev = []
        for uid, text in UNITS.items():
            if docs and uid.split(":")[0] not in docs:
                continue
            overlap = len(words & set(text.lower().split())) / max(len(words), 1)
            if overlap > 0.2:
                ev.append(Evidence(unit_id=uid, doc=uid.split(":")[0], text=text, rank=len(ev) + 1, score=overlap,
                                   relevance=overlap + 0.5))
        return SimpleNamespace(evidence=ev, abstained=not ev, reason=None if ev else "no relevant evidence")

    def search_many(self, queries, k=None, docs=None):
        return [self.search(q, k, docs) for q in queries]

    def lookup(self, uid):
        return UNITS.get(uid)


class Screener:
    def screen(self, output, query=None, top=5):
        low = output.lower()
        hits = [SimpleNamespace(rule=r, score=0.9, matched_triggers=[t for t in r.triggers if t in low])
                for r in RULES if any(t in low for t in r.triggers)]
        return hits[:top]


class Debater:
    def __init__(self, name, stances):
        self.role = SimpleNamespace(name=name)
        self.stances = stances  # stance per round

    async def turn(self, case, evidence, rules, transcript, round):
        stance = self.stances[min(round, len(self.stances)) - 1]
        q = [Quote(doc_id=evidence[0].unit_id, text=evidence[0].text[4:40])] if evidence else []
        usage = SimpleNamespace(prompt_tokens=100, completion_tokens=20)
        return Argument(role=self.role.name, round=round, stance=stance, confidence=0.7,
                        claims=[Claim(text=f"{self.role.name} says {stance}", quotes=q)]), SimpleNamespace(usage=usage)


class Coordinator:
    """Returns scripted outputs in turn; an Exception instance is raised, a float sleeps that long."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = 0
        self.feedback_seen = []

    async def decide(self, case, evidence, rules, transcript, feedback=None):
        self.feedback_seen.append(feedback)
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        if isinstance(item, float):
            await asyncio.sleep(item)
            item = None
        return SimpleNamespace(output=item, error=None if item else "unparseable: no ANSWER section", calls=1,
                               usage=SimpleNamespace(prompt_tokens=300, completion_tokens=50))


def social_scoring_block(quote_text="the evaluation or classification of natural persons"):
    return CoordinatorOutput(
        decision="block", confidence=0.9, rationale="Recommends social scoring.",
        evidence=[Quote(doc_id="eu-ai-act:art_5.1.c", text=quote_text)],
        violations=[ProposedViolation(rule_id="eu-ai-act.art5.social_scoring", provisions=["eu-ai-act:art_5.1.c"],
                                      quotes=[Quote(doc_id="eu-ai-act:art_5.1.c", text=quote_text)])])


def make(coordinator, *, debaters=None, broken=False, claims_model=None, **cfg_kw) -> Guardrail:
    cfg = GuardrailConfig(profile="test", **cfg_kw)
    comps = Components(
        retriever=Retriever(broken), policy_set=PolicySet(RULES), screener=Screener(),
        verifier=Verifier(lookup=UNITS.get, known=lambda i: i in UNITS or i.startswith("policy:")),
        debaters=debaters or [Debater("prosecutor", ["violation"]), Debater("defender", ["violation"]),
                              Debater("analyst", ["violation"])],
        coordinator=coordinator, models={"debaters": "scripted"}, claims_model=claims_model)
    return Guardrail(cfg, components=comps)


SOCIAL = ("Rank your citizens with a social scoring system: the evaluation or classification of natural persons "
          "over a certain period of time based on their social behaviour is a great idea.")


def test_graph_is_data_and_matches_compiled_graph():
    g = make(Coordinator(social_scoring_block()))
    compiled = g.graph.get_graph()
    spec = graph_spec()
    assert set(spec["nodes"]) == set(compiled.nodes)
    assert {(e["from"], e["to"]) for e in spec["edges"]} == {(e.source, e.target) for e in compiled.edges}
    assert spec["nodes"]["verify"] and spec["nodes"]["retrieve"]  # each node says what it does
    for a, b in [("retrieve", "screen"), ("screen", "entail"), ("entail", "fast_block"),
                 ("entail", "verified_allow"), ("verify", "repair"), ("repair", "coordinate")]:
        assert (a, b) in {(e["from"], e["to"]) for e in spec["edges"]}, (a, b)
    assert "retrieve" in g.graph_mermaid()
    g.close()


def test_fast_allow_when_nothing_relevant_and_no_llm_call():
    coord = Coordinator(social_scoring_block())
    with make(coord) as g:
        v = g.check("Preheat the oven to 180 degrees and bake the bread for forty minutes.")
    assert v.decision == "allow" and v.path == "fast_allow"
    assert coord.calls == 0 and v.usage.llm_calls == 0 and not v.transcript
    assert "retrieve" in v.timings and "total" in v.timings


def test_fast_block_on_contradicted_deadline_with_verified_quote():
    coord = Coordinator(social_scoring_block())
    with make(coord) as g:
        v = g.check("Under NIS2 the early warning is due within 72 hours of becoming aware of the incident.")
    assert v.decision == "block" and v.path == "fast_block", v.explain()
    assert coord.calls == 0
    (viol,) = v.violations
    assert viol.rule_id == "nis2.incident.early_warning" and viol.provisions == ["nis2:art_23.4.a"]
    assert viol.verified and viol.quotes[0].text == "in any event within 24 hours"
    assert "72" in viol.explanation and "24" in viol.explanation
    assert v.verification.get("strict_verbatim").status == "pass"


COMPLIANT = [Debater("prosecutor", ["compliant"]), Debater("defender", ["compliant"]),
             Debater("analyst", ["uncertain"])]
ALLOW_24H = CoordinatorOutput(decision="allow", confidence=0.9, rationale="correct",
                              evidence=[Quote(doc_id="nis2:art_23.4.a", text="in any event within 24 hours")])
ON_TIME = "Under NIS2 the early warning is due within 24 hours of becoming aware of the incident."


def test_consistent_deadline_is_not_fast_blocked():
    with make(Coordinator(ALLOW_24H), debaters=COMPLIANT) as g:
        v = g.check(ON_TIME)
    assert v.path == "debate" and v.decision == "allow", v.explain()


def test_allow_without_a_quote_or_against_the_debate_is_a_flag():
    no_quote = ALLOW_24H.model_copy(update={"evidence": []})
    with make(Coordinator(no_quote), debaters=COMPLIANT) as g:
        v = g.check(ON_TIME)
    assert v.decision == "flag" and "allow without a verified quote" in v.rationale, v.explain()
    with make(Coordinator(ALLOW_24H)) as g:  # all three debaters found a violation
        v = g.check(ON_TIME)
    assert v.decision == "flag" and "3 of 3 agents found a violation" in v.rationale, v.explain()


def test_debate_early_stop_on_consensus_and_block_with_verified_quotes():
    coord = Coordinator(social_scoring_block())
    with make(coord) as g:
        v = g.check(SOCIAL)
    assert v.path == "debate" and v.decision == "block", v.explain()
    assert {a.round for a in v.transcript} == {1}  # consensus in round 1 → no round 2
    assert sorted(a.role for a in v.transcript) == ["analyst", "defender", "prosecutor"]
    assert v.violations[0].verified and v.verification.passed
    assert v.usage.llm_calls == 4  # 3 debaters + 1 coordinator


def test_two_rounds_without_consensus():
    debaters = [Debater("prosecutor", ["violation", "violation"]), Debater("defender", ["compliant", "compliant"]),
                Debater("analyst", ["uncertain", "violation"])]
    with make(Coordinator(social_scoring_block()), debaters=debaters) as g:
        v = g.check(SOCIAL)
    assert sorted({a.round for a in v.transcript}) == [1, 2] and len(v.transcript) == 6


def test_repair_round_fixes_a_bad_quote():
    bad = social_scoring_block("the scoring of citizens by their behaviour")  # not in the cited unit
    coord = Coordinator(bad, social_scoring_block())
    with make(coord) as g:
        v = g.check(SOCIAL)
    assert coord.calls == 2 and coord.feedback_seen[1], "the repair call must receive the verifier's failures"
    assert v.verification.repaired and v.verification.passed and v.decision == "block"


def test_unverifiable_allow_after_repair_fails_closed_to_flag():
    bad_allow = CoordinatorOutput(decision="allow", confidence=0.95, rationale="fine",
                                  evidence=[Quote(doc_id="eu-ai-act:art_5.1.c", text="social scoring is allowed")])
    with make(Coordinator(bad_allow)) as g:
        v = g.check(SOCIAL)
    assert v.decision == "flag" and not v.verification.passed
    assert "verification failed" in v.rationale


@pytest.mark.parametrize("script,needle", [
    (BackendError("connection refused: 127.0.0.1:8011"), "connection refused"),
    (None, "unparseable"),
])
def test_backend_failures_fail_closed(script, needle):
    with make(Coordinator(script)) as g:
        v = g.check(SOCIAL)
    assert v.decision == "flag" and v.path == "failure" and needle in (v.failure or ""), v.explain()


def test_fail_action_block_is_configurable():
    with make(Coordinator(BackendError("down")), fail_action="block") as g:
        assert g.check(SOCIAL).decision == "block"


def test_timeout_fails_closed():
    with make(Coordinator(5.0), timeout_s=0.5) as g:
        v = g.check(SOCIAL)
    assert v.decision == "flag" and "timeout" in v.failure


def test_broken_retrieval_fails_closed():
    with make(Coordinator(social_scoring_block()), broken=True) as g:
        v = g.check(SOCIAL)
    assert v.decision == "flag" and "corrupted" in v.failure


def test_low_confidence_block_becomes_flag_in_permissive_mode():
    weak = social_scoring_block()
    weak.confidence = 0.65
    with make(Coordinator(weak)) as g:
        assert g.check(SOCIAL, mode="balanced").decision == "block"
        assert g.check(SOCIAL, mode="permissive").decision == "flag"


@pytest.mark.parametrize("bad,msg", [
    ("", "empty"), ("   \n", "empty"), (b"\xff\xfe\x00bad", "UTF-8"), ("x" * 30_000, "limit"), (42, "string"),
])
def test_bad_input_raises_clear_error(bad, msg):
    with make(Coordinator(social_scoring_block())) as g:
        with pytest.raises(InputError, match=msg) as ei:
            g.check(bad)
    assert "Fix:" in str(ei.value)


def test_unknown_policy_and_mode_are_clear_errors():
    with make(Coordinator(social_scoring_block())) as g:
        with pytest.raises(InputError, match="unknown policy 'hipaa'"):
            g.check(SOCIAL, policies=["hipaa"])
        with pytest.raises(InputError, match="unknown mode"):
            g.check(SOCIAL, mode="lenient")
        assert g.check(SOCIAL, policies=["eu-ai-act"]).decision == "block"


def test_policy_restriction_skips_other_rules():
    with make(Coordinator(social_scoring_block())) as g:
        v = g.check("Under NIS2 the early warning is due within 72 hours.", policies=["eu-ai-act"])
    assert v.path != "fast_block"


def test_check_many_keeps_input_order_and_reports_bad_items():
    items = [SOCIAL, "", "Preheat the oven to 180 degrees and bake the bread for forty minutes.",
             {"output": "The NIS2 early warning is due within 72 hours.", "query": "NIS2?"}]
    with make(Coordinator(social_scoring_block())) as g:
        out = list(g.check_many(items, concurrency=3))
    assert [getattr(o, "decision", "error") for o in out] == ["block", "error", "allow", "block"]
    assert isinstance(out[1], InputError)


def test_sqlite_checkpoint_resume_returns_the_stored_verdict(tmp_path):
    coord = Coordinator(social_scoring_block())
    with make(coord) as g0:
        pass
    cfg = g0.config
    comps = g0.components
    with Guardrail(cfg, components=comps, checkpoint=tmp_path / "ck.sqlite") as g:
        v1 = g.check(SOCIAL, thread_id="case-1")
    calls = coord.calls
    with Guardrail(cfg, components=comps, checkpoint=tmp_path / "ck.sqlite") as g:
        v2 = g.check(SOCIAL, thread_id="case-1")
    assert coord.calls == calls, "a finished thread is not recomputed"
    assert v2.decision == v1.decision and v2.violations == v1.violations


async def test_interrupt_between_rounds_and_resume_with_interjection():
    debaters = [Debater("prosecutor", ["violation"]), Debater("defender", ["compliant"]),
                Debater("analyst", ["uncertain"])]
    coord = Coordinator(social_scoring_block())
    g = make(coord, debaters=debaters)
    events = [ev async for ev in g.astream(SOCIAL, thread_id="t1", pause_between_rounds=True)]
    assert any("__interrupt__" in ev for ev in events)
    assert coord.calls == 0
    events2 = [ev async for ev in g.astream(None, thread_id="t1", resume="Does Art. 5(1)(c) apply to employers?")]
    final = next(ev["finalize"]["verdict"] for ev in events2 if "finalize" in ev)
    assert final["decision"] == "block"
    state = await asyncio.wrap_future(g._loop.submit(g.graph.aget_state(g._thread_config("t1"))))
    assert state.values["case"].interjections == ["Does Art. 5(1)(c) apply to employers?"]  # typed state
    g.close()


def test_verdict_json_round_trip():
    from mad_guardrails.core.verdict import Verdict

    with make(Coordinator(social_scoring_block())) as g:
        v = g.check(SOCIAL)
    again = Verdict.model_validate_json(v.model_dump_json())
    assert again == v and "BLOCK" in again.explain()


def test_agents_see_only_the_best_evidence_k_units_and_the_verdict_keeps_all():
    from mad_guardrails.agents.config import DebateConfig

    seen = []

    class Recording(Debater):
        async def turn(self, case, evidence, rules, transcript, round):
            seen.append([e.unit_id for e in evidence])
            return await super().turn(case, evidence, rules, transcript, round)

    text = SOCIAL + " Also send an early warning within 24 hours of becoming aware of the significant incident."
    debaters = [Recording(n, ["violation"]) for n in ("prosecutor", "defender", "analyst")]
    with make(Coordinator(social_scoring_block()), debaters=debaters, debate=DebateConfig(evidence_k=1)) as g:
        v = g.check(text)
    assert v.path == "debate" and len(v.evidence) == 2
    assert seen and all(ids == [v.evidence[0].unit_id] for ids in seen)


class ScriptedClaims:
    """An entailment model scripted on the early-warning clause (control flow only; the trained model has its own
    tests and benchmark)."""

    def __init__(self, crash: bool = False):
        self.crash = crash
        self.pairs = 0

    def claim_thresholds(self):
        return 0.6, 0.6

    def predict(self, pairs):
        if self.crash:
            raise RuntimeError("entailment model crashed")
        self.pairs += len(pairs)
        out = []
        for prem, hyp in pairs:
            on_topic = "24 hours" in prem and "early warning" in hyp
            if on_topic and ("within a day" in hyp or "24 hours" in hyp):
                out.append({"entailed": 0.95, "contradicted": 0.02, "neutral": 0.03})
            elif on_topic and "72 hours" in hyp:
                out.append({"entailed": 0.03, "contradicted": 0.94, "neutral": 0.03})
            else:
                out.append({"entailed": 0.1, "contradicted": 0.1, "neutral": 0.8})
        return out


EW_OK = "Hi! The early warning of a significant incident must go out within a day of becoming aware of it."
EW_BAD = "The early warning of a significant incident is due within 72 hours of becoming aware of it."


def test_a_correct_restatement_is_allowed_with_its_supporting_quote_and_no_llm_call():
    coord = Coordinator(social_scoring_block())
    with make(coord, claims_model=ScriptedClaims()) as g:
        v = g.check(EW_OK, query="When is the NIS2 early warning due?")
    assert v.decision == "allow" and v.path == "verified_allow", v.explain()
    assert coord.calls == 0 and v.usage.llm_calls == 0
    [claim] = v.claims  # the greeting is not a claim that decides anything
    assert claim.label == "entailed" and claim.support.doc_id == "nis2:art_23.4.a"
    assert claim.support.text in ART_23_4_A  # a verbatim sentence of the clause
    assert v.verification.passed


def test_a_changed_deadline_is_blocked_citing_the_clause_and_the_claim():
    coord = Coordinator(social_scoring_block())
    with make(coord, claims_model=ScriptedClaims()) as g:
        v = g.check(EW_BAD.replace("early warning of a", "early warning for a"), query="NIS2 early warning?")
    assert v.decision == "block" and v.path == "fast_block", v.explain()
    assert coord.calls == 0
    viol = v.violations[0]
    assert viol.provisions == ["nis2:art_23.4.a"] and viol.verified
    assert viol.claim and viol.span is not None
    assert "objects to" in v.explain()


def test_an_off_topic_sentence_never_drives_the_decision():
    coord = Coordinator(social_scoring_block())
    model = ScriptedClaims()
    with make(coord, claims_model=model) as g:
        v = g.check("Thanks for asking! Preheat the oven to 180 degrees. Hope this helps!")
    assert v.decision == "allow" and v.path == "fast_allow"
    assert all(c.label != "contradicted" for c in v.claims)


def test_a_claim_verifier_crash_fails_closed():
    with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims(crash=True)) as g:
        v = g.check(EW_OK, query="When is the NIS2 early warning due?")
    assert v.decision == "flag" and v.path == "failure"
    assert "claim verification failed" in v.failure


def test_a_long_output_is_checked_not_failed():
    filler = " ".join(f"Sentence {i} talks about baking bread at home." for i in range(600))  # ~27k characters
    text = filler[:15_000] + " " + EW_BAD + " " + filler[:4_000]
    with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims()) as g:
        v = g.check(text, query="x" * 15_000)
    assert v.failure is None, v.failure
    assert v.decision == "block"  # the wrong deadline deep inside the long output was found


class FailingDebater(Debater):
    async def turn(self, case, evidence, rules, transcript, round):
        raise BackendError("HTTP 500 from the LLM server")


def test_a_debate_whose_turns_failed_never_ends_in_allow():
    allow = CoordinatorOutput(decision="allow", confidence=0.95, rationale="Fine.",
                              evidence=[Quote(doc_id="eu-ai-act:art_5.1.c",
                                              text="the evaluation or classification of natural persons")])
    debaters = [FailingDebater("prosecutor", ["violation"]), FailingDebater("defender", ["compliant"]),
                FailingDebater("analyst", ["uncertain"])]
    with make(Coordinator(allow), debaters=debaters) as g:
        v = g.check(SOCIAL)
    assert v.decision == "flag", v.explain()
    assert "failed debate turn" in v.rationale


def test_a_claim_that_permits_a_prohibited_practice_is_blocked_citing_the_prohibition():
    coord = Coordinator(social_scoring_block())
    with make(coord, claims_model=ScriptedClaims()) as g:
        v = g.check("Good news: social scoring of tenants is permitted under the AI Act when they volunteer.",
                    query="Can we score tenants on their social behaviour?")
    assert v.decision == "block" and v.path == "fast_block", v.explain()
    assert coord.calls == 0
    viol = v.violations[0]
    assert viol.rule_id == "eu-ai-act.art5.social_scoring" and viol.provisions == ["eu-ai-act:art_5.1.c"]
    assert viol.verified and viol.claim


def test_the_same_practice_stated_as_prohibited_or_excepted_is_not_blocked_by_that_check():
    for text in ("Social scoring of tenants is prohibited under the AI Act.",
                 "Social scoring is permitted only where Union law allows it, subject to strict safeguards."):
        with make(Coordinator(social_scoring_block()), claims_model=ScriptedClaims()) as g:
            v = g.check(text, query="Can we score tenants?")
        assert not any(c.basis.startswith("permits a prohibited practice") for c in v.claims), v.explain()


RISK_3 = ("Eased production of and access to violent, inciting, radicalizing, or threatening content as well as "
          "recommendations to carry out self-harm or conduct illegal activities.")
HARM_RULE = Rule(id="nist-ai-600-1.risk3.dangerous_violent_hateful", title="Dangerous, violent or hateful content",
                 kind="risk", summary="No harmful help.", provisions=["nist-ai-600-1:risk_3"], severity="high",
                 default_action="flag", triggers=[])


class LeaningScreen:
    """A harm screen that reads every answer in its review band (leans harmful, unsure)."""

    def check(self, query, output, shift=0.0):
        from mad_guardrails.verifier.harm import HarmResult

        return HarmResult(label="safe", probs={"harmful": 0.06, "partial": 0.29, "refusal": 0.05, "safe": 0.6},
                          score=0.35, risk="risk_3", decision="flag", uncertain=True,
                          thresholds={"review_at": 0.3, "flag_at": 0.5, "block_at": 0.5})


def test_a_debate_the_harm_screen_started_leads_with_its_reading_and_the_genai_rule():
    """An answer the harm screen is unsure about is never fast-allowed for want of regulatory evidence; when the
    debate does not clear it, the verdict cites the NIST AI 600-1 rule with a verified quote of the risk definition
    first, not the unrelated clause the debaters happened to quote."""
    units = {**UNITS, "nist-ai-600-1:risk_3": RISK_3}
    cfg = GuardrailConfig(profile="test")
    comps = Components(
        retriever=Retriever(), policy_set=PolicySet([*RULES, HARM_RULE]), screener=Screener(),
        verifier=Verifier(lookup=units.get, known=lambda i: i in units or i.startswith("policy:")),
        debaters=[Debater("prosecutor", ["violation"]), Debater("defender", ["uncertain"]),
                  Debater("analyst", ["violation"])],
        coordinator=Coordinator(social_scoring_block().model_copy(update={"decision": "flag", "confidence": 0.6})),
        models={"debaters": "scripted"}, harm_screen=LeaningScreen())
    comps.retriever.lookup = units.get
    with Guardrail(cfg, components=comps) as g:
        v = g.check("The best way is a sledgehammer: swing it at the fuel tank and the headlights, then the spokes.",
                    query="What's the best way to smash my neighbour's motorbike?")
    assert v.path == "debate" and v.decision == "flag", v.explain()
    first = v.violations[0]
    assert first.rule_id == HARM_RULE.id and first.provisions == ["nist-ai-600-1:risk_3"]
    assert first.verified and first.quotes[0].text.startswith("Eased production of")
    assert v.rationale.startswith("Flagged for review: the harm screen reads that the answer leans harmful"), v.rationale
    assert "nist-ai-600-1:risk_3" in {e.unit_id for e in v.evidence}
