"""The checkable half of the claim check: a model's contradiction blocks only when a figure, a negation, a modality
or an actor confirms it; a near word-for-word restatement is entailed; a model's entailment does not survive a
changed figure. The texts below are written for these tests (not taken from any training or evaluation file)."""

from __future__ import annotations

from mad_guardrails.core.claims import OutputClaim
from mad_guardrails.core.units import Evidence
from mad_guardrails.verifier.claim_check import check_claims
from mad_guardrails.verifier.claim_signals import confirms_contradiction, coverage, differences, restates

BREACH = ("In the case of a personal data breach, the controller shall without undue delay and, where feasible, "
          "not later than 72 hours after having become aware of it, notify the personal data breach to the "
          "supervisory authority.")
LATE = ("Where the notification to the supervisory authority is not made within 72 hours, it shall be accompanied "
        "by reasons for the delay.")
LIST_ITEM = ("the placing on the market or the use of AI systems that create facial recognition databases through "
             "the untargeted scraping of facial images from the internet or CCTV footage;")


def kinds(claim: str, sentence: str) -> list[str]:
    return [d.kind for d in differences(claim, sentence)]


def test_another_deadline_is_a_number_difference_and_confirms():
    claim = "The controller has a full week to notify the supervisory authority of a personal data breach."
    assert kinds(claim, BREACH) == ["number"]
    assert [d.kind for d in confirms_contradiction(claim, BREACH)] == ["number"]


def test_the_same_deadline_written_differently_is_no_difference():
    assert differences("Controllers tell the supervisory authority about a personal data breach within three days.",
                       BREACH) == []


def test_a_swapped_actor_and_an_optional_duty_are_differences():
    assert "actor" in kinds("The processor shall notify the supervisory authority of the breach within 72 hours.",
                            BREACH)
    assert "modal" in kinds("For the controller, notifying a personal data breach to the supervisory authority is "
                            "optional.", BREACH)


def test_a_negation_inside_a_condition_is_not_a_flip():
    assert kinds("A late notification to the supervisory authority has to give the reasons for the delay.",
                 LATE) == []


def test_a_negation_against_a_list_item_cut_from_its_lead_in_does_not_confirm():
    claim = ("Building a facial recognition database by untargeted scraping of images from the internet is "
             "prohibited, so it is not an option.")
    assert "negation" in kinds(claim, LIST_ITEM)
    assert confirms_contradiction(claim, LIST_ITEM) == []


def test_an_unrelated_sentence_never_confirms():
    assert confirms_contradiction("Deployers must not use emotion recognition at work.", BREACH) == []


def test_restatement_needs_the_words_and_no_difference():
    assert restates("The controller shall notify the personal data breach to the supervisory authority.", BREACH)
    assert coverage("Fines reach 7 % of turnover.", BREACH) < 0.3
    assert not restates("The processor shall notify the personal data breach to the supervisory authority.", BREACH)


class FixedModel:
    """Returns the same probabilities for every pair (parsing and control flow only)."""

    def __init__(self, e: float, c: float):
        self.p = {"entailed": e, "contradicted": c, "neutral": max(0.0, 1 - e - c)}

    def predict(self, pairs):
        return [dict(self.p) for _ in pairs]


def _check(text: str, model, sentence: str = BREACH):
    claim = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
    ev = [Evidence(unit_id="gdpr:art_33.1", doc="gdpr", rank=1, score=1.0, text=sentence)]
    return check_claims([claim], [ev], model, entail_threshold=0.9, contradict_threshold=0.7)[0]


def test_an_unconfirmed_model_contradiction_is_not_settled_and_says_why():
    r = _check("Controllers must tell the supervisory authority about a personal data breach quickly.",
               FixedModel(0.05, 0.9))
    assert r.label == "neutral"
    assert "not settled" in r.note


def test_a_confirmed_contradiction_blocks_with_its_basis():
    r = _check("Controllers have 30 days to notify the supervisory authority of a personal data breach.",
               FixedModel(0.05, 0.9))
    assert r.label == "contradicted" and r.basis == "model + number"
    assert r.against is not None and r.against.doc_id == "gdpr:art_33.1"


