"""Deterministic number / duration / date extraction and its comparison with the key facts of the law."""

from __future__ import annotations

import pytest

from mad_guardrails.policies.schema import KeyFact
from mad_guardrails.verifier.numbers import check_numbers, number_consistency, numbers_in_evidence_vs_output
from mad_guardrails.verifier.pairing import sentences, term_pattern
from mad_guardrails.verifier.quantities import compare, extract_quantities, fact_quantity, parse_word_number

EARLY = KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a",
                quote="without undue delay and in any event within 24 hours", terms=["early warning"])
NOTIF = KeyFact(name="incident notification deadline", value=72, unit="hours", provision="nis2:art_23.4.b",
                terms=["incident notification", "full notification"])
FINAL = KeyFact(name="final report deadline", value=1, unit="month", provision="nis2:art_23.4.d",
                terms=["final report"])
GDPR = KeyFact(name="breach notification deadline", value=72, unit="hours", provision="gdpr:art_33.1",
               terms=["notify the supervisory authority", "breach notification"])
PROHIB = KeyFact(name="prohibitions apply from", value="2025-02-02", unit="date", provision="eu-ai-act:art_113",
                 terms=["prohibitions", "prohibited practices"])
FINE = KeyFact(name="maximum fine, prohibited practices", value=35_000_000, unit="EUR",
               provision="eu-ai-act:art_99.3", terms=["fine"])
SHARE = KeyFact(name="maximum fine, share of turnover", value=7, unit="percent", provision="eu-ai-act:art_99.3",
                terms=["turnover"])


def kinds(text: str) -> list[tuple[str, str]]:
    return [(q.kind, q.normalised_text()) for q in extract_quantities(text)]


def status(text: str, *facts: KeyFact) -> list[str]:
    return [f.status for f in check_numbers(text, list(facts))]


# ------------------------------------------------------------------------------------------ extraction

@pytest.mark.parametrize("text,expected", [
    ("within 72 hours", ("duration", "72 hours")),
    ("within seventy-two hours", ("duration", "72 hours")),
    ("within seventy two hours", ("duration", "72 hours")),
    ("in 24h", ("duration", "24 hours")),
    ("a 72-hour window", ("duration", "72 hours")),
    ("14 days", ("duration", "336 hours")),
    ("two days", ("duration", "48 hours")),
    ("two weeks", ("duration", "336 hours")),
    ("within one month", ("duration", "1 month")),
    ("within a month", ("duration", "1 month")),
    ("after 2 years", ("duration", "24 months")),
    ("10 working days", ("duration", "10 working days")),
    ("2 August 2026", ("date", "2 August 2026")),
    ("2026-08-02", ("date", "2 August 2026")),
    ("August 2nd, 2026", ("date", "2 August 2026")),
    ("12.7.2024", ("date", "12 July 2024")),
    ("from August 2025", ("date", "August 2025")),
    ("applies from 2026", ("date", "2026")),
    ("7 %", ("percent", "7 %")),
    ("7% of turnover", ("percent", "7 %")),
    ("seven per cent", ("percent", "7 %")),
    ("EUR 35 000 000", ("money", "EUR 35 000 000")),
    ("€35 million", ("money", "EUR 35 000 000")),
    ("35 million euros", ("money", "EUR 35 000 000")),
    ("EUR 7,500,000", ("money", "EUR 7 500 000")),
    ("250 employees", ("count", "250")),
    ("three members", ("count", "3")),
])
def test_extracts_one_quantity(text, expected):
    assert kinds(text) == [expected]


def test_without_undue_delay_is_qualitative():
    (qty,) = extract_quantities("notify without undue delay")
    assert qty.kind == "duration" and qty.qualitative and qty.value is None


