"""Audit runner and reports, in process, over the scripted parts (tests/fixtures/surfaces.py)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.guardrails.audit.reader import read_rows
from mad_guardrails.guardrails.audit.report import load_rows, write_reports
from mad_guardrails.guardrails.audit.runner import RESULTS_FILE, AuditRunner, ResultRow, ResultStore
from mad_guardrails.guardrails.config import GuardrailConfig

ROWS = [
    {"id": "ok-nis2", "output": "Under NIS2 the early warning about a significant incident goes to the CSIRT within 24 "
                                "hours of becoming aware of it.", "team": "sec"},
    {"id": "wrong-deadline", "output": "NIS2 gives essential entities 72 hours to send the early warning."},
    {"id": "evasion", "query": "Ransomware hit us. Tell anyone?",
     "output": "Don't report the incident to the CSIRT; hide the incident and restore quietly."},
    {"id": "offtopic", "output": "Banana bread wants ripe bananas, butter and an hour in the oven."},
    {"id": "xss", "output": "<script>alert('x')</script> the early warning under NIS2 is due within 72 hours"},
    {"id": "empty", "output": ""},
]


@pytest.fixture()
def audit_input(tmp_path):
    p = tmp_path / "in.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n{broken\n", encoding="utf-8")
    return p


@pytest.fixture()
def open_scripted(surfaces_units):
    from mad_guardrails.guardrails.guardrail import Guardrail
    from tests.fixtures.surfaces import make_components

    opened = []

    def _open(cfg):
        def factory():
            opened.append(1)
            return Guardrail(cfg, components=make_components())
        return factory
    _open.opened = opened
    return _open


CFG = GuardrailConfig(profile="surfaces-test", timeout_s=60)


def test_run_writes_one_row_per_id_then_resume_needs_no_guardrail(tmp_path, audit_input, open_scripted):
    out = tmp_path / "out"
    rows = read_rows(audit_input)
    outcome = AuditRunner(CFG, out, concurrency=3, progress=False).run(rows, audit_input, open_scripted(CFG))
    assert [r.id for r in outcome.rows] == [r.id for r in rows]
    dec = {r.id: r.decision for r in outcome.rows}
    assert dec["wrong-deadline"] == "block" and dec["evasion"] == "block" and dec["offtopic"] == "allow"
    assert dec["ok-nis2"] == "allow" and dec["empty"] == "error" and dec["line-7"] == "error"
    assert outcome.counts.error == 2 and outcome.counts.block == 3 and outcome.checked == len(rows)
    stored = load_rows(out / RESULTS_FILE)
    assert [r.id for r in stored] == [r.id for r in rows]
    ok = next(r for r in stored if r.id == "ok-nis2")
    assert ok.status == "ok" and ok.metadata == {"team": "sec"} and ok.verdict["decision"] == "allow"
    assert ok.output.startswith("Under NIS2") and ok.line == 1
    err = next(r for r in stored if r.id == "line-7")
    assert err.status == "error" and err.verdict is None and "line 7: not valid JSON" in err.error
    assert not (out / "checkpoints.sqlite").exists()  # a finished audit leaves no mid-check state behind

    def must_not_open():
        raise AssertionError("a finished audit must not load the guardrail again")
    again = AuditRunner(CFG, out, progress=False).run(rows, audit_input, must_not_open)
    assert again.resumed == len(rows) and again.checked == 0
    assert [r.model_dump() for r in again.rows] == [r.model_dump() for r in outcome.rows]


def test_store_repairs_partial_last_line_garbage_and_duplicates(tmp_path):
    path = tmp_path / RESULTS_FILE
    a = ResultRow(id="a", status="error", error="line 1: bad")
    b1 = ResultRow(id="b", status="error", error="first")
    b2 = ResultRow(id="b", status="error", error="second")
    path.write_bytes((a.model_dump_json() + "\n" + "not json\n" + b1.model_dump_json() + "\n"
                      + b2.model_dump_json() + "\n" + '{"id": "c", "status": "ok", "verd').encode())
    store = ResultStore(path)
    rows = store.load()
    assert list(rows) == ["a", "b"] and rows["b"].error == "first"
    assert any("partially written" in x for x in store.repaired) and any("duplicate" in x for x in store.repaired)
    assert any("unreadable" in x for x in store.repaired)
    # the file itself was repaired: two complete lines, ending with a newline
    data = path.read_bytes()
    assert data.endswith(b"\n") and len(data.splitlines()) == 2
    store.append(ResultRow(id="c", status="error", error="x"))
    store.append(ResultRow(id="a", status="error", error="ignored: a already has a row"))
    store.close()
    assert [r.id for r in load_rows(path)] == ["a", "b", "c"]
    assert ResultStore(path).load()["a"].error == "line 1: bad"


def test_resume_with_another_mode_or_config_is_refused(tmp_path, audit_input, open_scripted):
    out = tmp_path / "out"
    rows = read_rows(audit_input, limit=2)
    AuditRunner(CFG, out, progress=False).run(rows, audit_input, open_scripted(CFG))
    with pytest.raises(ConfigError, match="--restart"):
        AuditRunner(CFG, out, mode="strict", progress=False).run(rows, audit_input, open_scripted(CFG))
    other = CFG.model_copy(update={"timeout_s": 5.0})
    with pytest.raises(ConfigError, match="config"):
        AuditRunner(other, out, progress=False).run(rows, audit_input, open_scripted(other))
    r = AuditRunner(other, out, progress=False)
    r.clear()
    assert r.run(rows, audit_input, open_scripted(other)).resumed == 0


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.text, self.stack = set(), [], [], []
        self.blockquotes: list[str] = []
        self._in_bq = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "blockquote":
            self._in_bq += 1
            self.blockquotes.append("")

    def handle_endtag(self, tag):
        if tag == "blockquote":
            self._in_bq -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._in_bq:
            self.blockquotes[-1] += data


def test_reports_render_sections_charts_quotes_and_escape_outputs(tmp_path, audit_input, open_scripted):
    out = tmp_path / "out"
    rows = read_rows(audit_input)
    outcome = AuditRunner(CFG, out, progress=False).run(rows, audit_input, open_scripted(CFG))
    paths = write_reports(outcome.rows, out, title="in.jsonl", input_path=audit_input, manifest=outcome.manifest)
    html = paths["html"].read_text(encoding="utf-8")
    p = _Sections()
    p.feed(html)
    assert {"summary", "charts", "worst-cases", "verification-failures", "errors", "all-rows",
            "chart-act", "chart-rule", "chart-severity"} <= p.ids
    tags = [t for t, _ in p.tags]
    # one inline script of ours (filter / sort); the xss row's text is escaped, nothing of it executes
    assert tags.count("svg") >= 4 and tags.count("script") == 1
    assert not any(t == "script" and a.get("src") for t, a in p.tags)
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert not any(k in ("src", "href") and str(v).startswith(("http:", "https:", "//"))
                   for _, a in p.tags for k, v in a.items())
    text = " ".join(p.text)
    assert "wrong-deadline" in text and "not valid JSON" in text and "'output' is empty" in text
    assert any("within 24 hours" in q for q in p.blockquotes)  # the verified quote of the fast block
    summary = json.loads(paths["summary"].read_text())
    assert summary["counts"] == {"allow": 2, "flag": 0, "block": 3, "error": 2}
    assert summary["by_rule"]["nis2.early_warning"]["block"] == 2
    assert summary["by_act"]["nis2"]["block"] == 3 and summary["worst"][0] in ("evasion", "wrong-deadline", "xss")
    assert [e["id"] for e in summary["errors"]] == ["empty", "line-7"]
    md = paths["markdown"].read_text()
    assert "### Decisions by act" in md and "| nis2 | 3 | 0 | 1 |" in md and "### Error rows" in md
    assert "`[nis2:art_23.4.a]` \"within 24 hours\"" in md
    assert "<script>" not in md and "&lt;script&gt;alert" in md  # the xss row is a worst case: escaped there too


def test_rows_added_to_the_input_are_checked_on_the_next_run(tmp_path, audit_input, open_scripted):
    out = tmp_path / "out"
    AuditRunner(CFG, out, progress=False).run(read_rows(audit_input, limit=2), audit_input, open_scripted(CFG))
    with open(audit_input, "a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "new", "output": "The Eiffel Tower is about 330 metres tall."}) + "\n")
    rows = read_rows(audit_input)
    outcome = AuditRunner(CFG, out, progress=False).run(rows, audit_input, open_scripted(CFG))
    assert outcome.resumed == 2 and outcome.checked == len(rows) - 2
    assert [r.id for r in outcome.rows] == [r.id for r in rows] and outcome.rows[-1].decision == "allow"
    assert any("input file changed" in n for n in outcome.repaired)


def test_summary_acts_and_worst_case_order_from_verdicts():
    from mad_guardrails.core.debate import Quote
    from mad_guardrails.core.verdict import Verdict, Violation
    from mad_guardrails.guardrails.audit.report import summarize

    def row(i, **v):
        return ResultRow(id=i, status="ok", verdict=Verdict(**v).model_dump(mode="json"))

    rows = [
        row("allow-offtopic", decision="allow", path="fast_allow"),
        row("timeout", decision="flag", path="failure", failure="timeout"),
        row("block-high", decision="block", confidence=0.9, violations=[
            Violation(rule_id="gdpr.breach", provisions=["gdpr:art_33.1"], severity="high", verified=True,
                      quotes=[Quote(doc_id="gdpr:art_33.1", text="not later than 72 hours")])]),
        row("block-critical", decision="block", confidence=0.7, violations=[
            Violation(rule_id="eu-ai-act.social_scoring", provisions=["policy:eu-ai-act.social_scoring"],
                      severity="critical")]),
        ResultRow(id="bad", status="error", error="line 5: not valid JSON"),
    ]
    s = summarize(rows, title="t", input_path="in.jsonl", out_dir="out")
    assert s.by_act == {"(no evidence)": {"allow": 1}, "(failed closed)": {"flag": 1}, "gdpr": {"block": 1},
                        "eu-ai-act": {"block": 1}}  # a policy-only citation counts under the rule's act
    assert s.by_act["(failed closed)"] == {"flag": 1} and s.by_act["eu-ai-act"] == {"block": 1}
    assert s.worst == ["block-critical", "block-high", "timeout"]
    assert s.failed_closed == 1 and s.unverified_violations == 1 and s.counts["error"] == 1
    assert s.by_rule["gdpr.breach"].verified == 1 and s.by_severity["critical"] == {"block": 1}
