"""Citation validity: existing ids, retrieved evidence (both directions of id_covers), slips, policy rules."""

from __future__ import annotations

from mad_guardrails.core.debate import Quote
from mad_guardrails.verifier.citations import citation_validity, covered_by_retrieved, find_owner

UNITS = {
    "nis2:art_23": "(a) without undue delay and in any event within 24 hours of becoming aware of the significant "
                   "incident, an early warning; (b) without undue delay and in any event within 72 hours of becoming "
                   "aware of the significant incident, an incident notification;",
    "nis2:art_23.4.a": "(a) without undue delay and in any event within 24 hours of becoming aware of the significant "
                       "incident, an early warning;",
    "nis2:art_23.4.b": "(b) without undue delay and in any event within 72 hours of becoming aware of the significant "
                       "incident, an incident notification;",
    "gdpr:art_33.1": "not later than 72 hours after having become aware of it, notify the personal data breach",
    "eu-ai-act:art_5": "The following AI practices shall be prohibited: ...",
    "eu-ai-act:art_50": "Providers shall ensure that AI systems intended to interact directly with natural persons",
    "policy:nis2.incident.early_warning": "Early warning within 24 hours. Entities send an early warning.",
}


def known(uid: str) -> bool:
    return uid in UNITS


def q(doc_id: str, text: str) -> Quote:
    return Quote(doc_id=doc_id, text=text)


EARLY = "in any event within 24 hours of becoming aware"
LATE = "in any event within 72 hours of becoming aware"


def test_cited_id_retrieved_exactly_passes():
    r = citation_validity([q("nis2:art_23.4.a", EARLY)], {"nis2:art_23.4.a"}, known, lookup=UNITS.get)
    assert r.status == "pass" and r.score == 1.0 and r.failures == []


def test_point_of_a_retrieved_article_passes():
    r = citation_validity([q("nis2:art_23.4.a", EARLY)], {"nis2:art_23"}, known, lookup=UNITS.get)
    assert r.status == "pass"


def test_article_enclosing_a_retrieved_point_passes():
    r = citation_validity([q("nis2:art_23", EARLY)], {"nis2:art_23.4.a"}, known, lookup=UNITS.get)
    assert r.status == "pass"


def test_unknown_id_fails():
    r = citation_validity([q("nis2:art_23.9", EARLY)], {"nis2:art_23"}, known, lookup=UNITS.get)
    assert r.status == "fail" and r.failures[0].startswith("[nis2:art_23.9] unknown id")


def test_malformed_id_fails_with_an_example():
    r = citation_validity([q("article 23", EARLY)], {"nis2:art_23"}, known)
    assert r.status == "fail" and "malformed id" in r.failures[0] and "'<doc>:<unit>'" in r.failures[0]


def test_existing_but_not_retrieved_fails():
    r = citation_validity([q("gdpr:art_33.1", "not later than 72 hours after")], {"nis2:art_23"}, known,
                          lookup=UNITS.get)
    assert r.status == "fail" and "not among the retrieved evidence" in r.failures[0]


def test_art_50_is_not_covered_by_art_5():
    assert not covered_by_retrieved("eu-ai-act:art_50", {"eu-ai-act:art_5"})
    r = citation_validity([q("eu-ai-act:art_50", "Providers shall ensure that AI systems")], {"eu-ai-act:art_5"},
                          known, lookup=UNITS.get)
    assert r.status == "fail"


def test_citation_index_slip_right_quote_wrong_id():
    qs = [q("nis2:art_23.4.a", LATE)]
    r = citation_validity(qs, {"nis2:art_23.4.a", "nis2:art_23.4.b"}, known, lookup=UNITS.get)
    assert r.status == "fail"
    assert "quote belongs to [nis2:art_23.4.b], not [nis2:art_23.4.a]" in r.failures[0]
    assert "1 citation-index slip" in r.detail


def test_slip_prefers_the_specific_owner_over_the_enclosing_article():
    owner = find_owner(LATE, "nis2:art_23.4.a", {"nis2:art_23", "nis2:art_23.4.b"}, lookup=UNITS.get)
    assert owner == "nis2:art_23.4.b"


def test_slip_is_found_from_evidence_texts_without_a_lookup():
    texts = {"nis2:art_23.4.a": UNITS["nis2:art_23.4.a"], "gdpr:art_33.1": UNITS["gdpr:art_33.1"]}
    r = citation_validity([q("nis2:art_23.4.a", "not later than 72 hours after having become aware")], set(texts),
                          known, retrieved_texts=texts)
    assert r.status == "fail" and "quote belongs to [gdpr:art_33.1]" in r.failures[0]


def test_quote_found_nowhere_is_left_to_the_verbatim_checks():
    r = citation_validity([q("nis2:art_23.4.a", "within 48 hours of becoming aware")], {"nis2:art_23.4.a"}, known,
                          lookup=UNITS.get)
    assert r.status == "pass"


def test_policy_citation_is_valid_when_the_rule_exists_even_if_not_retrieved():
    ok = citation_validity([q("policy:nis2.incident.early_warning", "Entities send an early warning")], set(), known,
                           lookup=UNITS.get)
    assert ok.status == "pass"
    bad = citation_validity([q("policy:nis2.made_up", "Entities send an early warning")], set(), known)
    assert bad.status == "fail" and "unknown id" in bad.failures[0]


def test_no_quotes_skipped_and_mixed_score():
    assert citation_validity([], set(), known).status == "skipped"
    r = citation_validity([q("nis2:art_23.4.a", EARLY), q("nis2:art_99", EARLY)], {"nis2:art_23"}, known)
    assert r.status == "fail" and r.score == 0.5