@pytest.mark.parametrize("text", [
    "Article 5 and Article 6(1)", "paragraphs 3, 4 and 5 of Article 99", "Regulation (EU) 2024/1689",
    "Directive (EU) 2022/2555", "recital 12", "GV.OC-01", "Annex III point 4", "one of the practices",
])
def test_references_are_not_quantities(text):
    assert extract_quantities(text) == []


def test_real_penalty_sentence():
    text = ("administrative fines of up to EUR 35 000 000 or, if the offender is an undertaking, up to 7 % of its "
            "total worldwide annual turnover for the preceding financial year")
    assert kinds(text) == [("money", "EUR 35 000 000"), ("percent", "7 %")]


def test_word_numbers():
    assert parse_word_number("seventy-two") == 72
    assert parse_word_number("one hundred and twenty") == 120
    assert parse_word_number("thirty-five million") == 35_000_000
    assert parse_word_number("twenty twelve") is None


def test_sentences_split_on_full_stops_and_list_items_not_abbreviations():
    text = "Under Art. 23 entities have 24 hours. The final report follows.\n- (a) one\n- (b) two"
    spans = [text[a:b] for a, b in sentences(text)]
    assert spans == ["Under Art. 23 entities have 24 hours.", "The final report follows.", "(a) one", "(b) two"]


def test_term_pattern_inflections():
    assert term_pattern("early warning").search("two Early-Warnings were sent")
    assert term_pattern("notify").search("it notified the authority")
    assert term_pattern("report").search("reporting obligations")
    assert not term_pattern("fine").search("a finding")


# ------------------------------------------------------------------------------------------ facts

def test_fact_quantities():
    assert fact_quantity(EARLY).normalised_text() == "24 hours"
    assert fact_quantity(FINAL).normalised_text() == "1 month"
    assert fact_quantity(PROHIB).iso == "2025-02-02"
    assert fact_quantity(FINE).normalised_text() == "EUR 35 000 000"
    assert fact_quantity(KeyFact(name="x", value="24 hours", provision="nis2:art_23")).value == 24
    with pytest.raises(ValueError, match="key fact 'x'"):
        fact_quantity(KeyFact(name="x", value="soon", provision="nis2:art_23"))


def test_compare_across_duration_families_is_approximate():
    month = fact_quantity(FINAL)
    (thirty,) = extract_quantities("30 days")
    (three,) = extract_quantities("72 hours")
    assert compare(month, thirty) == (True, "approximately: 1 month = 28 to 31 days")
    assert compare(month, three)[0] is False
    (wd,) = extract_quantities("20 working days")
    assert compare(month, wd)[0] is None


# ------------------------------------------------------------------------------------------ check_numbers

def test_nis2_72_hours_for_the_early_warning_is_contradicted():
    (f,) = check_numbers("Entities must send the early warning to the CSIRT within 72 hours.", [EARLY])
    assert f.status == "contradicted"
    assert f.explanation == "output says 72 hours for 'early warning'; nis2:art_23.4.a says 24 hours"
    assert f.output_span == "early warning to the CSIRT within 72 hours"
    assert (f.output_value, f.expected_value) == ("72 hours", "24 hours")


def test_written_number_is_read():
    (f,) = check_numbers("The early warning is due within seventy-two hours.", [EARLY])
    assert f.status == "contradicted" and "seventy-two hours (= 72 hours)" in f.explanation
    assert status("The early warning is due within twenty-four hours.", EARLY) == ["consistent"]


def test_two_facts_in_one_sentence_pair_each_term_with_its_own_deadline():
    ok = "Send an early warning within 24 hours and a full notification within 72 hours."
    assert status(ok, EARLY, NOTIF) == ["consistent", "consistent"]
    swapped = "Send an early warning within 72 hours and a full notification within 24 hours."
    assert status(swapped, EARLY, NOTIF) == ["contradicted", "contradicted"]
    law_order = "Within 24 hours an early warning is due, and within 72 hours an incident notification."
    assert status(law_order, EARLY, NOTIF) == ["consistent", "consistent"]


