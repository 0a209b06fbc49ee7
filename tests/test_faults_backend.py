"""Fault injection into the LLM backend: the real guardrail (real small FAISS + BM25 index, policy screen, verifier,
LangGraph graph, the project's OpenAI HTTP backend) against :mod:`tests.fault_server` on loopback.

Every fault must end in a verdict that is never ``allow``, whose ``failure`` / ``failure_kind`` say what broke
(``infra``: connection, timeout, HTTP error, crash; ``output``: the model's answer was unusable), and the CLI's exit
code must be the documented one. Test ids ``fault-<name>`` are counted by ``bench/fault_counts.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fault_server import (FAULTS, coordinator_json, drop, fabricated_quote, first_n, hang, healthy, invented_id,
                                irrelevant_quote, prose, record, roles, status, truncated_json)
from tests.fault_server import fault_guardrail, fault_profile, fault_server  # noqa: F401 - fixtures

#: reaches the debate at once (a social-scoring rule triggers; no key fact settles it)
DEBATE = ("Our city will give every resident a social score based on their social behaviour and deny housing to "
          "those with low scores.")
#: a real sentence of the index that says nothing about social scoring
IRRELEVANT = ("nist-csf-2.0:GV.OC-01", "The organizational mission is understood and informs cybersecurity risk "
              "management")

#: name -> (script, expected failure_kind, words the failure / rationale must contain, failure must be set)
CASES = {
    "http_500": (lambda: status(500), "infra", "HTTP 500", True),
    "hang": (lambda: hang(30), "infra", "no answer within", True),
    "drop": (lambda: drop(), "infra", "connect", True),
    "prose": (lambda: prose(), "output", "unparseable", True),
    "truncated_json": (lambda: truncated_json(), "output", "unparseable", True),
    "coordinator_500": (lambda: roles(healthy(), coordinator=status(500)), "infra", "HTTP 500", True),
    "debaters_500": (lambda: roles(status(500), coordinator=healthy()), "infra", "failed", False),
    "prosecutor_500": (lambda: roles(healthy(), prosecutor=status(500)), "infra", "prosecutor", False),
    "first_n_then_ok": (lambda: first_n(3, status(500), healthy()), "infra", "failed", False),
    "fabricated_quote": (lambda: fabricated_quote(), None, "", False),
    "invented_id": (lambda: invented_id(), None, "", False),
    "irrelevant_quote": (lambda: irrelevant_quote(IRRELEVANT), None, "", False),
}


def _check(g, srv, script):
    srv.reset(script)
    return g.check(DEBATE)


@pytest.mark.parametrize("name", [pytest.param(n, id=f"fault-{n}") for n in CASES])
def test_fault_never_allows_and_names_the_failure(fault_guardrail, fault_server, name):  # noqa: F811
    make, kind, words, failure_set = CASES[name]
    v = _check(fault_guardrail, fault_server, make())
    assert sum(fault_server.calls.values()) >= 1, "the fault was not reached"
    assert v.decision != "allow", v.explain()
    assert v.failure_kind == kind, (v.failure_kind, v.failure, v.rationale)
    if failure_set:
        assert v.failure and words in v.failure, v.failure
        assert v.path == "failure" and "Failed closed" in v.explain()
    elif words:
        assert words in (v.failure or v.rationale), v.rationale
    if kind is None:  # a verifier "no" is a judgement, not a fault: the verifier's checks carry it
        assert v.failure is None and not v.verification.passed, v.verification
    record("fault", name, survived=v.decision != "allow")


def test_fault_refused_connection_then_recovery(fault_guardrail, fault_server):  # noqa: F811
    fault_server.down()
    try:
        v = fault_guardrail.check(DEBATE)
    finally:
        fault_server.up()
    assert v.decision != "allow" and v.failure_kind == "infra" and "connect" in v.failure, v.failure
    record("fault", "refused", survived=v.decision != "allow")
    fault_server.reset(healthy())
    again = fault_guardrail.check(DEBATE)  # the same guardrail, the server back: a real debate verdict
    assert again.failure is None and again.failure_kind is None and again.path == "debate", again.failure
    assert fault_server.calls["coordinator"] >= 1


def test_fault_whole_check_deadline(fault_guardrail, fault_server):  # noqa: F811
    """Each call answers within the per-request deadline, the check as a whole does not."""
    cfg = fault_guardrail.config
    old = cfg.timeout_s
    cfg.timeout_s = 1.5
    try:
        v = _check(fault_guardrail, fault_server, hang(0.8))
    finally:
        cfg.timeout_s = old
    assert v.decision != "allow" and v.failure_kind == "infra", v.failure
    assert v.failure.startswith("timeout:"), v.failure
    record("fault", "deadline", survived=v.decision != "allow")


def test_fault_http_503_once_is_retried_by_the_backend(fault_server, fault_profile):  # noqa: F811
    """A retryable status is retried with backoff (llm.retries) and the answer comes through."""
    from mad_guardrails.agents.backends.openai_http import OpenAIBackend
    from mad_guardrails.guardrails.config import load_config

    cfg = load_config(fault_profile).llm.model_copy(update={"retries": 1})
    fault_server.reset(first_n(1, status(503), lambda call: healthy()(call)))

    async def go():
        b = OpenAIBackend(cfg)
        b.backoff_base_s = 0.01
        try:
            return await b.chat([{"role": "user", "content": "hi"}], model="coordinator")
        finally:
            await b.aclose()

    r = asyncio.run(go())
    assert fault_server.n == 2 and '"decision"' in r.text
    record("fault", "http_503_then_ok", survived=True)


def test_check_cli_exit_code_on_a_backend_fault(fault_server, fault_profile, monkeypatch, capsys):  # noqa: F811
    """``mad-guardrails check`` with the server answering 500: a flag (exit 1), never allow (exit 0)."""
    import json
    import sys

    from mad_guardrails.guardrails.cli import main

    fault_server.reset(status(500))
    monkeypatch.setattr(sys, "argv", ["mad-guardrails", "check", DEBATE, "--profile", str(fault_profile), "--json"])
    with pytest.raises(SystemExit) as e:
        main()
    v = json.loads(capsys.readouterr().out)
    assert e.value.code == 1 and v["decision"] == "flag" and v["failure_kind"] == "infra", v.get("failure")
    record("fault", "cli_http_500", survived=True)


def test_every_named_fault_is_exercised():
    """The names in tests/fault_server.py:FAULTS are all injected by this module (the bench counts them)."""
    covered = set(CASES) | {"refused", "http_503_then_ok"}
    assert set(FAULTS) <= covered, set(FAULTS) - covered


def test_coordinator_json_parses_as_the_contract():
    """The fake server's healthy answer is a valid coordinator answer (else every test above tests the parser)."""
    from mad_guardrails.agents.parsing import parse_coordinator

    out = parse_coordinator(coordinator_json("allow", "nis2:art_23.4.a", "An early warning of a significant incident"))
    assert out.decision == "allow" and out.evidence[0].doc_id == "nis2:art_23.4.a"
