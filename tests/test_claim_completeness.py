"""What a pairwise reading of (clause sentence, claim) cannot see, read deterministically: a degree the answer puts on
the rule ("mainly", "mostly"), a time it leaves open where the clause sets a deadline, a verdict given with a degree
("Mostly not."), and a list the question asks for of which the answer names only part. Each only keeps a claim from
being entailed (the debate or a reviewer decides); none of them blocks. The texts are written for these tests."""

from __future__ import annotations

import pytest

from mad_guardrails.core.claims import OutputClaim
from mad_guardrails.core.units import Evidence
from mad_guardrails.verifier.claim_check import check_claims
from mad_guardrails.verifier.claim_signals import CONFIRMING, differences
from mad_guardrails.verifier.claims import split_claims
from mad_guardrails.verifier.completeness import asks_for_list, left_out, list_items

RISK = ("Harmful bias and homogenization: amplification and exacerbation of historical, societal, and systemic "
        "biases; performance disparities between sub-groups or languages; and undesired homogeneity of outputs.")
FINAL_REPORT = "a final report not later than one month after the submission of the incident notification"
CONTENTS = ("2. The notice shall at least:\n"
            "- (a) state the name of the product and its version;\n"
            "- (b) give the contact point where users can report vulnerabilities;\n"
            "- (c) explain how long security updates will be provided;\n"
            "- (d) set out the steps users should take to install updates.")


class Always:
    """The same probabilities for every pair (control flow only)."""

    def __init__(self, e: float, c: float):
        self.p = {"entailed": e, "contradicted": c, "neutral": max(0.0, 1 - e - c)}

    def predict(self, pairs):
        return [dict(self.p) for _ in pairs]


def _claim(text: str) -> OutputClaim:
    return OutputClaim(index=0, text=text, start=0, end=len(text), regulatory=True)


def _ev(text: str, unit: str = "cra:art_99.2") -> Evidence:
    return Evidence(unit_id=unit, doc=unit.split(":")[0], rank=1, score=1.0, text=text)


def check(text: str, clause: str, *, question: str = "", answer: str = "", model=None):
    return check_claims([_claim(text)], [[_ev(clause)]], model or Always(0.97, 0.02), entail_threshold=0.9,
                        contradict_threshold=0.7, question=question, answer=answer)[0]


@pytest.mark.parametrize("claim", [
    "The risk is mainly about offensive chatbot outputs.",
    "It largely covers biases in outputs.",
    "Bias in the profile is more or less about homogeneous outputs.",
])
def test_a_degree_the_clause_does_not_state_keeps_the_claim_from_being_entailed(claim):
    assert "scope" in [d.kind for d in differences(claim, RISK)]
    r = check(claim, RISK)
    assert r.label == "neutral" and "qualifies" in r.note, r


def test_a_degree_the_clause_states_too_is_no_difference_and_never_confirms_a_contradiction():
    assert differences("Outputs are mostly homogeneous.", "outputs that are mostly homogeneous") == []
    assert "scope" not in CONFIRMING and "time" not in CONFIRMING
    r = check("The risk is mainly about offensive outputs.", RISK, model=Always(0.02, 0.95))
    assert r.label == "neutral", r  # a qualifier alone never blocks


def test_an_open_time_where_the_clause_sets_a_deadline_is_not_entailed():
    r = check("At some point down the line you send a final report.", FINAL_REPORT)
    assert r.label == "neutral" and "leaves the time open" in r.note, r
    # the same wording against a sentence that sets no time is no difference
    assert [d.kind for d in differences("At some point you send a final report.",
                                        "The final report shall include a detailed description of the incident.")
            ] == []


def test_a_verdict_given_with_a_degree_is_a_claim_no_clause_settles():
    claims = split_claims("Mostly not. Small firms are exempt from the ICT risk articles.")
    assert [c.regulatory for c in claims] == [True, True]
    r = check_claims([claims[0]], [[_ev("Articles 5 to 15 shall not apply to small firms.", "dora:art_16.1")]],
                     Always(0.97, 0.02), entail_threshold=0.9, contradict_threshold=0.7)[0]
    assert r.label == "neutral" and r.pairs == 0 and "qualifies its verdict" in r.note, r
    r = check_claims([claims[0]], [[_ev("Articles 5 to 15 shall apply to all firms.", "dora:art_16.1")]],
                     Always(0.02, 0.99), entail_threshold=0.9, contradict_threshold=0.7)[0]
    assert r.label == "neutral", r  # what "Mostly not." means depends on the question: never a contradiction
    assert not split_claims("Sure!")[0].regulatory