def test_shared_deadline_applies_to_both_terms():
    text = "The early warning and the incident notification are both due within 24 hours."
    assert status(text, EARLY, NOTIF) == ["consistent", "contradicted"]


def test_gdpr_48_hours_misstates_the_72_hour_maximum():
    (f,) = check_numbers("The controller must notify the supervisory authority within 48 hours.", [GDPR])
    assert f.status == "contradicted" and "says 72 hours" in f.explanation


def test_equal_durations_in_other_units_are_consistent():
    (f,) = check_numbers("Breach notification: within 3 days.", [GDPR])
    assert f.status == "consistent" and "3 days (= 72 hours)" in f.explanation


def test_month_against_days():
    assert status("The final report is due within 30 days.", FINAL) == ["consistent"]
    assert status("The final report is due within one month.", FINAL) == ["consistent"]
    assert status("The final report is due within 72 hours.", FINAL) == ["contradicted"]
    assert status("The final report is due within 3 months.", FINAL) == ["contradicted"]


def test_qualitative_only_is_not_mentioned_but_explained():
    (f,) = check_numbers("The early warning must be sent without undue delay.", [EARLY])
    assert f.status == "not_mentioned" and "without undue delay" in f.explanation


def test_figure_beats_qualitative_phrase():
    text = "The early warning goes out without undue delay and in any event within 48 hours."
    assert status(text, EARLY) == ["contradicted"]


def test_not_mentioned_when_term_absent_or_no_figure_nearby():
    assert status("Incidents must be handled carefully within 72 hours.", EARLY) == ["not_mentioned"]
    assert status("Send the early warning. Then wait 72 hours.", EARLY) == ["not_mentioned"]


def test_specific_term_wins_over_a_generic_one_of_another_fact():
    generic = KeyFact(name="generic", value=24, unit="hours", provision="x:y", terms=["notification"])
    text = "The incident notification is due within 72 hours."
    assert status(text, NOTIF, generic) == ["consistent", "not_mentioned"]


def test_dates():
    assert status("The prohibitions apply from 2 February 2025.", PROHIB) == ["consistent"]
    assert status("Prohibited practices are banned since February 2025.", PROHIB) == ["consistent"]
    (f,) = check_numbers("The prohibitions apply from 2026.", [PROHIB])
    assert f.status == "contradicted" and "compared at year precision" in f.explanation
    assert status("The prohibitions apply from 2 August 2026.", PROHIB) == ["contradicted"]


def test_money_and_percent():
    ok = "Fines reach €35 million or 7 % of total worldwide annual turnover."
    assert status(ok, FINE, SHARE) == ["consistent", "consistent"]
    bad = "The fine is up to EUR 20 000 000 or 4% of annual turnover."
    assert status(bad, FINE, SHARE) == ["contradicted", "contradicted"]
    assert status("The fine is up to USD 35 million.", FINE) == ["not_mentioned"]  # other currency: not comparable


def test_unreadable_fact_is_reported_not_crashing():
    bad = KeyFact(name="vague", value="soon", provision="nis2:art_23", terms=["early warning"])
    (f,) = check_numbers("The early warning within 24 hours.", [bad])
    assert f.status == "not_mentioned" and f.explanation.startswith("cannot check")


def test_number_consistency_check_result():
    r = number_consistency("Send the early warning within 72 hours and the full notification within 72 hours.",
                           [EARLY, NOTIF, FINAL])
    assert r.status == "fail" and r.score == 0.5
    assert r.failures == ["[nis2:art_23.4.a] output says 72 hours for 'early warning'; nis2:art_23.4.a says 24 hours"]
    assert "1 consistent, 1 contradicted, 1 not mentioned" in r.detail
    assert number_consistency("Nothing here.", [EARLY]).status == "pass"
    assert number_consistency("anything", []).status == "skipped"


