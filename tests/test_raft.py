"""RAFT examples for the coordinator: oracle + distractors, oracle dropping, verifier filter, contract targets."""

from __future__ import annotations

import asyncio

import pytest

from mad_guardrails.agents.backends.fake import FakeBackend
from mad_guardrails.agents.parsing import parse_coordinator
from mad_guardrails.agents.training.cases import CoordCase, cases_from_rule_examples, disjoint_from
from mad_guardrails.agents.training.raft import (
    Candidate,
    DistractorPool,
    RaftConfig,
    _same_article,
    best_sentence,
    build_items,
    demo_answer,
    extractive_answer,
    item_messages,
    pick_demos,
    read_candidates,
    render_contract,
    sample_candidates,
    score_answer,
    select_examples,
    with_demo,
)
from mad_guardrails.core.debate import Case
from mad_guardrails.core.units import id_covers
from mad_guardrails.guardrails.commands.train_coordinator import corpus_verifier
from mad_guardrails.policies.schema import KeyFact, Rule, RuleExample

RULES = [
    Rule(id="nis2.early_warning", title="Early warning within 24 hours", kind="reporting_deadline",
         summary="Send the early warning within 24 hours.", provisions=["nis2:art_23.2"], severity="high",
         default_action="block", key_facts=[KeyFact(name="early warning deadline", value=24, unit="hours",
                                                    provision="nis2:art_23.2", terms=["early warning"])],
         examples=[RuleExample(text="The early warning can wait 72 hours.", label="violates"),
                   RuleExample(text="Send the early warning within 24 hours.", label="respects")], act="nis2"),
    Rule(id="gdpr.breach", title="Breach notification in 72 hours", kind="reporting_deadline",
         summary="Notify the authority within 72 hours.", provisions=["gdpr:art_33.1"], default_action="flag",
         examples=[RuleExample(text="Tell the authority within a week.", label="violates")], act="gdpr"),
    Rule(id="nis2.measures", title="Risk-management measures", kind="obligation", summary="Take measures.",
         provisions=["nis2:art_21.1"], act="nis2"),
]
RULE = {r.id: r for r in RULES}.get


@pytest.fixture()
def verifier(tiny_corpus):
    from mad_guardrails.policies.loader import rule_text

    return corpus_verifier(tiny_corpus.get, lambda rid: rule_text(RULE(rid)) if RULE(rid) else None)


def _cases(n: int) -> list[CoordCase]:
    oracles = ["nis2:art_23.2", "gdpr:art_33.1", "nis2:art_21.1"]
    rules = ["nis2.early_warning", "gdpr.breach", "nis2.measures"]
    return [CoordCase(id=f"c{i}", case=Case(output=f"output {i}"), rules=[rules[i % 3]], oracle=[oracles[i % 3]],
                      expected="allow") for i in range(n)]


def _items(tiny_corpus, n=10, **cfg):
    cfg = RaftConfig(**{"k_distractors": 3, "p_drop_oracle": 0.3, "min_chars": 20, "max_chars": 2000, **cfg})
    pool = DistractorPool(tiny_corpus, cfg)
    return build_items(_cases(n), tiny_corpus.get, pool, RULE, RULES, cfg)


def test_cases_from_rule_examples_and_disjoint_split(tiny_corpus):
    cases = cases_from_rule_examples(RULES, known=lambda u: tiny_corpus.get(u) is not None)
    assert [(c.id, c.expected) for c in cases] == [("rule:nis2.early_warning:0", "block"),
                                                   ("rule:nis2.early_warning:1", "allow"),
                                                   ("rule:gdpr.breach:0", "flag")]
    held = [CoordCase(id="h", case=Case(output="x"), rules=["other"], oracle=["nis2:art_23"])]
    # nis2:art_23 encloses nis2:art_23.2: the early-warning cases must leave the training set
    assert [c.id for c in disjoint_from(cases, held)] == ["rule:gdpr.breach:0"]


