"""The Verifier over whole coordinator outputs: every check, decision-aware numbers, repair feedback."""

from __future__ import annotations

import pytest

from mad_guardrails.core.debate import CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.core.units import Evidence
from mad_guardrails.core.verdict import CheckResult, VerificationReport
from mad_guardrails.policies.schema import KeyFact
from mad_guardrails.verifier import Verifier, failures_for_repair, verify

ART_23_4_A = ("(a) without undue delay and in any event within 24 hours of becoming aware of the significant incident, "
              "an early warning;")
ART_23_4_B = ("(b) without undue delay and in any event within 72 hours of becoming aware of the significant incident, "
              "an incident notification;")
UNITS = {
    "nis2:art_23": "4. Member States shall ensure that the entities concerned submit:\n   - " + ART_23_4_A + "\n   - "
                   + ART_23_4_B,
    "nis2:art_23.4.a": ART_23_4_A,
    "nis2:art_23.4.b": ART_23_4_B,
    "gdpr:art_33.1": "not later than 72 hours after having become aware of it, notify the personal data breach",
    "policy:nis2.incident.early_warning": "Early warning within 24 hours. Essential and important entities send an "
                                         "early warning to the CSIRT within 24 hours.",
}
EARLY = KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a",
                quote="in any event within 24 hours", terms=["early warning"])
OUTPUT_BAD = "Under NIS2 you must send the early warning within 72 hours of becoming aware of the incident."
OUTPUT_OK = "Under NIS2 you must send the early warning within 24 hours of becoming aware of the incident."
GOOD_QUOTE = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 24 hours")


def ev(*ids: str) -> list[Evidence]:
    return [Evidence(unit_id=i, doc=i.split(":")[0], text=UNITS[i], rank=n + 1, score=1.0 - n / 10)
            for n, i in enumerate(ids)]


@pytest.fixture()
def verifier() -> Verifier:
    return Verifier(lookup=UNITS.get, known=UNITS.__contains__)


def block(*quotes: Quote, rule_id: str = "nis2.incident.early_warning", provisions=("nis2:art_23.4.a",),
          evidence: list[Quote] | None = None) -> CoordinatorOutput:
    return CoordinatorOutput(
        decision="block", evidence=list(evidence if evidence is not None else quotes), confidence=0.9,
        violations=[ProposedViolation(rule_id=rule_id, provisions=list(provisions), severity="high",
                                      explanation="The output gives 72 hours; the law requires 24 hours.",
                                      quotes=list(quotes))])


def statuses(rep: VerificationReport) -> dict[str, str]:
    return {c.name: c.status for c in rep.checks}


def test_a_grounded_block_passes_every_check(verifier):
    rep = verifier.verify(block(GOOD_QUOTE), ev("nis2:art_23.4.a", "nis2:art_23.4.b"), OUTPUT_BAD, [EARLY])
    assert statuses(rep) == {"strict_verbatim": "pass", "content_verbatim": "pass", "citation_validity": "pass",
                             "number_consistency": "pass", "entailment": "skipped"}
    assert rep.passed
    nums = rep.get("number_consistency")
    assert "1 contradicted" in nums.detail and "every contradiction is cited by a violation" in nums.detail
    assert rep.get("entailment").detail == "no NLI model configured (offline profile ships none)"


def test_quotes_of_evidence_and_violations_are_deduplicated(verifier):
    rep = verifier.verify(block(GOOD_QUOTE, evidence=[GOOD_QUOTE, GOOD_QUOTE]), ev("nis2:art_23.4.a"), OUTPUT_BAD,
                          [])
    assert rep.get("strict_verbatim").detail.startswith("1/1")


def test_near_miss_quote_fails_both_verbatim_checks(verifier):
    near = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 48 hours")
    rep = verifier.verify(block(near), ev("nis2:art_23.4.a"), OUTPUT_BAD, [])
    assert statuses(rep)["strict_verbatim"] == statuses(rep)["content_verbatim"] == "fail"
    assert rep.get("content_verbatim").failures[0].startswith("[nis2:art_23.4.a] near-miss (0.9")
    assert not rep.passed