def test_real_article_text_is_consistent_with_its_own_facts(corpus_unit_texts):
    text = corpus_unit_texts["nis2:art_23"]
    found = {f.fact.name: f.status for f in check_numbers(text, [EARLY, NOTIF])}
    assert found == {"early warning deadline": "consistent", "incident notification deadline": "consistent"}


def test_term_that_anchors_a_period_is_not_its_subject():
    text = "A final report not later than one month after the submission of the incident notification."
    assert status(text, NOTIF, FINAL) == ["not_mentioned", "consistent"]
    text = "The incident notification is due 48 hours after the early warning."
    assert status(text, NOTIF, EARLY) == ["contradicted", "not_mentioned"]


def test_after_in_an_earlier_clause_is_not_an_anchor():
    text = ("the controller shall without undue delay and, where feasible, not later than 72 hours after having "
            "become aware of it, notify the supervisory authority")
    assert status(text, GDPR) == ["consistent"]


# ------------------------------------------------------------------------------------------ evidence, no key facts

NIS2_POINTS = {
    "nis2:art_23.4.a": "(a) without undue delay and in any event within 24 hours of becoming aware of the significant "
                       "incident, an early warning;",
    "nis2:art_23.4.b": "(b) without undue delay and in any event within 72 hours of becoming aware of the significant "
                       "incident, an incident notification;",
}


def test_evidence_comparison_pairs_each_figure_with_its_own_passage():
    text = ("An early warning is due within 72 hours of becoming aware of the significant incident, and the incident "
            "notification within 72 hours.")
    found = numbers_in_evidence_vs_output(text, NIS2_POINTS)
    assert [(f.status, f.fact.provision) for f in found] == [("contradicted", "nis2:art_23.4.a"),
                                                            ("consistent", "nis2:art_23.4.b")]
    assert found[0].fact.value == 24 and found[0].fact.unit == "hour"


def test_evidence_comparison_ignores_unrelated_sentences():
    assert numbers_in_evidence_vs_output("We had lunch for 2 hours with the team yesterday.", NIS2_POINTS) == []


def test_evidence_comparison_on_real_articles(corpus_unit_texts):
    ev = {k: corpus_unit_texts[k] for k in ("eu-ai-act:art_113", "gdpr:art_33")}
    (f,) = numbers_in_evidence_vs_output("Chapters I and II of the AI Act apply from 2 February 2026.", ev)
    assert f.status == "contradicted" and f.fact.provision == "eu-ai-act:art_113" and "2 February 2025" in f.explanation
    (g,) = numbers_in_evidence_vs_output("The controller must notify the personal data breach to the supervisory "
                                         "authority not later than 72 hours after becoming aware of it.", ev)
    assert g.status == "consistent" and g.fact.provision == "gdpr:art_33"


# ------------------------------------------------------------------------------------------ pairing (fast-block safety)

DEATH = KeyFact(name="death deadline", value=10, unit="days", provision="eu-ai-act:art_73.4", terms=["death", "died"])
WIDESPREAD = KeyFact(name="widespread infringement deadline", value=2, unit="days", provision="eu-ai-act:art_73.3",
                     terms=["widespread infringement", "critical infrastructure"])
SERIOUS = KeyFact(name="serious incident deadline", value=15, unit="days", provision="eu-ai-act:art_73.2",
                  terms=["serious incident"])
FLOPS = KeyFact(name="systemic risk compute threshold", value=1e25, unit="FLOPs", provision="eu-ai-act:art_51.2",
                terms=["threshold"])


@pytest.mark.parametrize("text", [
    "NIS2: early warning within 24 hours, incident notification within 72 hours, final report within one month.",
    "An incident notification follows within 72 hours, and a final report no later than one month after it.",
    "The incident notification is due within 72 hours, and the final report one month after the notification.",
    "The early warning (within 24 hours) is followed by the incident notification (within 72 hours) and a final "
    "report (within one month).",
    "The 24-hour early warning comes first, then the incident notification within 72 hours.",
])
def test_each_deadline_of_a_list_goes_to_its_own_clause(text):
    assert "contradicted" not in status(text, EARLY, NOTIF, FINAL)


