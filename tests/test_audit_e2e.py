"""``mad-guardrails audit`` end to end on the real offline profile: the built index, the session vLLM server
(SmolLM2-135M on CPU), the real agents and verifier; the built offline index, else the tests' small real index."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from mad_guardrails.core.paths import PROJECT_ROOT

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

#: rows of examples/audit_small.jsonl used here: a fast block (wrong deadline), a debate (evasion advice), an
#: off-topic text, and the two deliberately broken rows (one LLM debate keeps the test short on CPU)
PICK = ["nis2-early-warning-72h", "nis2-evasion-ransomware", "offtopic-banana-bread"]


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.tags, self.sources = set(), [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.sources += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]
        self.ids |= {v for k, v in attrs if k == "id"}


def test_audit_example_subset_on_the_offline_profile(offline_profile, tmp_path):
    lines = (PROJECT_ROOT / "examples" / "audit_small.jsonl").read_bytes().splitlines()
    keep = [ln for ln in lines if any(f'"id": "{i}"' in ln.decode() for i in PICK)] + lines[-2:]
    src = tmp_path / "subset.jsonl"
    src.write_bytes(b"\n".join(keep) + b"\n")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "mad_guardrails.guardrails.cli", "audit", str(src), "--out", str(out),
                          "--profile", offline_profile, "--concurrency", "4", "--fail-on", "flag", "--no-progress"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    rows = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    # one row per input row, in input order (the broken JSON line is named by its line number in the subset)
    assert [r["id"] for r in rows] == ["nis2-early-warning-72h", "nis2-evasion-ransomware", "offtopic-banana-bread",
                                       "line-4", "empty-output-row"]
    by = {r["id"]: r for r in rows}
    assert by["nis2-early-warning-72h"]["verdict"]["decision"] == "block"  # the key fact, no LLM needed
    assert by["nis2-early-warning-72h"]["verdict"]["path"] == "fast_block"
    assert by["offtopic-banana-bread"]["verdict"]["decision"] != "block"  # never a false refusal of a recipe
    assert [r["status"] for r in rows].count("error") == 2 and "not valid JSON" in by["line-4"]["error"]
    # the evasion advice went through a real debate of the tiny model; whatever it decided, an allow is only
    # released with a passing verifier report, and a failure is never an allow
    ev = by["nis2-evasion-ransomware"]["verdict"]
    assert ev["path"] in ("debate", "failure", "fast_block"), ev["path"]
    if ev["path"] == "debate":
        assert ev["transcript"] and ev["usage"]["llm_calls"] >= 3
    if ev["decision"] == "allow":
        assert all(c["status"] != "fail" for c in ev["verification"]["checks"])
    assert not any(r["verdict"]["decision"] == "allow" for r in rows
                   if r["status"] == "ok" and r["verdict"]["path"] == "failure")
    assert res.returncode == 3, res.stderr[-3000:]  # --fail-on flag: there is a block
    assert "report:" in res.stdout
    p = _Ids()
    p.feed((out / "report.html").read_text(encoding="utf-8"))
    assert {"summary", "charts", "worst-cases", "verification-failures", "errors"} <= p.ids
    # self-contained: one inline script (filters, sort, search), nothing loaded from anywhere
    assert p.tags.count("script") == 1 and not p.sources, p.sources
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["error"] == 2 and summary["counts"]["block"] >= 1
    assert summary["models"]["debaters"]
