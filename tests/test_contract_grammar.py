"""The contract grammar (agents/grammar.py): it offers only the sentences shown and accepts the contract and nothing
else; the self-distillation teacher and the coordinator's ``grammar`` mode pass it to the backend; backends that
cannot constrain refuse; the teacher's label filter."""

from __future__ import annotations

import asyncio

import pytest

from mad_guardrails.agents.backends.fake import FakeBackend
from mad_guardrails.agents.grammar import contract_grammar, grammar_accepts, grammar_error, quotable
from mad_guardrails.agents.training.raft import item_messages, render_contract, sample_candidates, select_examples
from mad_guardrails.core.debate import CoordinatorOutput, ProposedViolation, Quote
from mad_guardrails.core.errors import BackendError
from tests import test_raft
from tests.test_raft import RULE, _items

verifier = test_raft.verifier  # the same fixture

pytest.importorskip("llguidance")


def _answer(item, doc: str, quote: str, decision: str = "allow", rule: str | None = None) -> str:
    viol = [] if rule is None else [ProposedViolation(rule_id=rule, provisions=[doc], severity="high",
                                                      explanation="The output gives the wrong deadline.")]
    return render_contract(CoordinatorOutput(evidence=[Quote(doc_id=doc, text=quote)], decision=decision,
                                             violations=viol, rationale="The quoted provision settles the case.",
                                             confidence=0.7))


def test_grammar_compiles_and_offers_the_shown_sentences(tiny_corpus):
    for item in _items(tiny_corpus, n=6):
        g = contract_grammar(item.evidence, item.rule_ids)
        assert grammar_error(g) is None
        docs = quotable(item.evidence)
        assert set(docs) <= {e.unit_id for e in item.evidence} and docs
        for uid, sents in docs.items():
            text = next(e.text for e in item.evidence if e.unit_id == uid)
            assert all(s in text for s in sents)  # verbatim by construction


def test_grammar_accepts_the_contract_and_nothing_else(tiny_corpus):
    item = _items(tiny_corpus, n=3, p_drop_oracle=0.0)[0]
    g = contract_grammar(item.evidence, item.rule_ids)
    uid, sents = next(iter(quotable(item.evidence).items()))
    rule = item.rule_ids[0]
    assert grammar_accepts(g, _answer(item, uid, sents[0]))
    assert grammar_accepts(g, _answer(item, uid, sents[0], "block", rule))
    assert not grammar_accepts(g, _answer(item, uid, sents[0] + " and more words"))  # not a shown sentence
    assert not grammar_accepts(g, _answer(item, "gdpr:art_99.9", sents[0]))  # not a shown document
    assert not grammar_accepts(g, _answer(item, uid, sents[0], "block", "no.such.rule"))
    assert not grammar_accepts(g, _answer(item, uid, sents[0], "allow", rule))  # allow carries no violation
    assert not grammar_accepts(g, "Sure! Here is my answer: allow")


def test_sampling_sends_the_grammar_and_backends_without_grammars_refuse(tiny_corpus, tmp_path):
    items = _items(tiny_corpus, n=2)
    backend = FakeBackend(lambda msgs, kw: "x")
    asyncio.run(sample_candidates(items, lambda it: item_messages(it, RULE), backend, "m", tmp_path / "c.jsonl",
                                  n=2, grammar=lambda it: contract_grammar(it.evidence, it.rule_ids), progress=False))
    assert len(backend.calls) == 4 and all(c["grammar"].startswith("start:") for c in backend.calls)
    # per item: the first sample is asked alone, before the others (a server's prefix cache reuses its prompt)
    assert [c["seed"] for c in backend.calls[:2]] == [0, 0]
    plain = FakeBackend(lambda msgs, kw: "x")
    plain.supports_grammar = False
    with pytest.raises(BackendError, match="cannot constrain"):
        asyncio.run(plain.chat([{"role": "user", "content": "hi"}], grammar="start: \"a\""))


def test_require_decision_keeps_only_the_labelled_decision(tiny_corpus, verifier):
    from mad_guardrails.agents.training.raft import Candidate

    item = _items(tiny_corpus, n=3, p_drop_oracle=0.0)[0]
    oracle = item.oracle_ids[0]
    quote = quotable(item.evidence)[oracle][0]
    good = _answer(item, oracle, quote, item.expected)
    bad = _answer(item, oracle, quote, "block", item.rule_ids[0])
    cands = [Candidate(item_id=item.id, i=0, text=bad), Candidate(item_id=item.id, i=1, text=good)]
    def msgs(it):
        return item_messages(it, RULE)

    ex, stats = select_examples([item], cands, verifier, msgs, rules=RULE, require_decision=True)
    assert [e.id for e in ex] == [f"{item.id}#1"] and stats.reasons == {"decision differs from the case's label": 1}
    ex_any, _ = select_examples([item], cands, verifier, msgs, rules=RULE)
    assert len(ex_any) == 1  # without the label filter both pass; the better composite (right decision) is kept


def test_coordinator_grammar_mode_constrains_the_first_attempt_only():
    from mad_guardrails.agents.coordinator import Coordinator
    from tests.test_agents import CASE, EV, GOOD_TEXT, RULES

    b = FakeBackend(["not the contract", GOOD_TEXT])
    res = asyncio.run(Coordinator(b, "coordinator", mode="grammar").decide(CASE, EV, RULES, []))
    assert res.output is not None and res.output.decision == "block" and res.repaired
    first, repair = b.calls
    assert first["grammar"] == contract_grammar(EV, [r.id for r in RULES]) and first["json_schema"] is None
    assert repair["grammar"] is None and repair["json_schema"] is not None  # the repair is JSON-constrained


def test_coordinator_grammar_mode_without_grammar_support_answers_as_auto(caplog):
    from mad_guardrails.agents.coordinator import Coordinator
    from tests.test_agents import CASE, EV, GOOD_TEXT, RULES

    b = FakeBackend([GOOD_TEXT])
    b.supports_grammar = False
    res = asyncio.run(Coordinator(b, "coordinator", mode="grammar").decide(CASE, EV, RULES, []))
    assert res.output is not None and b.calls[0]["grammar"] is None and "has no grammars" in caplog.text


def test_without_rules_shown_no_violation_can_be_written(tiny_corpus):
    item = _items(tiny_corpus, n=3, p_drop_oracle=0.0)[0]
    g = contract_grammar(item.evidence, [])
    assert grammar_error(g) is None
    uid, sents = next(iter(quotable(item.evidence).items()))
    assert grammar_accepts(g, _answer(item, uid, sents[0], "flag"))
    assert not grammar_accepts(g, _answer(item, uid, sents[0], "block", "none"))
