"""Control flow of the baselines (vote counting, sampling seeds, hidden evidence, failing judges, call accounting)
with a scripted backend; what a real model decides is measured by the end-to-end eval (test_eval_e2e.py)."""

from __future__ import annotations

import asyncio

from mad_guardrails.agents.backends.fake import FakeBackend
from mad_guardrails.core.debate import Argument, Case
from mad_guardrails.core.units import Evidence
from mad_guardrails.core.verdict import CheckResult, Usage, Verdict, VerificationReport
from mad_guardrails.evals.baselines import (
    PLACEHOLDER_ROLE,
    JudgeCoordinator,
    MajorityCoordinator,
    PlaceholderDebater,
    record_from_verdict,
    vote,
)
from mad_guardrails.evals.loaders import EvalCase

EV = [Evidence(unit_id="nis2:art_23.4.a", doc="nis2", rank=1, score=1.0,
               text="(a) without undue delay and in any event within 24 hours of becoming aware")]


def answer(decision: str, confidence: float = 0.8) -> str:
    viol = ("- rule: nis2.art23.incident_reporting | provisions: nis2:art_23.4.a | severity: high | "
            "explanation: 72 hours is not 24 hours" if decision == "block" else "none")
    return (f'EVIDENCE:\n[nis2:art_23.4.a] "in any event within 24 hours"\nANSWER:\ndecision: {decision}\n'
            f"violations:{' ' + viol if viol == 'none' else chr(10) + viol}\nrationale: because.\n"
            f"confidence: {confidence}")


def run(coro):
    return asyncio.run(coro)


def test_vote_rules():
    assert vote(["block", "block", "allow"])[0] == "block"
    assert vote(["allow", "block", "flag"])[0] == "flag"          # three-way tie
    assert vote(["allow", "allow", "block", "block"])[0] == "flag"
    assert vote([])[0] == "flag"
    assert vote(["allow"])[0] == "allow"


def test_majority_votes_with_distinct_seeds_and_sums_usage():
    b = FakeBackend([answer("block", 0.6), answer("allow", 0.9), answer("block", 0.7)])
    m = MajorityCoordinator(b, "coordinator", n=3, seed=5)
    res = run(m.decide(Case(output="Send the NIS2 early warning within 72 hours."), EV, [], []))
    assert res.output.decision == "block" and res.calls == 3
    assert res.output.confidence == 0.7                      # the most confident judge of the majority
    assert res.output.rationale.startswith("[votes of 3: allow 1, flag 0, block 2]")
    assert sorted(c["seed"] for c in b.calls) == [5000, 5001, 5002]
    assert all(c["temperature"] == 0.7 and c["model"] == "coordinator" for c in b.calls)
    assert res.usage.prompt_tokens > 0 and res.usage.completion_tokens > 0
    # every judge saw the evidence
    assert all("nis2:art_23.4.a" in c["messages"][-1]["content"] for c in b.calls)


def test_majority_tie_flags_and_unreadable_judges_do_not_vote():
    # judge 2 answers garbage twice (first answer + its one format repair), so 1 allow vs 1 block: a tie
    b = FakeBackend(lambda msgs, kw: {5000: answer("allow"), 5001: "no idea", 5002: answer("block")}[kw["seed"]])
    res = run(MajorityCoordinator(b, "m", n=3, seed=5).decide(Case(output="x"), EV, [], []))
    assert res.output.decision == "flag" and "tie" in res.output.rationale
    assert res.calls == 4  # 3 judges + 1 repair attempt of the unreadable one


def test_majority_with_no_usable_answer_fails_closed():
    b = FakeBackend(lambda msgs, kw: "???")
    res = run(MajorityCoordinator(b, "m", n=2).decide(Case(output="x"), EV, [], []))
    assert res.output is None and "no judge of 2 gave a usable answer" in res.error and res.calls == 4


def test_majority_repair_round_asks_one_judge_at_temperature_zero():
    b = FakeBackend([answer("allow")])
    res = run(MajorityCoordinator(b, "m", n=5).decide(Case(output="x"), EV, [], [], feedback=["quote not found"]))
    assert res.output.decision == "allow" and res.calls == 1 and len(b.calls) == 1
    assert (b.calls[0]["temperature"], b.calls[0]["seed"]) == (0.0, 0)  # the config defaults, not sampling
    assert "quote not found" in b.calls[0]["messages"][-1]["content"]


def test_noretrieval_judge_does_not_see_the_evidence():
    b = FakeBackend([answer("flag"), answer("flag")])
    run(JudgeCoordinator(b, "m", show_evidence=False).decide(Case(output="x"), EV, [], []))
    run(JudgeCoordinator(b, "m").decide(Case(output="x"), EV, [], []))
    assert "within 24 hours of becoming aware" not in b.calls[0]["messages"][-1]["content"]
    assert "within 24 hours of becoming aware" in b.calls[1]["messages"][-1]["content"]


def test_placeholder_debater_costs_nothing_in_the_record():
    arg, resp = run(PlaceholderDebater().turn(Case(output="x"), [], [], [], 1))
    assert resp is None and arg.role == PLACEHOLDER_ROLE
    # the graph counts the placeholder turn as one call; the record does not
    v = Verdict(decision="allow", transcript=[arg, Argument(role="judge", round=1, stance="compliant")],
                usage=Usage(llm_calls=3, prompt_tokens=10), verification=VerificationReport(checks=[
                    CheckResult(name="strict_verbatim", status="pass", score=1.0),
                    CheckResult(name="number_consistency", status="skipped")]))
    case = EvalCase(id="s:1", set="s", output="x", type="ambiguous", expected="allow")
    r = record_from_verdict("single", case, v, 1.5)
    assert r.llm_calls == 2 and r.prompt_tokens == 10 and set(r.checks) == {"strict_verbatim"}
