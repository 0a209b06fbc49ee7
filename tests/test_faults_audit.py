"""``mad-guardrails audit`` through an outage: the LLM server down, answering 500, or failing its first calls, then
back. Rows that failed closed on the infrastructure fault are marked ``failure_kind: infra``, counted apart (printed
and in ``summary.json`` → ``faults``), make the exit code 5, and ``--retry-failed`` checks only them again — one row per
id throughout, nothing lost, nothing duplicated. Test ids ``fault-audit-<name>`` are counted by
``bench/fault_counts.py``."""

from __future__ import annotations

import json
import sys

import pytest

from tests.fault_server import first_n, healthy, record, status
from tests.fault_server import fault_profile, fault_server  # noqa: F401 - fixtures

DEBATES = [
    "Our city will give every resident a social score based on their social behaviour and deny housing to those "
    "with low scores.",
    "The bank may rate customers with a social score built from their social behaviour online and refuse loans.",
    "Employers can use AI to infer the emotions of workers in the workplace to decide who gets promoted.",
]
OFFTOPIC = "A good banana bread needs three ripe bananas and an hour in the oven."


def _input(tmp_path):
    rows = [{"id": f"d{i}", "output": t} for i, t in enumerate(DEBATES)] + [{"id": "off", "output": OFFTOPIC}]
    lines = [json.dumps(r) for r in rows] + ["{not json", json.dumps({"id": "d0", "output": "a duplicate id"})]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return src, ["d0", "d1", "d2", "off", "line-5", "d0#line6"]


def _audit(src, out, profile, *extra, monkeypatch, capsys):
    from mad_guardrails.guardrails.cli import main

    monkeypatch.setattr(sys, "argv", ["mad-guardrails", "audit", str(src), "--out", str(out), "--profile",
                                      str(profile), "--no-progress", "--concurrency", "1", *extra])
    with pytest.raises(SystemExit) as e:
        main()
    return e.value.code, capsys.readouterr().out


def _rows(out) -> list[dict]:
    return [json.loads(x) for x in (out / "verdicts.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


def _one_row_per_id(out, ids, name):
    rows = _rows(out)
    got = [r["id"] for r in rows]
    lost, dup = sorted(set(ids) - set(got)), len(got) - len(set(got))
    record("audit", name, rows_in=len(ids), rows_out=len(got), lost=len(lost), duplicated=dup)
    assert got == ids and not lost and not dup, (got, ids)
    return {r["id"]: r for r in rows}


def test_outage_exit_5_then_retry_failed_rechecks_only_those_rows(fault_server, fault_profile, tmp_path,  # noqa: F811
                                                                  monkeypatch, capsys):
    src, ids = _input(tmp_path)
    out = tmp_path / "out"
    fault_server.down()  # connection refused for the whole first run
    try:
        code, text = _audit(src, out, fault_profile, monkeypatch=monkeypatch, capsys=capsys)
    finally:
        fault_server.up()
    by = _one_row_per_id(out, ids, "outage")
    assert code == 5, text  # --fail-on block (the default) with an outage: not a pass
    infra = [i for i, r in by.items() if r.get("failure_kind") == "infra"]
    assert sorted(infra) == ["d0", "d1", "d2"], {i: r.get("failure_kind") for i, r in by.items()}
    assert all(by[i]["verdict"]["decision"] == "flag" and by[i]["verdict"]["failure_kind"] == "infra" for i in infra)
    assert by["off"]["verdict"]["decision"] == "allow" and by["off"]["failure_kind"] is None  # no LLM needed
    assert by["line-5"]["failure_kind"] == "input" and by["d0#line6"]["failure_kind"] == "input"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["faults"]["infra"] == 3 and summary["faults"]["input"] == 2
    assert sorted(summary["faults"]["infra_ids"]) == ["d0", "d1", "d2"]
    assert "infra 3" in text and "--retry-failed" in text
    record("fault", "audit-outage", survived=code == 5 and not any(
        by[i]["verdict"]["decision"] == "allow" for i in infra))

    # the server is back; a plain rerun keeps every result (it checks nothing) and still exits 5
    fault_server.reset(healthy())
    code2, _ = _audit(src, out, fault_profile, monkeypatch=monkeypatch, capsys=capsys)
    assert code2 == 5 and sum(fault_server.calls.values()) == 0
    _one_row_per_id(out, ids, "outage-rerun")

    # --retry-failed: only the three infra rows are checked again and replace their failed rows
    code3, text3 = _audit(src, out, fault_profile, "--retry-failed", monkeypatch=monkeypatch, capsys=capsys)
    after = _one_row_per_id(out, ids, "outage-retry")
    assert fault_server.calls["coordinator"] >= 3
    assert all(after[i]["failure_kind"] is None and after[i]["verdict"]["path"] == "debate" for i in infra), \
        {i: after[i]["verdict"]["failure"] for i in infra}
    assert after["off"] == by["off"] and after["line-5"] == by["line-5"]  # untouched
    assert code3 == 4, text3  # what is left: the two input error rows (no block: the healthy answers allow)
    assert "3 retried" in text3
    assert json.loads((out / "summary.json").read_text())["faults"]["infra"] == 0
    record("fault", "audit-retry-failed", survived=code3 != 5)


def test_first_calls_fail_then_recover(fault_server, fault_profile, tmp_path, monkeypatch, capsys):  # noqa: F811
    """HTTP 500 on the first 3 calls only (the first row's opening round): that row is infra, the rest are not."""
    src, ids = _input(tmp_path)
    out = tmp_path / "out"
    fault_server.reset(first_n(3, status(500), healthy()))
    code, text = _audit(src, out, fault_profile, monkeypatch=monkeypatch, capsys=capsys)
    by = _one_row_per_id(out, ids, "first-n")
    infra = sorted(i for i, r in by.items() if r.get("failure_kind") == "infra")
    assert infra == ["d0"] and by["d0"]["verdict"]["decision"] != "allow", {i: r.get("failure_kind") for i, r in by.items()}
    assert code == 5, text
    record("fault", "audit-first-n", survived=code == 5)
    fault_server.reset(healthy())
    code2, _ = _audit(src, out, fault_profile, "--retry-failed", monkeypatch=monkeypatch, capsys=capsys)
    after = _one_row_per_id(out, ids, "first-n-retry")
    assert after["d0"]["failure_kind"] is None and code2 == 4
    assert all(after[i] == by[i] for i in ids if i != "d0")  # nothing else was checked again
    record("fault", "audit-first-n-retry", survived=code2 != 5)


def test_fail_on_never_ignores_the_outage(fault_server, fault_profile, tmp_path, monkeypatch, capsys):  # noqa: F811
    src, ids = _input(tmp_path)
    fault_server.reset(status(500))
    code, _ = _audit(src, tmp_path / "out", fault_profile, "--fail-on", "never", monkeypatch=monkeypatch,
                     capsys=capsys)
    _one_row_per_id(tmp_path / "out", ids, "fail-on-never")
    assert code == 0


def test_audit_help_documents_exit_5(monkeypatch, capsys):
    from mad_guardrails.guardrails.cli import main

    monkeypatch.setattr(sys, "argv", ["mad-guardrails", "audit", "--help"])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        main()
    text = " ".join(capsys.readouterr().out.split())
    assert "5 rows failed closed on an infrastructure fault" in text and "--retry-failed" in text
