"""Strict and content verbatim checks, near-miss detection, and the normalisation they rest on."""

from __future__ import annotations

import re

import pytest

from mad_guardrails.core.debate import Quote
from mad_guardrails.verifier import Verifier
from mad_guardrails.verifier.normalize import content_equal_in, content_key, find_content_span, fold
from mad_guardrails.verifier.verbatim import (
    ancestor_ids,
    check_quote,
    closest_span,
    content_verbatim,
    strict_verbatim,
)

GDPR_33_1 = ("In the case of a personal data breach, the controller shall without undue delay and, where feasible, "
             "not later than 72 hours after having become aware of it, notify the personal data breach to the "
             "supervisory authority competent in accordance with Article 55.")
AI_ACT_RCT = "respect for the Charter of Fundamental Rights of the European Union (the ‘Charter’), including democracy"
CRA_SPLIT = "when inte grating components sourced from third parties, manu facturers shall exercise due diligence"
UNITS = {
    "gdpr:art_33.1": GDPR_33_1,
    "eu-ai-act:rct_1": AI_ACT_RCT,
    "cra:art_13.5": CRA_SPLIT,
    "nis2:art_23": "4. Member States shall ensure ...:\n   - (a) without undue delay and in any event within 24 hours "
                   "of becoming aware of the significant incident, an early warning;\n   - (b) without undue delay and "
                   "in any event within 72 hours of becoming aware of the significant incident, an incident "
                   "notification;",
}


def q(doc_id: str, text: str) -> Quote:
    return Quote(doc_id=doc_id, text=text)


def status(doc_id: str, text: str) -> str:
    return check_quote(q(doc_id, text), UNITS.get).status


# ------------------------------------------------------------------------------------------ strict

def test_exact_substring_is_strict():
    assert status("gdpr:art_33.1", "not later than 72 hours after having become aware of it") == "strict"


def test_quote_citing_the_article_may_quote_one_of_its_points():
    assert status("nis2:art_23", "in any event within 24 hours of becoming aware") == "strict"


def test_point_id_unknown_to_the_lookup_is_checked_against_its_article():
    r = check_quote(q("nis2:art_23.4.a", "in any event within 24 hours of becoming aware"), UNITS.get)
    assert r.status == "strict" and r.checked_against == "nis2:art_23"
    assert "checked against [nis2:art_23]" in r.message()


def test_ancestor_ids_are_nearest_first():
    assert ancestor_ids("eu-ai-act:art_5.1.c.ii") == ["eu-ai-act:art_5.1.c", "eu-ai-act:art_5.1", "eu-ai-act:art_5"]
    assert ancestor_ids("gdpr:art_33") == []


def test_bracketed_id_is_cleaned():
    assert status("[gdpr:art_33.1] ", "not later than 72 hours") == "strict"


# ------------------------------------------------------------------------------------------ content

@pytest.mark.parametrize("doc_id,text", [
    ("eu-ai-act:rct_1", 'the European Union (the "Charter"), including democracy'),  # straight vs typographic quotes
    ("eu-ai-act:rct_1", "the European Union (the 'Charter'), including democracy"),
    ("cra:art_13.5", "when integrating components sourced from third parties, manufacturers"),  # PDF word splits
    ("gdpr:art_33.1", "WITHOUT UNDUE DELAY and, where feasible, not later than 72 hours"),  # case
    ("gdpr:art_33.1", "without undue  delay and,\nwhere feasible, not later than 72 hours"),  # whitespace
])
def test_cosmetic_changes_are_content_but_not_strict(doc_id, text):
    assert status(doc_id, text) == "content"


def test_changed_punctuation_is_not_content_equal():
    # dashes are dropped from the key, but the commas they replace are not
    assert status("gdpr:art_33.1", "without undue delay and—where feasible—not later than 72 hours") == "near_miss"


def test_hyphenation_and_soft_hyphen_are_normalised():
    src = "the manufacturer shall, when inte-\ngrating compo\u00adnents, exercise due dili- gence"
    assert content_equal_in("when integrating components, exercise due diligence", src)
    assert content_equal_in("when inte-grating compo­nents", src)


def test_dash_variants_are_equal():
    src = "a cross‑border or cross–sectoral significant incident"
    assert content_equal_in("a cross-border or cross-sectoral significant incident", src)


def test_elided_quote_matches_fragments_in_order_only():
    ok = "the controller shall ... notify the personal data breach to the supervisory authority"
    assert status("gdpr:art_33.1", ok) == "content"
    assert status("gdpr:art_33.1", "the controller shall […] not later than 72 hours") == "content"
    swapped = "notify the personal data breach ... the controller shall without undue delay"
    assert status("gdpr:art_33.1", swapped) in ("near_miss", "not_found")


def test_enclosing_quotation_marks_and_final_full_stop_are_ignored():
    assert status("gdpr:art_33.1", '"not later than 72 hours after having become aware of it."') == "content"


def test_find_content_span_returns_the_exact_source_text():
    src = "shall, where feasible, not later than\n72 hours after having"
    a, b = find_content_span("not later than 72 hours", src)
    assert src[a:b] == "not later than\n72 hours"


