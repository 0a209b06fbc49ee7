"""Claims of a checked output: atomic, with spans that point back into the text; non-regulatory talk is marked."""

from __future__ import annotations

import pytest

from mad_guardrails.verifier.claims import split_claims

CASES = [
    ("Hello! Under the GDPR a controller has 72 hours to notify the supervisory authority. Hope this helps!",
     [False, True, False]),
    ("Deployers must keep the logs for six months; providers must draw up the technical documentation.",
     [True, True]),
    ("I'm not a lawyer, so please consult your legal team before relying on this.", [False]),
    # a referral after a claim is cut off from it: it neither hides the claim nor becomes one
    ("You never need to report a breach to anyone, so consult a lawyer.", [True, False]),
    ("The NIS2 fines are capped at EUR 1 million, so check with counsel which figure applies to you.", [True, False]),
    ("Can you tell me more about your product?", [False]),
    ("The early warning is due within 24 hours and the incident notification within 72 hours.", [True, True]),
]


@pytest.mark.parametrize("text,regulatory", CASES)
def test_claims_and_which_drive_a_decision(text, regulatory):
    claims = split_claims(text)
    assert [c.regulatory for c in claims] == regulatory
    for c in claims:
        assert text[c.start:c.end] == c.text  # the span points at the sentence the verdict may object to
        assert c.regulatory or c.reason


def test_abbreviations_do_not_cut_a_claim():
    claims = split_claims("Under Art. 5(1)(f) of the AI Act, e.g. in offices, emotion recognition is prohibited.")
    assert len(claims) == 1 and claims[0].regulatory


def test_a_clause_without_its_own_content_stays_with_its_sentence():
    claims = split_claims("Providers and deployers must register high-risk systems in the EU database.")
    assert len(claims) == 1


def test_a_digit_that_is_no_figure_does_not_make_a_claim_regulatory():
    [c] = split_claims("Then stop it with kill -9 <pid> and start it again.")
    assert not c.regulatory


def test_a_list_item_that_shares_its_verb_is_checked_as_a_sentence_of_its_own():
    text = ("Under NIS2 an essential entity sends the CSIRT an early warning within 24 hours, an incident "
            "notification within 72 hours and a final report no later than one month after that notification.")
    claims = split_claims(text)
    last = claims[-1]
    assert text[last.start:last.end] == last.text and last.text.startswith("a final report")  # the span stays put
    # what the verifier reads: the subject and verb the item shares, so "one month" is about the entity's report
    assert last.stated.startswith("Under NIS2 an essential entity sends the CSIRT a final report")
    assert last.stated.endswith(last.text)
    assert claims[0].context == "" and claims[0].stated == claims[0].text  # a clause with its own verb needs none


def test_a_clause_with_its_own_verb_gets_no_borrowed_context():
    claims = split_claims("Deployers must keep the logs for six months; providers must draw up the documentation.")
    assert [c.context for c in claims] == ["", ""]


def test_each_claim_is_searched_within_the_act_it_names(small_retriever):
    """A claim about the GDPR gets GDPR clauses as its evidence, whatever the other acts say on the same topic; a
    claim naming no act is searched within the acts the output names."""
    from mad_guardrails.core.claims import OutputClaim
    from mad_guardrails.verifier.claim_check import claim_evidence

    def claim(i, text):
        return OutputClaim(index=i, text=text, start=0, end=len(text), regulatory=True)

    claims = [claim(0, "Under the GDPR a breach is notified within 72 hours."),
              claim(1, "An early warning of a significant incident is due within 24 hours."),
              claim(2, "Under NIS2 an early warning of a significant incident is due within 24 hours.")]
    ev = claim_evidence(small_retriever, claims, None, 3, scope_text="The AI Act and the GDPR say so.")
    assert ev[0] and {e.doc for e in ev[0]} == {"gdpr"}
    assert ev[1] and {e.doc for e in ev[1]} <= {"gdpr", "eu-ai-act"}
    assert ev[2] and {e.doc for e in ev[2]} == {"nis2"}


