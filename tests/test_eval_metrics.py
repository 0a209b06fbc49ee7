"""Eval metrics on hand-made records: exact numbers for every metric family, per type and overall."""

from __future__ import annotations

import pytest

from mad_guardrails.evals.metrics import CaseRecord, CheckScore, compute_metrics, paired_wins, percentile, sign_test_p


def rec(cid, typ, expected, decision, *, system="s", latency=1.0, calls=0, pt=0, ct=0, failure=None, error=None,
        abstained=False, checks=None, n_quotes=0, rules=(), gold=None, set_="t"):
    return CaseRecord(system=system, case_id=cid, set=set_, type=typ, expected=expected, decision=decision,
                      latency_s=latency, llm_calls=calls, prompt_tokens=pt, completion_tokens=ct, failure=failure,
                      error=error, abstained=abstained, checks={k: CheckScore(status=v[0], score=v[1])
                                                                for k, v in (checks or {}).items()},
                      n_quotes=n_quotes, rules=list(rules), gold_rules=gold)


@pytest.fixture()
def records():
    return [
        # benign_sensitive, all expected allow: one false refusal (flag), one abstention
        rec("b1", "benign_sensitive", "allow", "allow", latency=1.0, calls=0, abstained=True),
        rec("b2", "benign_sensitive", "allow", "flag", latency=2.0, calls=4, pt=400, ct=40,
            checks={"citation_validity": ("pass", 1.0), "strict_verbatim": ("fail", 0.5),
                    "content_verbatim": ("pass", 1.0)}, n_quotes=2),
        rec("b3", "benign_sensitive", "allow", "allow", latency=3.0, calls=4, pt=400, ct=40),
        # adversarial: expected block / block / flag
        rec("a1", "adversarial", "block", "block", latency=4.0, calls=4, pt=800, ct=80, rules=["r1"], gold=["r1"],
            checks={"citation_validity": ("fail", 0.5), "strict_verbatim": ("pass", 1.0),
                    "content_verbatim": ("pass", 1.0)}, n_quotes=2),
        rec("a2", "adversarial", "block", "flag", latency=5.0, calls=4, pt=800, ct=80, failure="timeout",
            gold=["r2"]),
        rec("a3", "adversarial", "flag", "allow", latency=6.0, calls=4, pt=800, ct=80),
        # ambiguous: expected allow -> block (false intervention, not a false refusal: not benign)
        rec("m1", "ambiguous", "allow", "block", latency=7.0, calls=4, pt=400, ct=40, rules=["r9"],
            checks={"citation_validity": ("skipped", None)}),
        # a harness error: counted, excluded from every rate
        rec("e1", "ambiguous", "block", None, error="input: output is empty"),
    ]


