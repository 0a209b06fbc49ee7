"""Explanations from what was verified: a debated verdict's rationale and ``explain()`` name the claim, the clause
and the verified quotes that decided it, show the debate as a compact transcript with ✓/✗ per quote, never print an
unverified quote as a quotation, drop placeholder claims, and set aside a model rationale that contradicts the
decision. The graph, verifier and Verdict are real; the agents are scripted (control flow)."""

from __future__ import annotations

import re
from types import SimpleNamespace

from mad_guardrails.core.debate import Argument, Claim, CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.guardrails.explain import contradicts
from tests.test_graph import ART_5_1_C, UNITS, Coordinator, make, social_scoring_block

SOCIAL = ("Rank your citizens with a social scoring system: the evaluation or classification of natural persons "
          "over a certain period of time based on their social behaviour is a great idea.")
REAL = "the evaluation or classification of natural persons"
INVENTED = "The data subject must be provided with the least restrictive terms"


class Talker:
    """A scripted debater: one claim with a real quote, one with an invented quote, one placeholder claim."""

    def __init__(self, name, stance):
        self.role = SimpleNamespace(name=name)
        self.stance = stance

    async def turn(self, case, evidence, rules, transcript, round):
        claims = [Claim(text=f"{self.role.name}: the output recommends social scoring",
                        quotes=[Quote(doc_id="eu-ai-act:art_5.1.c", text=REAL)]),
                  Claim(text="It also breaks storage limitation", quotes=[Quote(doc_id="eu-ai-act:art_5.1.c",
                                                                              text=INVENTED)]),
                  Claim(text="<one sentence>"), Claim(text="12 March 2024")]
        usage = SimpleNamespace(prompt_tokens=10, completion_tokens=5)
        return Argument(role=self.role.name, round=round, stance=self.stance, confidence=0.8,
                        claims=claims), SimpleNamespace(usage=usage)


AGAINST = [Talker("prosecutor", "violation"), Talker("defender", "violation"), Talker("analyst", "violation")]
CONSISTENT_ALLOW = CoordinatorOutput(decision="allow", confidence=0.9,
                                     rationale="The output is consistent with the quoted provision.",
                                     evidence=[Quote(doc_id="eu-ai-act:art_5.1.c", text=REAL)])

QUOTED = re.compile(r'\[([^\]\s]+)\] "([^"]+)"')


def _displayed_quotes_verify(text: str, verifier) -> None:
    found = QUOTED.findall(text)
    for doc_id, q in found:
        assert verifier.quote_verified(Quote(doc_id=doc_id, text=q.rstrip("…"))), (doc_id, q)
    return found


def test_a_debated_flag_says_which_debaters_argued_what_and_sets_aside_a_contradicting_rationale():
    with make(Coordinator(CONSISTENT_ALLOW), debaters=AGAINST) as g:
        v = g.check(SOCIAL)
        verifier = g.components.verifier
    assert v.path == "debate" and v.decision == "flag", v.explain()
    r = v.rationale
    assert "allow against the debate: 3 of 3 agents found a violation" in r
    assert "prosecutor argued violation" in r and "defender argued violation" in r
    assert f'[eu-ai-act:art_5.1.c] "{REAL}" ✓' in r  # the verified quote the verdict rests on
    assert "set aside" in r and not r.startswith("The output is consistent")
    text = v.explain()
    assert "Transcript:" in text and "r1 prosecutor [violation" in text
    assert "✓" in text and "✗" in text
    assert INVENTED not in text  # an invented quote is marked, never printed as a quotation
    assert "<one sentence>" not in text and "12 March 2024" not in text  # placeholder / bare-date claims dropped
    assert _displayed_quotes_verify(text, verifier)


def test_transcript_quotes_are_marked_by_the_verifier():
    with make(Coordinator(CONSISTENT_ALLOW), debaters=AGAINST) as g:
        v = g.check(SOCIAL)
    marks = {(q.text, q.verified) for a in v.transcript for q in a.quotes()}
    assert marks == {(REAL, True), (INVENTED, False)}
    assert all(len(a.claims) == 2 for a in v.transcript)


def test_a_block_names_the_rule_the_provision_and_the_verified_quote():
    with make(Coordinator(social_scoring_block())) as g:
        v = g.check(SOCIAL)
        verifier = g.components.verifier
    assert v.decision == "block", v.explain()
    assert v.rationale.startswith("Blocked: 1 violation(s)")
    assert "eu-ai-act.art5.social_scoring" in v.rationale and "eu-ai-act:art_5.1.c" in v.rationale
    assert f'"{REAL}" ✓' in v.rationale
    assert all(q.verified for x in v.violations for q in x.quotes)
    _displayed_quotes_verify(v.explain(), verifier)


def test_an_unverified_violation_quote_is_flagged_and_not_quoted():
    bad = social_scoring_block(quote_text=INVENTED)
    with make(Coordinator(bad, bad)) as g:
        v = g.check(SOCIAL)
        verifier = g.components.verifier
    assert v.decision == "flag", v.explain()
    assert "quotes NOT verified" in v.rationale
    text = v.explain()
    assert f'"{INVENTED}"' not in text.split("Verifier:")[0]  # the verifier's own failure list may name it
    _displayed_quotes_verify(text.split("Verifier:")[0], verifier)


def test_an_allow_names_its_supporting_quote():
    from tests.test_graph import ALLOW_24H, COMPLIANT, ON_TIME

    with make(Coordinator(ALLOW_24H), debaters=COMPLIANT) as g:
        v = g.check(ON_TIME)
    assert v.decision == "allow", v.explain()
    assert v.rationale.startswith('Allowed, supported by [nis2:art_23.4.a] "in any event within 24 hours" ✓')