def test_typographic_near_miss_fails_strict_only_and_can_be_canonicalised(verifier):
    cosmetic = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 24 hours of "
                                                     "becoming aware of the significant incident — an early warning")
    rep = verifier.verify(block(cosmetic), ev("nis2:art_23.4.a"), OUTPUT_BAD, [])
    assert statuses(rep)["strict_verbatim"] == "fail" and statuses(rep)["content_verbatim"] == "fail"
    # a dash replacing a comma is punctuation, not cosmetics; curly quotes and case are:
    curly = Quote(doc_id="nis2:art_23.4.a", text="WITHOUT UNDUE DELAY and in any event within 24 hours")
    rep = verifier.verify(block(curly), ev("nis2:art_23.4.a"), OUTPUT_BAD, [])
    assert statuses(rep)["strict_verbatim"] == "fail" and statuses(rep)["content_verbatim"] == "pass"
    assert verifier.canonical_quote(curly).text == GOOD_QUOTE.text


def test_citation_slip_right_quote_wrong_id(verifier):
    slipped = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 72 hours")
    rep = verifier.verify(block(slipped), ev("nis2:art_23.4.a", "nis2:art_23.4.b"), OUTPUT_BAD, [])
    cit = rep.get("citation_validity")
    assert cit.status == "fail"
    assert "quote belongs to [nis2:art_23.4.b], not [nis2:art_23.4.a]" in cit.failures[0]


def test_unknown_and_non_retrieved_citations_fail(verifier):
    unknown = Quote(doc_id="nis2:art_23.7", text="without undue delay and in any event within 24 hours")
    elsewhere = Quote(doc_id="gdpr:art_33.1", text="not later than 72 hours after having become aware of it")
    rep = verifier.verify(block(unknown, elsewhere), ev("nis2:art_23.4.a"), OUTPUT_BAD, [])
    fails = rep.get("citation_validity").failures
    assert any(f.startswith("[nis2:art_23.7] unknown id") for f in fails)
    assert any(f.startswith("[gdpr:art_33.1] not among the retrieved evidence") for f in fails)


def test_policy_citation_is_valid_when_the_rule_exists(verifier):
    pq = Quote(doc_id="policy:nis2.incident.early_warning", text="send an early warning to the CSIRT within 24 hours")
    rep = verifier.verify(block(GOOD_QUOTE, pq), ev("nis2:art_23.4.a"), OUTPUT_BAD, [])
    assert statuses(rep)["citation_validity"] == "pass" and statuses(rep)["strict_verbatim"] == "pass"


def test_unknown_rule_unknown_provision_and_unquoted_violation_fail(verifier):
    co = block(GOOD_QUOTE, rule_id="made.up.rule", provisions=("nis2:art_99",))
    co.violations.append(ProposedViolation(rule_id="nis2.incident.early_warning", explanation="no quote"))
    fails = verifier.verify(co, ev("nis2:art_23.4.a"), OUTPUT_BAD, []).get("citation_validity").failures
    assert "[policy:made.up.rule] violation names an unknown policy rule" in fails
    assert "[nis2:art_99] violation made.up.rule lists an unknown provision" in fails
    assert any("cites no quote" in f for f in fails)


def test_allowing_an_output_that_contradicts_a_key_fact_fails(verifier):
    co = CoordinatorOutput(decision="allow", evidence=[GOOD_QUOTE], rationale="looks fine", confidence=0.8)
    rep = verifier.verify(co, ev("nis2:art_23.4.a"), OUTPUT_BAD, [EARLY])
    nums = rep.get("number_consistency")
    assert nums.status == "fail" and not rep.passed
    assert nums.failures == ["[nis2:art_23.4.a] output says 72 hours for 'early warning'; nis2:art_23.4.a says "
                             "24 hours; the verdict allows the output"]
    ok = verifier.verify(co, ev("nis2:art_23.4.a"), OUTPUT_OK, [EARLY])
    assert ok.get("number_consistency").status == "pass" and ok.get("number_consistency").score == 1.0


def test_flag_for_another_reason_passes_but_says_the_contradiction_is_not_cited(verifier):
    co = block(GOOD_QUOTE, provisions=("nis2:art_23.4.b",)).model_copy(update={"decision": "flag"})
    co.violations[0].quotes = [Quote(doc_id="nis2:art_23.4.b", text="in any event within 72 hours of becoming aware")]
    nums = verifier.verify(co, ev("nis2:art_23"), OUTPUT_BAD, [EARLY]).get("number_consistency")
    assert nums.status == "pass" and "not cited by a violation: nis2:art_23.4.a" in nums.detail