def test_content_key_maps_back_to_source_positions():
    key, where = content_key("A ‘b’ c-d")
    assert key == "a'b'cd"
    assert [("A ‘b’ c-d")[i] for i in where] == ["A", "‘", "b", "’", "c", "d"]


def test_fold_is_readable():
    assert fold("Without\u00a0undue – “delay”") == 'without undue - "delay"'


# ------------------------------------------------------------------------------------------ near-miss / failures

def test_changed_word_is_a_near_miss_with_the_closest_span():
    r = check_quote(q("gdpr:art_33.1", "not later than 48 hours after having become aware of it"), UNITS.get)
    assert r.status == "near_miss"
    assert r.closest.startswith("not later than 72 hours")
    assert re.match(r'\[gdpr:art_33\.1\] near-miss \(0\.\d\d\): "not later than 48 hours.*" vs "not later than 72',
                    r.message())


def test_unrelated_text_is_not_found():
    r = check_quote(q("gdpr:art_33.1", "providers of general-purpose AI models shall draw up technical documentation"),
                    UNITS.get)
    assert r.status == "not_found" and r.similarity < 0.8
    assert "not in the cited unit" in r.message()


@pytest.mark.parametrize("text", ["", "   ", "72 hours", "Article 5"])
def test_empty_and_very_short_quotes_are_not_quotes(text):
    r = check_quote(q("gdpr:art_33.1", text), UNITS.get)
    assert r.status == "not_a_quote" and "not a quote" in r.message()


def test_min_words_is_configurable():
    assert check_quote(q("gdpr:art_33.1", "72 hours"), UNITS.get, min_words=2).status == "strict"


def test_unknown_unit():
    r = check_quote(q("gdpr:art_999", "not later than 72 hours"), UNITS.get)
    assert r.status == "unknown_unit" and "unknown unit" in r.message()


def test_closest_span_on_a_long_text_finds_the_region():
    long = " ".join(f"filler word number {i}." for i in range(2000)) + " " + GDPR_33_1
    ratio, span = closest_span("not later than 96 hours after having become aware", long)
    assert ratio > 0.85 and "72 hours" in span


# ------------------------------------------------------------------------------------------ aggregate checks

def test_strict_and_content_scores_measure_the_near_miss_gap():
    qs = [q("gdpr:art_33.1", "not later than 72 hours after having become aware of it"),  # strict
          q("eu-ai-act:rct_1", 'the European Union (the "Charter"), including democracy'),  # content only
          q("gdpr:art_33.1", "not later than 48 hours after having become aware of it")]  # near-miss
    s, c = strict_verbatim(qs, UNITS.get), content_verbatim(qs, UNITS.get)
    assert (s.status, c.status) == ("fail", "fail")
    assert s.score == pytest.approx(1 / 3) and c.score == pytest.approx(2 / 3)
    assert len(s.failures) == 2 and len(c.failures) == 1
    assert "gap 0.333" in c.detail and "1 near-miss" in c.detail
    assert "not exact, equal only after normalising" in s.failures[0]


def test_all_exact_passes_and_duplicates_count_once():
    qs = [q("gdpr:art_33.1", "not later than 72 hours")] * 3
    s = strict_verbatim(qs, UNITS.get)
    assert s.status == "pass" and s.score == 1.0 and s.detail.startswith("1/1")


def test_no_quotes_is_skipped():
    assert strict_verbatim([], UNITS.get).status == "skipped"
    assert content_verbatim([], UNITS.get).status == "skipped"


def test_canonical_quote_repairs_cosmetic_near_miss():
    v = Verifier(lookup=UNITS.get, known=UNITS.__contains__)
    fixed = v.canonical_quote(q("eu-ai-act:rct_1", 'the European Union (the "Charter"), including democracy'))
    assert fixed.text == "the European Union (the ‘Charter’), including democracy"
    assert v.check_quote(fixed).status == "strict"
    assert v.canonical_quote(q("gdpr:art_33.1", "not later than 48 hours after having become aware")) is None
    assert v.quote_verified(fixed) and not v.quote_verified(q("gdpr:art_33.1", "not later than 48 hours after"))


# ------------------------------------------------------------------------------------------ real corpus

def test_real_nis2_point_quote_is_strict_against_its_article(corpus_unit_texts):
    text = ("without undue delay and in any event within 24 hours of becoming aware of the significant incident, "
            "an early warning")
    r = check_quote(q("nis2:art_23.4.a", text), corpus_unit_texts.get)
    assert r.status == "strict" and r.checked_against == "nis2:art_23"


def test_real_cra_pdf_word_split_is_content_verbatim(corpus_unit_texts):
    assert "vulner\x02 ability notification" in corpus_unit_texts["cra:art_14"]  # PDF hyphen as a control char
    r = check_quote(q("cra:art_14", "a vulnerability notification, without undue delay and in any event within "
                                    "72 hours"), corpus_unit_texts.get)
    assert r.status == "content" and r.exact.startswith("a vulner\x02 ability notification")


def test_real_gdpr_changed_deadline_is_a_near_miss(corpus_unit_texts):
    r = check_quote(q("gdpr:art_33", "where feasible, not later than 48 hours after having become aware of it"),
                    corpus_unit_texts.get)
    assert r.status == "near_miss" and "72 hours" in r.closest and r.similarity >= 0.9