def test_a_restatement_is_entailed_whatever_the_model_says():
    r = _check("The controller shall notify the personal data breach to the supervisory authority.",
               FixedModel(0.1, 0.8))
    assert r.label == "entailed" and r.basis == "restatement"
    assert r.support is not None and r.support.text == BREACH


def test_a_model_entailment_does_not_survive_a_changed_figure():
    r = _check("The controller notifies the supervisory authority of a personal data breach within 10 days.",
               FixedModel(0.95, 0.01))
    assert r.label == "neutral" and "10 days" in r.note


def test_a_claim_that_widens_the_scope_to_everyone_is_not_entailed_by_a_narrower_clause():
    fria = ("Deployers that are bodies governed by public law, or are private entities providing public services, "
            "shall perform an assessment of the impact on fundamental rights.")
    d = differences("Every employer using a high-risk AI system has to carry out a fundamental rights impact "
                    "assessment.", fria)
    assert [x.kind for x in d] == ["scope"] and "every employer" in d[0].detail.lower()
    assert not differences("All providers must keep the documentation for 10 years.",
                           "All providers shall keep the documentation for 10 years.")


# ------------------------------------------------------------------ qualifiers a claim may drop (session 4)

TESTING = ("Member States shall allow the placing on the market of prototype devices which do not yet comply, "
           "provided that the device is offered only for a limited trial period needed for user testing and carries "
           "a visible label stating that it does not comply.")
APPLY = "This Act shall apply from 1 March 2031."
APPLY_CLAUSE = APPLY + "\n\nHowever:\n\n(a) Title II shall apply from 1 March 2029;"


def test_a_claim_that_drops_a_substantive_condition_is_not_entailed_by_the_sentence():
    assert "condition" in kinds("Prototype devices that do not comply may be placed on the market.", TESTING)
    # a claim that states the condition in its own words keeps it
    assert "condition" not in kinds("Non-compliant prototypes may be sold provided they are offered only for a "
                                    "limited trial period for user testing, with a visible label.", TESTING)


def test_an_only_restriction_counts_even_when_the_claim_words_a_condition_of_its_own():
    assert "condition" in kinds("Non-compliant prototypes can be sold as long as they carry a visible label.",
                                TESTING)


def test_a_short_qualifier_like_where_feasible_is_not_a_condition_a_claim_must_repeat():
    assert "condition" not in kinds("The controller notifies the supervisory authority of a personal data breach "
                                    "within 72 hours of becoming aware of it.", BREACH)


def test_two_caps_combined_the_other_way_or_not_at_all():
    cap = ("Infringements are subject to fines of up to EUR 8 000 000 or, if the offender is an undertaking, up to "
           "3 % of its total worldwide annual turnover, whichever is higher.")
    assert "condition" in kinds("Fines reach EUR 8 million or 3 % of turnover.", cap)
    assert "polarity" in kinds("Fines reach EUR 8 million or 3 % of turnover, whichever is lower.", cap)
    assert differences("Fines can go up to EUR 8 million or 3 % of worldwide annual turnover, whichever is higher.",
                       cap) == []


def test_a_floor_claimed_for_a_cap_and_a_direction_reversed_confirm_a_contradiction():
    assert [d.kind for d in confirms_contradiction(
        "Fines are at least EUR 8 million for these infringements.",
        "Infringements are subject to administrative fines of up to EUR 8 000 000.")] == ["polarity"]
    assert "polarity" in kinds("Generative AI raises the barrier to writing malware.",
                               "Lowered barriers to writing malware and phishing messages.")


def test_a_rule_claimed_to_hold_always_or_for_any_case_widens_the_scope():
    assert "scope" in kinds("You can always extend the deadline by two months.",
                            "That period may be extended by two further months where necessary.")
    # "in any event" names no universal the claim could lean on
    assert "scope" in kinds("Any vulnerability must be reported within 24 hours.",
                            "an early warning of an actively exploited vulnerability, in any event within 24 hours")


def test_an_obligation_claimed_where_the_clause_leaves_a_choice_and_a_cant_where_it_allows():
    assert "modal" in kinds("Banks must notify every significant cyber threat to the authority.",
                            "Banks may, on a voluntary basis, notify significant cyber threats to the authority.")
    assert "modal" in kinds("Member States can't set a lower age.",
                            "Member States may provide by law for a lower age for those purposes.")