def test_an_allow_with_no_quotes_skips_the_quote_checks(verifier):
    co = CoordinatorOutput(decision="allow", rationale="nothing relevant", confidence=0.9)
    rep = verifier.verify(co, [], "The weather is fine.", [EARLY])
    assert statuses(rep) == {"strict_verbatim": "skipped", "content_verbatim": "skipped",
                             "citation_validity": "skipped", "number_consistency": "pass", "entailment": "skipped"}
    assert rep.passed


def test_one_shot_verify_function():
    rep = verify(block(GOOD_QUOTE), ev("nis2:art_23.4.a"), OUTPUT_BAD, [EARLY], lookup=UNITS.get,
                 known=UNITS.__contains__)
    assert rep.passed


def test_unloadable_nli_model_does_not_break_verification(tmp_path):
    v = Verifier(lookup=UNITS.get, known=UNITS.__contains__, nli_model=str(tmp_path / "missing-model"))
    rep = v.verify(block(GOOD_QUOTE), ev("nis2:art_23.4.a"), OUTPUT_BAD, [EARLY])
    assert rep.get("entailment").status == "skipped" and rep.passed


# ------------------------------------------------------------------------------------------ repair feedback

def test_failures_for_repair_lists_failures_then_advice(verifier):
    near = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 48 hours")
    slipped = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 72 hours")
    rep = verifier.verify(block(near, slipped), ev("nis2:art_23.4.a", "nis2:art_23.4.b"), OUTPUT_BAD, [])
    lines = failures_for_repair(rep)
    assert lines[0].startswith("content_verbatim: [nis2:art_23.4.a] near-miss")
    assert any("quote belongs to [nis2:art_23.4.b]" in ln for ln in lines)
    # the strict failures duplicate the content ones here: reported once, advice once per distinct check
    assert not any(ln.startswith("strict_verbatim: [nis2:art_23.4.a] near-miss") for ln in lines)
    assert [ln for ln in lines if ln.startswith("Fix:")] == [
        "Fix: Quote only text that appears in the cited unit, or drop the claim.",
        "Fix: Cite each quote with the [doc_id] of the evidence block it comes from; cite only ids shown in the "
        "evidence or policy rules; give every violation at least one quote."]


def test_failures_for_repair_is_capped_and_empty_when_passing():
    many = VerificationReport(checks=[CheckResult(name="citation_validity", status="fail",
                                                  failures=[f"[x:y{i}] unknown id" for i in range(30)])])
    lines = failures_for_repair(many, max_lines=5)
    assert len([ln for ln in lines if ln.startswith("citation_validity:")]) == 5
    assert "... and 25 more" in lines
    assert failures_for_repair(VerificationReport(checks=[CheckResult(name="x", status="pass")])) == []


# ------------------------------------------------------------------------------------------ real corpus

def test_real_nis2_case_end_to_end(corpus_unit_texts):
    units = dict(corpus_unit_texts)
    rules = {"policy:nis2.incident.early_warning"}
    v = Verifier(lookup=units.get, known=lambda i: i in units or i in rules or i.startswith("nis2:art_23."))
    evidence = [Evidence(unit_id="nis2:art_23", doc="nis2", text=units["nis2:art_23"], rank=1, score=0.9),
                Evidence(unit_id="gdpr:art_33", doc="gdpr", text=units["gdpr:art_33"], rank=2, score=0.5)]
    good = Quote(doc_id="nis2:art_23.4.a", text="without undue delay and in any event within 24 hours of becoming "
                                                  "aware of the significant incident, an early warning")
    slip = Quote(doc_id="nis2:art_23", text="not later than 72 hours after having become aware of it")
    rep = v.verify(block(good), evidence, OUTPUT_BAD, [EARLY])
    assert rep.passed, failures_for_repair(rep)
    rep = v.verify(block(good, slip), evidence, OUTPUT_BAD, [EARLY])
    assert "quote belongs to [gdpr:art_33], not [nis2:art_23]" in rep.get("citation_validity").failures[0]