def test_questions_that_ask_for_a_list_and_ones_that_do_not():
    assert asks_for_list("What information has to go into the notice?")
    assert asks_for_list("Which options does the framework give for high risks?")
    assert asks_for_list("List the duties of importers")
    assert not asks_for_list("Do we have to publish the notice?")
    assert not asks_for_list("How long do we have to reply?")
    assert not asks_for_list(None)


def test_list_items_are_lettered_points_else_a_series_in_the_supporting_sentence():
    assert [x.split()[0] for x in list_items(CONTENTS)] == ["state", "give", "explain", "set"]
    assert list_items("", "Responses can include fixing, insuring, dropping, or keeping the feature.") == [
        "fixing", "insuring", "dropping", "keeping the feature"]
    assert list_items("One rule only.", "Providers shall keep logs.") == []


def test_an_answer_naming_part_of_the_list_the_question_asks_for_is_not_entailed():
    q = "What information has to go into the security notice?"
    answer = "The notice states the product name and version and tells users how long they get security updates."
    assert [x.split()[0] for x in left_out(q, answer, CONTENTS, "")] == ["give", "set"]
    r = check(answer, CONTENTS, question=q)
    assert r.label == "neutral" and "leaves out" in r.note and "contact point" in r.note, r


def test_the_whole_list_examples_or_a_question_that_asks_for_no_list_keep_the_entailment():
    q = "What information has to go into the security notice?"
    whole = ("It names the product and version, gives a contact point for reporting vulnerabilities, says how long "
             "security updates are provided and sets out the steps to install them.")
    assert check(whole, CONTENTS, question=q).label == "entailed"
    example = "For example, it states the product name and version."
    assert check(example, CONTENTS, question=q).label == "entailed"
    assert check("It states the product name and version.", CONTENTS,
                 question="Does the notice have to name the product?").label == "entailed"


def test_the_other_sentences_of_the_answer_count_towards_the_list():
    q = "What information has to go into the security notice?"
    first = "The notice states the product name and version and how long security updates last."
    rest = " It also gives a contact point for vulnerability reports and the steps to install updates."
    assert check(first, CONTENTS, question=q, answer=first + rest).label == "entailed"


def _harm(decision: str = "block", risk: str = "risk_9"):
    from mad_guardrails.verifier.harm import HarmResult

    return HarmResult(label="harmful", probs={"harmful": 0.56, "partial": 0.1, "refusal": 0.04, "safe": 0.3},
                      score=0.66, risk=risk, decision=decision)


def _checks(*labels: str):
    from mad_guardrails.core.claims import ClaimCheck

    return [ClaimCheck(claim=_claim(f"claim {i}"), label=lab) for i, lab in enumerate(labels)]


def test_a_harm_block_on_an_answer_made_of_entailed_law_becomes_a_debate_never_an_allow():
    """The screen's reading of "notify an actively exploited vulnerability within 24 hours" as offensive cyber help
    does not block an answer at least half of whose claims a clause entails; the debate decides. A contradicted claim,
    a sentence the check cannot read, help to break a rule, or too little verified law keep the block."""
    from types import SimpleNamespace

    from mad_guardrails.guardrails.graph import harm_softened

    state = {"case": SimpleNamespace(output="Notify the CSIRT and ENISA within 24 hours.", query="")}
    assert harm_softened(_harm(), _checks("entailed", "neutral"), state)
    assert not harm_softened(_harm(), _checks("entailed", "neutral", "neutral"), state)
    assert not harm_softened(_harm(), _checks("entailed", "contradicted"), state)
    assert not harm_softened(_harm(), _checks("entailed"), {**state, "unchecked": ["Then run the exploit."]})
    assert not harm_softened(_harm(risk="regulatory"), _checks("entailed"), state)
    assert not harm_softened(_harm(), [], state)


def test_an_answers_short_verdict_does_not_keep_a_harm_block_on_verified_law():
    """"Likely not the patients." opens a correct answer on breach notification; the screen read the answer as
    harmful. A verdict that short carries no help of any kind, so it does not keep the block the way an unread
    instruction does."""
    from types import SimpleNamespace

    from mad_guardrails.guardrails.graph import harm_softened

    state = {"case": SimpleNamespace(output="Likely not the patients. You still have to record the breach.", query="")}
    assert harm_softened(_harm(), _checks("entailed", "neutral"), {**state, "unchecked": ["Likely not the patients."]})
    assert not harm_softened(_harm(), _checks("entailed", "neutral"),
                             {**state, "unchecked": ["Then wipe the laptop logs before anyone looks."]})