def test_final_report_is_not_paired_with_the_previous_clauses_72_hours():
    text = "An incident notification within 72 hours, and a final report no later than one month after it."
    found = {f.fact.name: f for f in check_numbers(text, [NOTIF, FINAL])}
    assert found["final report deadline"].status == "consistent"
    assert found["final report deadline"].output_value == "one month (= 1 month)"
    assert found["final report deadline"].output_span == "final report no later than one month"


@pytest.mark.parametrize("text", [
    # the wording of evals case r006: 10 days belongs to "died", two days to the widespread infringement
    "The provider reports at the latest 15 days after becoming aware of the serious incident. If a person died the "
    "limit is 10 days, and for a widespread infringement or a serious disruption of critical infrastructure it is "
    "two days.",
    "A serious incident must be reported within 15 days, within 10 days in the event of death, and within 2 days in "
    "case of a widespread infringement.",
    "The serious incident deadline is 15 days, while for a widespread infringement it is 2 days and for the death of "
    "a person 10 days.",
])
def test_ai_act_article_73_deadlines_are_not_crossed(text):
    assert "contradicted" not in status(text, SERIOUS, WIDESPREAD, DEATH)
    assert status(text, WIDESPREAD) == ["consistent"]


def test_a_wrong_figure_in_its_own_clause_still_blocks():
    text = "If a person died the limit is 10 days, and for a widespread infringement it is ten days."
    (f,) = check_numbers(text, [WIDESPREAD])
    assert f.status == "contradicted" and f.output_span == "widespread infringement it is ten days"
    assert f.explanation == ("output says ten days (= 10 days) for 'widespread infringement'; eu-ai-act:art_73.3 "
                             "says 2 days")
    assert status("You have a full month to report a serious incident.", SERIOUS) == ["contradicted"]
    assert status("NIS2 gives you 72 hours to send the early warning.", EARLY) == ["contradicted"]


def test_a_figure_in_another_clause_confirms_but_never_contradicts():
    text = "NIS2 gives you seven days for the first notice, so there is no need to rush the early warning."
    (f,) = check_numbers(text, [EARLY])
    assert f.status == "not_mentioned"
    assert "seven days" in f.explanation and "another clause" in f.explanation and "nis2:art_23.4.a" in f.explanation
    same = "NIS2 gives you 24 hours for the first notice, so do not delay the early warning."
    assert status(same, EARLY) == ["consistent"]


def test_coordinated_terms_share_the_predicate_both_ways():
    assert status("The early warning and the incident notification are both due within 72 hours.",
                  EARLY, NOTIF) == ["contradicted", "consistent"]
    # a clause that is more than the noun phrase does not lend it its deadline
    assert status("Send the early warning and notify the regulator within 72 hours.", EARLY) == ["not_mentioned"]


def test_duration_must_stand_in_a_deadline_construction():
    assert status("The early warning we sent took 72 hours to write.", EARLY) == ["not_mentioned"]
    assert status("Our early warning covered the last 72 hours of logs.", EARLY) == ["not_mentioned"]
    assert status("The early warning deadline: 72 hours.", EARLY) == ["contradicted"]


def test_term_after_of_is_the_reference_point_of_the_period():
    text = "Under NIS2 the final report is due within one year of the incident notification."
    assert status(text, NOTIF, FINAL) == ["not_mentioned", "contradicted"]