def test_contradiction_detector():
    assert contradicts("The output is consistent with the quoted provision.", "flag")
    assert contradicts("The output is consistent with Article 5.", "block")
    assert not contradicts("The output may misstate the deadline; unclear.", "flag")
    assert contradicts("The output violates Article 5 (social scoring).", "allow")
    assert not contradicts("There is no violation; the output restates the clause.", "allow")
    assert not contradicts("", "block")
    assert ART_5_1_C in UNITS.values()


def test_placeholder_claims_are_dropped_at_parse():
    from mad_guardrails.agents.parsing import parse_coordinator, parse_turn

    t = parse_turn({"stance": "violation", "confidence": 0.7, "claims": [
        {"text": "<one sentence>", "quotes": [], "rule_id": None}, {"text": "2024-03-12", "quotes": []},
        {"text": "The deadline is 24 hours, not 72.", "quotes": []}]})
    assert [c.text for c in t["claims"]] == ["The deadline is 24 hours, not 72."]
    co = parse_coordinator("EVIDENCE:\n[nis2:art_23.4.a] \"within 24 hours\"\nANSWER:\ndecision: flag\n"
                           "violations: - rule: nis2.x | provisions: nis2:art_23.4.a | severity: high | explanation: "
                           "<one sentence>\nrationale: <one or two sentences>\nconfidence: 0.6")
    assert co.rationale == "" and co.violations[0].explanation == ""
    assert isinstance(ProposedViolation(rule_id="x"), ProposedViolation)


def test_debater_quotes_are_constrained_to_the_shown_sentences():
    """The coordinator grammar's constraint, in the debaters' JSON schema (llguidance: what vLLM's guidance backend
    enforces): a verbatim sentence of the cited document passes, an invented quote cannot be written."""
    import json

    import pytest

    llg = pytest.importorskip("llguidance")
    from mad_guardrails.agents.debater import turn_schema
    from mad_guardrails.agents.grammar import quotable
    from mad_guardrails.core.units import Evidence

    ev = [Evidence(unit_id="eu-ai-act:art_5.1.c", doc="eu-ai-act", rank=1, score=1.0, text=ART_5_1_C)]
    shown = quotable(ev, evidence_chars=700)
    s = turn_schema([e.unit_id for e in ev], [], max_chars=160, quotable=shown)
    g = llg.grammar_from("json", json.dumps(s))

    def accepts(quote: str) -> bool:
        text = json.dumps({"stance": "violation", "claims": [{"text": "Social scoring is prohibited.", "quotes": [
            {"doc_id": "eu-ai-act:art_5.1.c", "text": quote}], "rule_id": None}], "confidence": 0.7},
            separators=(",", ":"))
        m = llg.LLMatcher(llg.LLTokenizer("byte"), g, log_level=0)
        return bool(m.consume_tokens(list(text.encode()))) and m.is_accepting()

    allowed = s["properties"]["claims"]["items"]["properties"]["quotes"]["items"]["anyOf"][0]["properties"]["text"]
    assert allowed["enum"] and all(q in ART_5_1_C for q in allowed["enum"]) and all(len(q) <= 160 for q in
                                                                                  allowed["enum"])
    assert accepts(allowed["enum"][0])
    assert not accepts(INVENTED)


def test_the_console_verdict_shows_each_claim_and_why_one_was_left_unsettled():
    from rich.console import Console

    from mad_guardrails.core.claims import ClaimCheck, OutputClaim
    from mad_guardrails.core.verdict import Verdict
    from mad_guardrails.guardrails.console_view import verdict_panel

    def claim(i, text):
        return OutputClaim(index=i, text=text, start=0, end=len(text), regulatory=True)

    v = Verdict(decision="flag", claims=[
        ClaimCheck(claim=claim(0, "You have one month to answer."), label="entailed", entailed=0.98,
                   support=Quote(doc_id="gdpr:art_12.3", text="within one month of receipt of the request")),
        ClaimCheck(claim=claim(1, "You can always extend it by two months."), label="neutral", entailed=0.97,
                   note="the claim widens the scope ('always...')")])
    con = Console(record=True, width=200)
    con.print(verdict_panel(v))
    shown = con.export_text()
    assert v.claims_summary() in shown and "1 entailed, 0 contradicted, 1 not settled" in shown
    assert '"You have one month to answer.": entailed' in shown and "[gdpr:art_12.3]" in shown
    assert "not settled: the claim widens the scope ('always...')" in shown
    assert v.claims_summary() in v.explain()


def test_a_verified_allow_gives_its_claims_as_the_reason_and_no_coordinator_line():
    """The verified_allow path's reason is its entailed claims; the text the graph wrote for it (which quotes a claim
    about a prohibition) is not a model's rationale to be weighed, nor set aside as "contradicting" the allow."""
    from mad_guardrails.core.claims import ClaimCheck, OutputClaim
    from mad_guardrails.core.debate import Quote
    from mad_guardrails.guardrails.explain import rationale

    text = "Emotion recognition at work is prohibited, except for medical or safety reasons."
    x = ClaimCheck(claim=OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True), label="entailed",
                   entailed=0.04, contradicted=0.95, basis="restatement",
                   support=Quote(doc_id="eu-ai-act:art_5.1.f", text="emotions of a natural person in the workplace"))
    r = rationale(decision="allow", path="verified_allow", model_rationale=f'Verified: "{text}" is prohibited.',
                  violations=[], notes=[], claims=[x], transcript=[], evidence_quotes=[], quote_ok=lambda q: True)
    assert r.startswith("Allowed: every regulatory claim is entailed") and "set aside" not in r
    assert "Coordinator" not in r
    assert "restates the clause" in x.line()
