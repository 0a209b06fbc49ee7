"""Agents: answer parsing (text contract + JSON), debater turns, coordinator repair flow, roles.

The scripted FakeBackend is used only for parsing / control flow; tests/test_vllm_server.py runs the same agents
against a real vLLM server."""

from __future__ import annotations

import pytest

from mad_guardrails.agents.backends.fake import FakeBackend
from mad_guardrails.agents.coordinator import Coordinator, CoordinatorResult, coordinator_schema, single_judge
from mad_guardrails.agents.debater import Debater, turn_schema
from mad_guardrails.agents.parsing import ParseError, close_partial_json, parse_coordinator, parse_turn
from mad_guardrails.agents.roles import RoleSpec, load_roles
from mad_guardrails.core.debate import Argument, Case, Claim, CoordinatorOutput, Quote
from mad_guardrails.core.errors import BackendError, ConfigError
from mad_guardrails.core.units import Evidence
from mad_guardrails.policies.schema import KeyFact, Rule

EV = [
    Evidence(unit_id="nis2:art_23.4.a", doc="nis2", rank=1, score=0.9,
             text="(a) without undue delay and in any event within 24 hours of becoming aware of the significant "
                  "incident, an early warning"),
    Evidence(unit_id="gdpr:art_33.1", doc="gdpr", rank=2, score=0.7,
             text="1. In the case of a personal data breach, the controller shall without undue delay and, where "
                  "feasible, not later than 72 hours after having become aware of it, notify the breach"),
]
RULES = [Rule(id="nis2.incident.early_warning", title="Early warning within 24 hours", kind="reporting_deadline",
              summary="Essential and important entities send an early warning within 24 hours.",
              provisions=["nis2:art_23.4.a"], severity="high", default_action="block",
              key_facts=[KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a")])]
CASE = Case(output="Under NIS2 the early warning is due within 72 hours.", query="When is the early warning due?")

GOOD_TEXT = """EVIDENCE:
[nis2:art_23.4.a] "without undue delay and in any event within 24 hours"
ANSWER:
decision: block
violations:
- rule: nis2.incident.early_warning | provisions: nis2:art_23.4.a | severity: high | explanation: says 72 hours
rationale: The output gives 72 hours; NIS2 requires an early warning within 24 hours.
confidence: 0.85"""


# -- parsing: coordinator ---------------------------------------------------------------------------------------------
def test_parse_text_contract():
    out = parse_coordinator(GOOD_TEXT)
    assert out.decision == "block" and out.confidence == 0.85
    assert out.evidence == [Quote(doc_id="nis2:art_23.4.a",
                                  text="without undue delay and in any event within 24 hours")]
    v = out.violations[0]
    assert (v.rule_id, v.provisions, v.severity) == ("nis2.incident.early_warning", ["nis2:art_23.4.a"], "high")
    assert v.explanation == "says 72 hours"
    assert v.quotes == out.evidence  # the EVIDENCE quotes of its provision are attached
    assert out.rationale.startswith("The output gives 72 hours") and out.raw == GOOD_TEXT


def test_parse_text_contract_with_markdown_think_and_wrapped_quote():
    text = ("<think>the deadline differs</think>\n**EVIDENCE:**\n- [gdpr:art_33.1]: “not later than 72 hours\n"
            "after having become aware of it”\n\n**ANSWER:**\n**Decision:** Allow.\nViolations: none\n"
            "Rationale: matches GDPR.\nIt is correct.\nConfidence: 80%")
    out = parse_coordinator(text)
    assert out.decision == "allow" and out.violations == [] and out.confidence == 0.8
    assert out.evidence[0].text == "not later than 72 hours after having become aware of it"
    assert out.rationale == "matches GDPR. It is correct."


def test_parse_json_answer_and_json_inside_answer_section():
    obj = {"evidence": [{"doc_id": "nis2:art_23.4.a", "text": "within 24 hours"}], "decision": "flag",
           "violations": [{"rule_id": "nis2.incident.early_warning", "provisions": ["nis2:art_23.4.a"],
                           "severity": "medium", "explanation": "doubt"}], "rationale": "r", "confidence": 0.4}
    a = parse_coordinator(obj)
    b = parse_coordinator("```json\n" + CoordinatorOutput.model_validate(obj).model_dump_json() + "\n```")
    c = parse_coordinator('EVIDENCE:\n[nis2:art_23.4.a] "within 24 hours"\nANSWER:\n{"decision": "flag", '
                          '"violations": [], "rationale": "r", "confidence": 0.4}')
    assert a.decision == b.decision == c.decision == "flag"
    assert a.violations[0].quotes[0].doc_id == "nis2:art_23.4.a"
    assert c.evidence[0].text == "within 24 hours"


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("I think it is fine.", "ANSWER"),
    ("EVIDENCE:\n[a:b] \"x\"\nANSWER:\nviolations: none\nconfidence: 0.5", "decision"),
    ("ANSWER:\ndecision: maybe\nconfidence: 0.5", "allow, flag, block"),
    ("ANSWER:\ndecision: block\nviolations:\n- | provisions: nis2:art_23 | severity: high\nconfidence: 0.9",
     "no rule id"),
    ("ANSWER:\ndecision: block\nviolations:\n- rule: r1 | severity: extreme\nconfidence: 0.9", "severity"),
    ("ANSWER:\ndecision: allow\nconfidence: 7000", "confidence"),
    ('{"evidence": [{"doc_id": "a:b", "text": "x"}], "rationale": "no decision yet', "incomplete"),
])
def test_parse_errors_say_what_to_fix(text, needle):
    with pytest.raises(ParseError, match=needle):
        parse_coordinator(text)


def test_missing_confidence_fails_closed_to_zero():
    assert parse_coordinator("ANSWER:\ndecision: allow\nviolations: none").confidence == 0.0


def test_truncated_json_with_decision_is_kept_with_zero_confidence():
    out = parse_coordinator('{"evidence":[{"doc_id":"nis2:art_23.4.a","text":"within 24 hours"}],"decision":"block",'
                            '"violations":[{"rule_id":"nis2.incident.early_warning","provisions":["nis2:art_23.4.a"],'
                            '"severity":"hi')
    assert out.decision == "block" and out.confidence == 0.0 and out.violations == []
    assert out.evidence[0].doc_id == "nis2:art_23.4.a"


# -- parsing: debater turns -------------------------------------------------------------------------------------------
def test_parse_turn_json_and_stance_synonyms():
    d = parse_turn('{"stance": "Non-compliant", "claims": [{"text": "72 h is wrong", "quotes": [{"doc_id": '
                   '"nis2:art_23.4.a", "text": "within 24 hours"}], "rule_id": "null"}], "confidence": "0.7"}')
    assert d["stance"] == "violation" and d["confidence"] == 0.7
    assert d["claims"][0].quotes[0].doc_id == "nis2:art_23.4.a" and d["claims"][0].rule_id is None
    with pytest.raises(ParseError, match="stance"):
        parse_turn('{"stance": "maybe", "claims": []}')
    with pytest.raises(ParseError, match="JSON"):
        parse_turn("I agree with the defender.")


def test_parse_turn_cut_at_max_tokens_keeps_complete_parts():
    d = parse_turn('{"stance":"compliant","claims":[{"text":"GDPR allows 72 hours","quotes":[{"doc_id":'
                   '"gdpr:art_33.1","text":"not later than 72 hours"}],"rule_id":null},{"text":"And the')
    assert d["stance"] == "compliant"
    assert d["claims"][0].quotes[0].text == "not later than 72 hours"
    assert close_partial_json("no json") is None


# -- debater ----------------------------------------------------------------------------------------------------------
ROLE = RoleSpec(name="prosecutor", goal="find breaches", instructions="look hard", stance_bias="violation")


async def test_debater_turn_success_with_schema_constrained_to_shown_ids():
    b = FakeBackend([{"stance": "violation", "confidence": 0.8, "claims": [
        {"text": "72 h contradicts 24 h", "rule_id": "nis2.incident.early_warning",
         "quotes": [{"doc_id": "nis2:art_23.4.a", "text": "within 24 hours"}]}]}])
    arg, resp = await Debater(ROLE, b, "smollm2").turn(CASE, EV, RULES, [], 1)
    assert isinstance(arg, Argument) and arg.error is None and resp is not None
    assert (arg.role, arg.round, arg.stance, arg.confidence) == ("prosecutor", 1, "violation", 0.8)
    assert arg.quotes()[0].doc_id == "nis2:art_23.4.a" and arg.raw
    call = b.calls[0]
    assert call["model"] == "smollm2"
    q = call["json_schema"]["properties"]["claims"]["items"]["properties"]["quotes"]["items"]
    # quotes are limited to the shown documents' sentences (anyOf per document: its id, one of its sentences)
    ids = [a["properties"]["doc_id"]["const"] for a in q["anyOf"]]
    assert ids and set(ids) <= {e.unit_id for e in EV}
    assert all(t in next(e.text for e in EV if e.unit_id == a["properties"]["doc_id"]["const"])
               for a in q["anyOf"] for t in a["properties"]["text"]["enum"])


async def test_debater_never_raises_on_backend_error_or_garbage():
    b = FakeBackend([BackendError("server down"), "I refuse to answer in JSON", RuntimeError("bug")])
    d = Debater(ROLE, b, "m")
    for expected in ("BackendError", "unparseable", "BackendError"):
        arg, _ = await d.turn(CASE, EV, RULES, [], 1)
        assert arg.stance == "uncertain" and arg.confidence == 0.0 and arg.error.startswith(expected)


async def test_later_rounds_see_and_answer_the_others():
    transcript = [
        Argument(role="defender", round=1, stance="compliant", confidence=0.6,
                 claims=[Claim(text="The output is right about GDPR",
                               quotes=[Quote(doc_id="gdpr:art_33.1", text="not later than 72 hours")])]),
        Argument(role="analyst", round=1, stance="uncertain", error="BackendError: timeout"),
        Argument(role="prosecutor", round=1, stance="violation", confidence=0.7),
    ]
    b = FakeBackend(['{"stance": "violation", "claims": [], "confidence": 0.6}'])
    arg, _ = await Debater(ROLE, b, "m").turn(CASE, EV, RULES, transcript, 2)
    assert arg.round == 2 and arg.responds_to == ["defender"]  # failed turns and its own are not answered
    user = b.calls[0]["messages"][-1]["content"]
    assert "The output is right about GDPR" in user and "Answer the arguments of defender" in user


def test_turn_schema_without_evidence_or_rules():
    s = turn_schema([], [])
    claim = s["properties"]["claims"]["items"]["properties"]
    assert claim["quotes"]["maxItems"] == 0 and claim["rule_id"] == {"type": "null"}


# -- coordinator ------------------------------------------------------------------------------------------------------
async def test_coordinator_first_answer_parses():
    b = FakeBackend([GOOD_TEXT])
    res = await Coordinator(b, "coordinator").decide(CASE, EV, RULES, [])
    assert isinstance(res, CoordinatorResult) and res.output.decision == "block"
    assert (res.repaired, res.calls, res.error) == (False, 1, None)
    assert b.calls[0]["json_schema"] is None and b.calls[0]["model"] == "coordinator"  # text contract first
    assert res.usage.completion_tokens > 0 and res.raw == GOOD_TEXT


async def test_coordinator_repairs_once_with_the_parse_error_and_the_schema():
    b = FakeBackend(["ANSWER:\ndecision: perhaps", GOOD_TEXT])
    res = await Coordinator(b, "coordinator").decide(CASE, EV, RULES, [])
    assert res.output.decision == "block" and res.repaired and res.calls == 2
    second = b.calls[1]
    assert second["json_schema"] == coordinator_schema([e.unit_id for e in EV], [r.id for r in RULES])
    assert second["messages"][-2] == {"role": "assistant", "content": "ANSWER:\ndecision: perhaps"}
    assert "'perhaps' is not one of allow, flag, block" in second["messages"][-1]["content"]
    assert list(second["json_schema"]["properties"])[0] == "evidence"  # quote-first in JSON too


async def test_coordinator_still_malformed_fails_closed():
    b = FakeBackend(["nonsense", "more nonsense"])
    res = await Coordinator(b, "coordinator").decide(CASE, EV, RULES, [])
    assert res.output is None and res.error.startswith("unparseable") and res.calls == 2
    assert res.raw == "more nonsense"


async def test_coordinator_backend_error_is_reported_not_raised():
    b = FakeBackend([BackendError("connection refused")])
    res = await Coordinator(b, "coordinator").decide(CASE, EV, RULES, [])
    assert res.output is None and res.error.startswith("BackendError") and res.calls == 1


async def test_coordinator_feedback_goes_into_the_prompt_and_text_mode_repairs_in_text():
    b = FakeBackend(["bad", GOOD_TEXT])
    res = await Coordinator(b, "c", mode="text").decide(CASE, EV, RULES, [], feedback=["quote 'x' is not verbatim"])
    assert res.output is not None and b.calls[1]["json_schema"] is None
    assert "quote 'x' is not verbatim" in b.calls[0]["messages"][-1]["content"]


async def test_single_judge_uses_its_own_template():
    b = FakeBackend([GOOD_TEXT])
    res = await single_judge(b, "m").decide(CASE, EV, RULES, [Argument(role="x", round=1, stance="violation")])
    assert res.output.decision == "block"
    assert "compliance judge" in b.calls[0]["messages"][0]["content"]
    assert "<debate_transcript>" not in b.calls[0]["messages"][-1]["content"]


# -- roles ------------------------------------------------------------------------------------------------------------
def test_default_roles():
    roles = load_roles("default")
    assert [r.name for r in roles] == ["prosecutor", "defender", "analyst"]
    assert [r.stance_bias for r in roles] == ["violation", "compliant", None]


@pytest.mark.parametrize("content,needle", [
    ("roles: [{name: a}]", "goal"),
    ("roles: [{name: a, goal: g, stance_bias: angry}]", "stance_bias"),
    ("roles: [{name: a, goal: g}, {name: a, goal: h}]", "duplicate"),
    ("roles: [{name: a, goal: g", "YAML"),
])
def test_bad_roles_files_name_file_and_field(tmp_path, content, needle):
    p = tmp_path / "roles.yaml"
    p.write_text(content)
    with pytest.raises(ConfigError, match=needle) as ei:
        load_roles(p)
    assert str(p) in str(ei.value)


def test_unknown_roles_set():
    with pytest.raises(ConfigError, match="default"):
        load_roles("nope")


def test_a_turn_cut_at_max_tokens_keeps_its_stance_and_complete_claims():
    from mad_guardrails.agents.backends.base import extract_json_object
    from mad_guardrails.agents.parsing import parse_turn

    cut = ('{"stance":"violation","claims":[{"text":"The deadline is 24 hours, not 72.","quotes":[{"doc_id":'
           '"nis2:art_23.4.a","text":"within 24 hours"}],"rule_id":null},{"text":"1.1.1.1.1.1.1.1')
    assert extract_json_object(cut) is None  # the backend does not mistake an inner object for the answer
    turn = parse_turn(cut)
    assert turn["stance"] == "violation" and turn["claims"][0].quotes[0].text == "within 24 hours"