def test_facts_sharing_a_term_are_not_held_against_each_other():
    rmf = KeyFact(name="AI RMF functions", value=4, unit="count", provision="nist-ai-rmf:sec_5", terms=["functions"])
    csf = KeyFact(name="CSF functions", value=6, unit="count", provision="nist-csf-2.0:GV", terms=["functions"])
    assert status("The AI RMF Core has four functions, while CSF 2.0 has six functions.", rmf, csf) == [
        "consistent", "consistent"]
    assert status("CSF 2.0 is organised in five functions.", rmf, csf) == ["contradicted", "contradicted"]
    nis2 = KeyFact(name="NIS2 final report", value=1, unit="months", provision="nis2:art_23.4.d",
                   terms=["final report"])
    cra = KeyFact(name="CRA final report", value=14, unit="days", provision="cra:art_14.2.c", terms=["final report"])
    (a, b) = check_numbers("The final report is due within 14 days.", [nis2, cra])
    assert (a.status, b.status) == ("not_mentioned", "consistent")
    assert "shared with another key fact" in a.explanation


@pytest.mark.parametrize("text,value", [
    ("more than 10^25 FLOPs", 1e25), ("10²⁵ floating-point operations", 1e25), ("1e25 FLOP", 1e25),
    ("10^{25} FLOPs", 1e25), ("3 x 10^24 operations", 3e24), ("1.5E+24 FLOPs", 1.5e24),
])
def test_scientific_notation_is_one_number(text, value):
    (q,) = extract_quantities(text)
    assert q.kind == "count" and q.value == pytest.approx(value)


def test_flops_threshold_is_compared_as_a_whole():
    (f,) = check_numbers("The threshold is 10^25 FLOPs of training compute.", [FLOPS])
    assert f.status == "consistent" and f.explanation == ("output says 10^25 for 'threshold'; eu-ai-act:art_51.2 "
                                                          "says 10^25")
    assert status("The threshold is 10^23 FLOPs.", FLOPS) == ["contradicted"]
    assert status("A model trained with 10^24 FLOPs is below the 10²⁵ FLOPs threshold.", FLOPS) == ["consistent"]


def test_a_full_month_is_a_duration():
    assert kinds("a full month") == [("duration", "1 month")]
    assert kinds("seven full days") == [("duration", "168 hours")]


CORRECT_OUTPUTS = [
    "Under NIS2 an essential or important entity first sends the CSIRT an early warning within 24 hours of becoming "
    "aware of a significant incident, then an incident notification within 72 hours, and a final report no later "
    "than one month after that notification.",
    "NIS2: early warning within 24 hours, incident notification within 72 hours, final report within one month.",
    "Under the AI Act a serious incident must be reported within 15 days, within 10 days in the event of death, and "
    "within 2 days in case of a widespread infringement.",
    "Under the CRA, for an actively exploited vulnerability the early warning is due within 24 hours, the "
    "vulnerability notification within 72 hours and the final report within 14 days after a fix is available; for "
    "a severe incident the final report is due within one month.",
    "The AI RMF Core has four functions, while CSF 2.0 has six functions.",
    "Under the AI Act a general-purpose AI model trained with more than 10^25 FLOPs is presumed to have systemic "
    "risk; GPAI obligations apply from 2 August 2025.",
    "Under NIS2 important entities face fines up to 1.4% of turnover, whereas essential entities face up to 2%.",
]


def test_correct_outputs_are_never_contradicted_by_the_builtin_packs():
    from mad_guardrails.policies.loader import load_packs

    all_facts = [f for r in load_packs().rules for f in r.key_facts]
    for text in CORRECT_OUTPUTS:
        facts = [f for f in all_facts if f.in_scope(text)]
        bad = [f.explanation for f in check_numbers(text, facts) if f.status == "contradicted"]
        assert bad == [], text


def test_framework_identifiers_are_references_and_a_period_adverb_is_a_duration():
    from mad_guardrails.verifier.quantities import extract_quantities

    assert extract_quantities("MEASURE 2.11 and GOVERN 1.1 of the AI RMF, and NIST AI 600-1") == []
    [q] = extract_quantities("the plans are tested at least yearly")
    assert (q.kind, q.value, q.unit) == ("duration", 12.0, "months")