def test_overall_numbers(records):
    m = compute_metrics(records)["s"]["overall"]
    assert (m["n"], m["errors"]) == (7, 1)
    # binary: right on b1, b3 (allow/allow), a1, a2 (intervene/intervene); wrong on b2, a3, m1
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["exact_accuracy"] == pytest.approx(3 / 7)  # b1, b3, a1
    # block: expected {a1, a2}; predicted {a1, m1} -> tp 1, fp 1, fn 1
    assert (m["block_tp"], m["block_fp"], m["block_fn"]) == (1, 1, 1)
    assert m["block_precision"] == pytest.approx(0.5) and m["block_recall"] == pytest.approx(0.5)
    assert m["block_f1"] == pytest.approx(0.5)
    # intervene: expected {a1, a2, a3}; predicted {b2, a1, a2, m1} -> tp 2, fp 2, fn 1
    assert (m["intervene_tp"], m["intervene_fp"], m["intervene_fn"]) == (2, 2, 1)
    assert m["intervene_precision"] == pytest.approx(0.5)
    assert m["intervene_recall"] == pytest.approx(2 / 3)
    assert m["intervene_f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert m["false_refusal_rate"] == pytest.approx(1 / 3)           # b2 of b1..b3
    assert m["false_intervention_rate"] == pytest.approx(2 / 4)      # b2, m1 of b1, b2, b3, m1
    assert m["failure_rate"] == pytest.approx(1 / 7)
    assert m["abstention_rate"] == pytest.approx(1 / 7)
    assert m["decisions"] == {"allow": 3, "flag": 2, "block": 2}
    # verifier: citation_validity ran on b2 (1.0, pass) and a1 (0.5, fail); skipped on m1
    assert m["citation_validity"] == pytest.approx(0.75) and m["citation_validity_pass"] == pytest.approx(0.5)
    assert m["citation_validity_n"] == 2
    assert m["strict_verbatim"] == pytest.approx(0.75) and m["strict_verbatim_pass"] == pytest.approx(0.5)
    assert m["content_verbatim"] == pytest.approx(1.0) and m["content_verbatim_pass"] == pytest.approx(1.0)
    assert m["cited_share"] == pytest.approx(2 / 7)
    # latency 1..7 s: p50 = 4, p95 = 6.7 (linear interpolation)
    assert m["latency_p50"] == pytest.approx(4.0) and m["latency_p95"] == pytest.approx(6.7)
    assert m["llm_calls"] == pytest.approx(24 / 7)
    assert m["prompt_tokens"] == pytest.approx(3600 / 7) and m["completion_tokens"] == pytest.approx(360 / 7)
    # a1 cites its gold rule, a2 does not; expected-allow cases with gold rules do not count
    assert m["rule_hit_rate"] == pytest.approx(0.5)


def test_per_type_numbers(records):
    m = compute_metrics(records)["s"]
    assert set(m) == {"overall", "benign_sensitive", "adversarial", "ambiguous", "set:t"}
    b = m["benign_sensitive"]
    assert (b["n"], b["accuracy"], b["false_refusal_rate"]) == (3, pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert b["block_precision"] is None and b["block_recall"] is None and b["block_f1"] is None  # nothing to count
    a = m["adversarial"]
    assert a["accuracy"] == pytest.approx(2 / 3) and a["exact_accuracy"] == pytest.approx(1 / 3)
    assert a["block_recall"] == pytest.approx(0.5) and a["block_precision"] == pytest.approx(1.0)
    assert a["intervene_recall"] == pytest.approx(2 / 3) and a["intervene_precision"] == pytest.approx(1.0)
    assert a["false_refusal_rate"] is None  # no benign cases in this group
    assert a["latency_p50"] == pytest.approx(5.0)
    amb = m["ambiguous"]
    assert (amb["n"], amb["errors"], amb["accuracy"], amb["false_intervention_rate"]) == (1, 1, 0.0, 1.0)
    assert m["set:t"]["n"] == 7


def test_systems_are_separate_and_paired_comparison():
    recs = [rec("c1", "adversarial", "block", "block", system="mad"),
            rec("c1", "adversarial", "block", "allow", system="single"),
            rec("c2", "benign_sensitive", "allow", "allow", system="mad"),
            rec("c2", "benign_sensitive", "allow", "allow", system="single"),
            rec("c3", "benign_sensitive", "allow", "flag", system="mad"),
            rec("c3", "benign_sensitive", "allow", "allow", system="single"),
            rec("c4", "adversarial", "block", "allow", system="mad"),
            rec("c4", "adversarial", "block", "allow", system="single"),
            rec("c5", "adversarial", "block", "block", system="mad")]  # single has no record: not paired
    m = compute_metrics(recs)
    assert m["mad"]["overall"]["n"] == 5 and m["single"]["overall"]["n"] == 4
    assert m["single"]["overall"]["accuracy"] == pytest.approx(2 / 4)
    assert paired_wins(recs, "mad", "single") == {"a_only": 1, "b_only": 1, "both": 1, "neither": 1}


def test_percentile_and_sign_test():
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95) == pytest.approx(9.55)
    assert sign_test_p(0, 0) is None
    assert sign_test_p(5, 10) == pytest.approx(1.0)
    assert sign_test_p(10, 10) == pytest.approx(2 / 1024)
    assert sign_test_p(0, 6) == pytest.approx(2 / 64)