def test_a_claim_that_cites_a_provision_is_read_against_it_first(small_retriever):
    from mad_guardrails.core.claims import OutputClaim
    from mad_guardrails.verifier.claim_check import claim_evidence

    text = "Article 50(1) of the AI Act: the provider must report serious incidents within 15 days."
    claim = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
    ev = claim_evidence(small_retriever, [claim], None, 3)[0]
    assert ev[0].unit_id == "eu-ai-act:art_50.1"  # what the claim says it restates, however the words rank
    assert "eu-ai-act:art_73.2" in [e.unit_id for e in ev]  # and the search's own best clauses after it


def test_a_contrast_starts_a_clause_of_its_own_but_a_restriction_stays_with_its_clause():
    """"..., but the other duties and the rest of the act still apply" is a claim of its own (never glued to the
    first clause's verb); "..., but only where strictly necessary" restricts the clause before it."""
    from mad_guardrails.verifier.claims import split_claims

    got = split_claims("Small firms are spared the fine for a late early warning, but the other reporting duties and "
                       "the rest of the act still apply to them.")
    assert [c.text for c in got] == ["Small firms are spared the fine for a late early warning",
                                     "the other reporting duties and the rest of the act still apply to them."]
    assert all(not c.context for c in got)
    got = split_claims("Providers may run the test in real conditions, but only where strictly necessary.")
    assert [c.text for c in got] == ["Providers may run the test in real conditions, but only where strictly "
                                     "necessary."]


def test_a_bracket_or_two_roles_joined_by_and_are_never_cut():
    """A parenthesis is read whole, and "controllers and processors alike: ..." is one noun phrase, not two claims."""
    got = split_claims("The duty covers controllers and processors alike: they must keep records of processing.")
    assert len(got) == 1
    got = split_claims("Only identified firms must test (small firms and the simplified-regime firms are excluded), "
                       "and the test is due at least every three years.")
    assert [c.text for c in got] == ["Only identified firms must test (small firms and the simplified-regime firms "
                                     "are excluded)", "the test is due at least every three years."]


def test_contracted_verbs_make_clauses_of_their_own():
    """"that's left to ..." and "you're responsible for ..." are clauses (their verbs are contracted); a possessive
    ("the provider's job") is no verb, and a clause with a verb of its own borrows no other clause's subject."""
    got = split_claims("No, the RMF doesn't address privacy; that's left to the separate NIST privacy framework.")
    assert [c.text for c in got] == ["No, the RMF doesn't address privacy",
                                     "that's left to the separate NIST privacy framework."]
    got = split_claims("The provider must meet the main duties and you're responsible for monitoring the contract.")
    assert len(got) == 2 and got[1].text == "you're responsible for monitoring the contract."
    got = split_claims("Deployer duties don't apply to purely personal use, and the definition of a deployer "
                       "excludes that kind of use.")
    assert [c.context for c in got] == ["", ""]


def test_a_noun_phrase_before_a_dash_continues_the_clause_before_it():
    """"..., taking into account the complexity and number of requests — a surge may qualify": the "and" joins two
    nouns; the verb after the dash belongs to a new aside, not to a clause starting at "number"."""
    got = split_claims("You may extend the period where necessary, taking into account the complexity and number of "
                       "requests — a surge like yours may qualify.")
    assert len(got) == 1


def test_a_short_verdict_on_the_question_is_read_like_yes_or_no():
    """"They do apply." answers the question; what it means is stated by the claims with it, so it is not a claim to
    check on its own (like "Yes."). A verdict with a scope, a figure or a duty of its own stays a claim."""
    got = split_claims("They do apply. Importers must check that the manufacturer drew up the technical documentation.")
    assert [c.regulatory for c in got] == [False, True]
    assert split_claims("That's only for the provider.")[0].regulatory
    assert split_claims("They must report within 24 hours.")[0].regulatory