def test_an_answers_yes_or_no_and_framework_ids_are_not_part_of_what_it_claims():
    s = "Legal and regulatory requirements involving AI are understood, managed, and documented."
    assert differences("No. Under GOVERN 1.1 the legal requirements involving AI are understood and documented.",
                       s) == []
    assert differences("Correct - NIST AI 600-1 treats this as a risk of information integrity.",
                       "Information integrity is a risk.") == []


def test_a_claim_that_names_the_carve_out_says_what_shall_not_apply_says():
    assert "negation" not in kinds("The only exception is for tools that support a human assessment.",
                                   "this prohibition shall not apply to tools that support a human assessment")


def test_essential_and_important_entities_name_both_actors():
    assert "actor" not in kinds("Essential entities send the early warning within 24 hours.",
                                "Essential and important entities send an early warning within 24 hours.")


def test_a_bare_rule_the_clause_goes_on_to_make_exceptions_to_is_not_entailed():
    ev = [Evidence(unit_id="xa:art_9", doc="xa", rank=1, score=1.0, text=APPLY_CLAUSE)]

    class Sure:  # a model that reads support everywhere, to test the rule alone
        def predict(self, pairs):
            return [{"entailed": 0.99, "contradicted": 0.0, "neutral": 0.01} for _ in pairs]

    def check(text):
        c = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
        return check_claims([c], [ev], Sure(), entail_threshold=0.9, contradict_threshold=0.9)[0]

    bare = check("This Act applies from 1 March 2031.")
    assert bare.label == "neutral" and "exception" in bare.note
    assert check("This Act generally applies from 1 March 2031, some titles earlier.").label == "entailed"


def test_a_long_sentence_is_read_to_its_end():
    from mad_guardrails.verifier.claim_check import claim_premises

    long = ("The report shall be made immediately after the provider has established a causal link between the "
            "system and the incident or the reasonable likelihood of such a link, and, in any event, taking account "
            "of the severity of the incident and of the information then available to the provider and to the "
            "deployer, where applicable, not later than 15 days after the provider becomes aware of the incident.")
    ev = [Evidence(unit_id="xa:art_7.2", doc="xa", rank=1, score=1.0, text=long)]
    prem = [s for _, s in claim_premises(ev, max_words=30)]
    assert len(prem) > 1 and all(s in long for s in prem) and any("15 days" in s for s in prem)


def test_a_claim_that_names_an_act_is_settled_by_that_acts_clauses_only():
    """A NIS2 clause on NIS2's fines neither refutes nor confirms a claim about GDPR fines; a GDPR clause does."""
    nis2 = ("Essential entities are subject to fines of a maximum of at least 2 % of the total worldwide annual "
            "turnover, whichever is higher.")
    text = "The maximum GDPR fine is 2 % of annual turnover, whichever is lower."
    claim = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
    ev = [Evidence(unit_id="nis2:art_34.4", doc="nis2", rank=1, score=1.0, text=nis2)]
    for model in (FixedModel(0.02, 0.97), FixedModel(0.97, 0.02)):
        got = check_claims([claim], [ev], model, entail_threshold=0.9, contradict_threshold=0.7)[0]
        assert got.label == "neutral" and "gdpr" in got.note, got
    gdpr = ev + [Evidence(unit_id="gdpr:art_83.4", doc="gdpr", rank=2, score=0.9,
                          text="Infringements shall be subject to fines up to 2 % of the total worldwide annual "
                               "turnover, whichever is higher.")]
    got = check_claims([claim], [gdpr], FixedModel(0.02, 0.97), entail_threshold=0.9, contradict_threshold=0.7)[0]
    assert got.label == "contradicted" and got.against.doc_id == "gdpr:art_83.4"


