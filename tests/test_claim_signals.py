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