def test_oracle_dropped_in_the_configured_share_and_distractors_are_other_units(tiny_corpus):
    items = _items(tiny_corpus, n=10)
    dropped = [it for it in items if not it.oracle_present]
    assert len(items) == 10 and len(dropped) == 3  # round(0.3 * 10)
    for it in items:
        shown = [e.unit_id for e in it.evidence]
        assert len(shown) == len(set(shown))
        oracle_shown = [u for u in shown if u in it.oracle_ids]
        distractors = [u for u in shown if u not in it.oracle_ids]
        if it.oracle_present:
            assert oracle_shown == it.oracle_ids and len(distractors) == 3
        else:
            assert oracle_shown == [] and len(distractors) == 3 + len(it.oracle_ids)
        for d in distractors:  # never the oracle, a part of it, or its article
            assert not any(id_covers(o, d) or id_covers(d, o) for o in it.oracle_ids)
            assert not any(_same_article(d, o) for o in it.oracle_ids)
        assert [e.rank for e in it.evidence] == list(range(1, len(shown) + 1))
        assert it.gold and it.gold[0].startswith(tiny_corpus.get(it.oracle_ids[0]).text[:20])
    # deterministic for a seed, different for another
    again = _items(tiny_corpus, n=10)
    assert [it.model_dump() for it in again] == [it.model_dump() for it in items]
    other = _items(tiny_corpus, n=10, seed=1)
    assert [it.model_dump() for it in other] != [it.model_dump() for it in items]


def test_prompt_is_the_coordinator_contract(tiny_corpus):
    it = _items(tiny_corpus, n=1, p_drop_oracle=0.0)[0]
    msgs = item_messages(it, RULE)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "EVIDENCE:" in msgs[0]["content"] and "ANSWER:" in msgs[0]["content"]
    for e in it.evidence:
        assert f"[{e.unit_id}]" in msgs[1]["content"]
    assert "nis2.early_warning" in msgs[1]["content"]


def test_render_contract_round_trips():
    text = ('EVIDENCE:\n[nis2:art_23.2] "within 24 hours of becoming aware"\nANSWER:\ndecision: block\nviolations:\n'
            "- rule: nis2.early_warning | provisions: nis2:art_23.2 | severity: high | explanation: says 72 h\n"
            "rationale: The output gives 72 hours.\nconfidence: 0.8")
    out = parse_coordinator(text)
    again = parse_coordinator(render_contract(out))
    assert again.model_dump(exclude={"raw"}) == out.model_dump(exclude={"raw"})
    assert render_contract(out) == text


def _answer(uid: str, quote: str, decision: str = "allow") -> str:
    return (f'EVIDENCE:\n[{uid}] "{quote}"\nANSWER:\ndecision: {decision}\nviolations: none\n'
            "rationale: checked against the evidence.\nconfidence: 0.7")


def test_verifier_filter_scores_candidates(tiny_corpus, verifier):
    it = next(i for i in _items(tiny_corpus, n=10) if i.oracle_present and i.oracle_ids == ["nis2:art_23.2"])
    oracle_text = tiny_corpus.get("nis2:art_23.2").text
    exact = "The early warning shall be sent within 24 hours"
    assert exact in oracle_text
    good = score_answer(it, _answer("nis2:art_23.2", exact), verifier, RULE)
    assert good.keep and good.strict == 1.0 and good.citation == 1.0 and good.oracle_share == 1.0
    assert not good.refusal and good.rouge_l > 0.3
    near = score_answer(it, _answer("nis2:art_23.2", exact.replace("shall be sent", "is sent")), verifier, RULE)
    assert not near.keep and near.strict == 0.0
    wrong_id = next(e.unit_id for e in it.evidence if e.unit_id not in it.oracle_ids)
    slip = score_answer(it, _answer(wrong_id, exact), verifier, RULE)  # right quote, wrong [doc_id]
    assert not slip.keep and slip.citation == 0.0
    junk = score_answer(it, "I think it is fine.", verifier, RULE)
    assert not junk.parsed and junk.refusal and not junk.keep
    empty = score_answer(it, "EVIDENCE:\nnone\nANSWER:\ndecision: flag\nviolations: none\nrationale: no evidence.\n"
                             "confidence: 0.2", verifier, RULE)
    assert empty.parsed and empty.refusal and not empty.keep
    assert good.composite > near.composite > junk.composite