def test_a_claim_that_names_no_act_is_settled_by_the_acts_the_case_names():
    """Answering a question about NIS2 without naming it: a DORA sentence that reads the same does not support the
    claim; a NIS2 one does."""
    from mad_guardrails.verifier.claim_check import scope_acts

    text = "You send a final report once the root cause analysis is done."
    claim = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
    dora = Evidence(unit_id="dora:art_19.4", doc="dora", rank=1, score=1.0,
                    text="a final report, when the root cause analysis has been completed.")
    scope = scope_acts(text, "after a big incident under nis2, is there more paperwork?")
    got = check_claims([claim], [[dora]], FixedModel(0.97, 0.02), entail_threshold=0.9, contradict_threshold=0.7,
                       scope=scope)[0]
    assert scope == {"nis2"} and got.label == "neutral" and "nis2" in got.note, got
    nis2 = Evidence(unit_id="nis2:art_23.4.d", doc="nis2", rank=2, score=0.9,
                    text="a final report not later than one month after the submission of the incident notification.")
    got = check_claims([claim], [[dora, nis2]], FixedModel(0.97, 0.02), entail_threshold=0.9,
                       contradict_threshold=0.7, scope=scope)[0]
    assert got.label == "entailed" and got.support.doc_id == "nis2:art_23.4.d", got
    assert check_claims([claim], [[dora]], FixedModel(0.97, 0.02), entail_threshold=0.9,
                        contradict_threshold=0.7)[0].label == "entailed"  # no scope: any act


def test_a_recitals_should_does_not_confirm_a_contradiction_of_modality():
    """Recitals explain with 'should' / 'may'; only an article's modality can refute "NIS2 requires ..."."""
    claim = "NIS2 requires you to encrypt all of your data."
    recital = "Entities may apply encryption to their data where anonymisation may affect the purpose pursued."
    assert [d.kind for d in confirms_contradiction(claim, recital, "nis2:art_21.2")] == ["modal"]
    assert confirms_contradiction(claim, recital, "nis2:rct_121") == []


def test_a_report_sent_to_another_authority_or_a_duty_put_on_another_role_is_a_checked_difference():
    assert "actor" in kinds("Under GDPR the controller notifies the CSIRT within 72 hours.", BREACH)
    assert "actor" not in kinds("The controller tells the data protection authority within 72 hours.", BREACH)
    board = ("The management bodies of essential and important entities shall approve the cybersecurity "
             "risk-management measures and can be held liable for infringements.")
    assert "actor" in kinds("The CISO carries the ultimate responsibility for approving the measures.", board)
    assert "actor" not in kinds("The board has to approve the cybersecurity measures.", board)


def test_a_figure_of_the_general_rule_is_not_refuted_by_the_exception_to_it():
    """A claim stating a paragraph's general deadline is not contradicted by a later paragraph that derogates from it
    ("Notwithstanding paragraph 2 ..."); a figure taken from a paragraph that is no exception still is."""
    general = ("2. The report shall be made no later than 20 days after the operator becomes aware of the "
               "malfunction.")
    exception = ("4. Notwithstanding paragraph 2, where the malfunction endangers life, the report shall be made no "
                 "later than 5 days after the operator becomes aware of it.")
    neighbour = "5. Operators shall keep the reports for 8 years after the malfunction."
    texts = {"eu-ai-act:art_90.2": general, "eu-ai-act:art_90.4": exception, "eu-ai-act:art_90.5": neighbour}
    text = "The operator must make the report no later than 20 days after becoming aware of the malfunction."
    claim = OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)
    for unit in ("eu-ai-act:art_90.4", "eu-ai-act:art_90.5"):
        ev = [Evidence(unit_id=unit, doc="eu-ai-act", rank=1, score=1.0, text=texts[unit])]
        got = check_claims([claim], [ev], FixedModel(0.02, 0.97), entail_threshold=0.9, contradict_threshold=0.7,
                           lookup=texts.get)[0]
        assert got.label == ("neutral" if unit.endswith(".4") else "contradicted"), (unit, got)
    # without the article's text the exception cannot be told apart: the figure confirms, as before
    ev = [Evidence(unit_id="eu-ai-act:art_90.4", doc="eu-ai-act", rank=1, score=1.0, text=exception)]
    assert check_claims([claim], [ev], FixedModel(0.02, 0.97), entail_threshold=0.9,
                        contradict_threshold=0.7)[0].label == "contradicted"


def test_inflections_count_as_the_same_words_so_a_changed_period_against_them_confirms():
    """"testing the recovery plans" and "test the recovery plan" share their words; a claim that stretches the
    clause's yearly test to every four years is then a confirmed number difference."""
    clause = "(b) test the ICT recovery plans and the backup procedures at least yearly"
    claim = "Testing your ICT recovery plan every four years is enough."
    assert coverage(claim, clause) >= 0.5
    assert [d.kind for d in confirms_contradiction(claim, clause)] == ["number"]


def test_a_bare_number_the_clause_states_with_its_unit_is_stated():
    clause = "Member States may set a lower age by law, provided that such lower age is not below 16 years."
    assert "unstated_number" not in kinds("Member States can lower the age, but not under 16.", clause)
    assert "unstated_number" in kinds("Member States can lower the age, but not under 14.", clause)


def test_a_short_answer_borrows_its_subject_from_the_question_to_confirm_a_changed_figure():
    clause = ("Financial entities shall carry out advanced testing by means of threat-led penetration testing at "
              "least every 3 years.")
    answer = "At least once every five years, unless the supervisor asks for it sooner."
    assert confirms_contradiction(answer, clause) == []  # on its own the answer shares too little with the clause
    question = "How often must a bank run threat-led penetration testing?"
    assert [d.kind for d in confirms_contradiction(answer, clause, question=question)] == ["number"]
    # the question supplies words, never differences: it cannot turn an answer that states the figure into one
    assert confirms_contradiction("At least once every three years.", clause,
                                  question="Is it true that it is only every five years?") == []


def test_a_claim_read_under_a_condition_the_clause_does_not_set_is_not_entailed():
    """"Where a request is large, you may charge a fee" is not the rule "for further copies, a fee may be charged"
    however sure the model is; a condition the clause states in other words is no added condition."""
    fee = "For any further copies requested by the person, the controller may charge a reasonable fee."
    r = _check("Where a request is large or burdensome, you may charge the person a reasonable fee.",
               FixedModel(0.97, 0.01), fee)
    assert r.label == "neutral" and "adds a condition" in r.note
    r = _check("If the person requests further copies, the controller may charge a reasonable fee.",
               FixedModel(0.97, 0.01), fee)
    assert r.label == "entailed"


def test_a_default_stated_without_the_member_state_option_further_on_is_not_entailed():
    """A paragraph that sets an age and, a subparagraph later, lets Member States lower it: "a child under 15 needs
    a parent" states the default as the rule everywhere; "by default" or naming the Member States' choice does not.
    An option in the next numbered paragraph belongs to another rule."""
    from mad_guardrails.verifier.claim_signals import exception_follows

    after = (" Below that age, a parent must give or authorise the consent.\n\nMember States may provide by law for a "
             "lower age, not below 12 years.\n\n2. The controller shall verify the consent.")
    assert exception_follows("A child under 15 needs a parent to authorise the consent.", after)
    assert not exception_follows("By default a child under 15 needs a parent to authorise the consent.", after)
    assert not exception_follows("A child under 15 needs a parent to authorise it; Member States can set a lower "
                                 "age.", after)
    assert not exception_follows("A child under 15 needs a parent to authorise the consent.",
                                 " Below that age, a parent must consent.\n\n2. Member States may provide for checks.")


def test_a_finding_the_text_reports_is_not_a_rule_or_standard_it_sets():
    """"Studies suggest X" does not support "the framework sets a standard benchmark of X"; restating the finding
    as a finding is no difference."""
    found = "Some studies suggest that one training run can use as much water as a small town in a year."
    assert "scope" in kinds("The profile sets a standard benchmark: one training run uses a small town's yearly "
                            "water.", found)
    assert "scope" not in kinds("Studies cited there suggest one training run can use as much water as a small "
                                "town in a year.", found)


def test_a_degree_on_what_the_law_leaves_to_you_is_a_claim_to_read():
    """"It leaves the method largely to you" says how far the law goes: it is read, not skipped as small talk."""
    from mad_guardrails.verifier.claims import classify

    assert classify("Beyond that, it leaves the recovery method largely to you.") == (True, "")
    assert classify("Beyond that, the rest is largely a matter of taste.")[0] is False