def test_select_keeps_top_k_verified_targets(tiny_corpus, verifier):
    items = [i for i in _items(tiny_corpus, n=6, p_drop_oracle=0.0)]
    cands = []
    for it in items:
        o = it.oracle_ids[0]
        words = tiny_corpus.get(o).text.split()
        cands += [Candidate(item_id=it.id, i=0, text=_answer(o, " ".join(words[1:9]) + " altered")),
                  Candidate(item_id=it.id, i=1, text=_answer(o, " ".join(words[1:9]))),
                  Candidate(item_id=it.id, i=2, text=_answer(o, " ".join(words[1:5])))]
    examples, stats = select_examples(items, cands, verifier, lambda it: item_messages(it, RULE), rules=RULE,
                                      top_k=1)
    assert stats.candidates == 18 and stats.items_with_kept == 6 and len(examples) == 6
    assert stats.reasons.get("strict") == 6
    for ex in examples:
        assert ex.id.endswith(("#1", "#2"))
        out = parse_coordinator(ex.target)  # the target follows the contract
        assert out.evidence and out.evidence[0].doc_id in ex.messages[1]["content"]
        assert ex.target.startswith("EVIDENCE:\n[")
    capped, _ = select_examples(items, cands, verifier, lambda it: item_messages(it, RULE), top_k=2,
                                max_examples=5)
    assert len(capped) == 5


def test_sample_candidates_resumes(tiny_corpus, tmp_path):
    items = _items(tiny_corpus, n=3)
    backend = FakeBackend(lambda msgs, kw: f"answer seed {kw['seed']}")
    out = tmp_path / "candidates.jsonl"
    msgs = lambda it: item_messages(it, RULE)  # noqa: E731
    cands = asyncio.run(sample_candidates(items, msgs, backend, "m", out, n=2, seed=5, progress=False))
    assert len(cands) == 6 and len(backend.calls) == 6
    assert sorted({c.seed for c in cands}) == [5000, 5001]
    again = asyncio.run(sample_candidates(items, msgs, backend, "m", out, n=2, seed=5, progress=False))
    assert len(again) == 6 and len(backend.calls) == 6  # nothing asked twice
    more = asyncio.run(sample_candidates(items, msgs, backend, "m", out, n=3, seed=5, progress=False))
    assert len(more) == 9 and len(backend.calls) == 9
    assert len(read_candidates(out)) == 9


def test_best_sentence_is_a_verbatim_clause():
    text = "1. First sentence about logs and storage.\n\n2. The early warning shall be sent within 24 hours; then more."
    s = best_sentence(text, "when is the early warning due, 24 hours?")
    assert s == "The early warning shall be sent within 24 hours" and s in text
    assert best_sentence(text, "x", max_words=2) in (None, "First sentence")
    long = "(a) " + " ".join(f"w{i}" for i in range(60)) + "."
    cut = best_sentence(long, "w3", max_words=10)
    assert cut == " ".join(f"w{i}" for i in range(10)) and cut in long


def test_extractive_teacher_answers_pass_the_verifier(tiny_corpus, verifier):
    items = _items(tiny_corpus, n=10)
    for it in items:
        text = extractive_answer(it, RULE)
        s = score_answer(it, text, verifier, RULE)
        assert s.keep, (it.id, s.reason, text)
        out = parse_coordinator(text)
        assert out.decision == ("allow" if it.oracle_present else "flag")
        assert bool(s.oracle_share) == it.oracle_present
    # no kept candidate at all: the fallback fills every item, and says so
    examples, stats = select_examples(items, [Candidate(item_id=items[0].id, i=0, text="junk")], verifier,
                                      lambda it: item_messages(it, RULE), rules=RULE, fallback="extractive")
    assert stats.extractive_items == 10 and stats.by_source == {"self": 0, "extractive": 10}
    assert {e.source for e in examples} == {"extractive"} and len(examples) == 10


def test_teacher_demo_prompt(tiny_corpus, verifier):
    items = _items(tiny_corpus, n=6, p_drop_oracle=0.0)
    demo = pick_demos(items, k=1)[0]
    texts = {e.unit_id: e.text for e in demo.evidence}
    answer = demo_answer(demo, texts.get, RULE)
    assert score_answer(demo, answer, verifier, RULE).keep
    msgs = with_demo(item_messages(items[1], RULE), item_messages(demo, RULE), answer)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == answer and msgs[3] == item_messages(items[1], RULE)[1]
