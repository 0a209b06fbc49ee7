"""``mad-guardrails search`` / ``mad-guardrails index info|build`` through typer's CliRunner on the small real index."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from mad_guardrails.guardrails.cli import app


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def prof(base_profile_path) -> list[str]:
    """``--profile`` of the offline profile without the embedder adapter (what the small index was built with)."""
    return ["--profile", str(base_profile_path)]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_search_json(runner, small_index_dir, prof):
    r = runner.invoke(app, ["search", "Must a chatbot tell people it is an AI?", "--index", str(small_index_dir),
                            *prof, "--json", "-k", "3"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    clauses = [d for d in data if d["kind"] == "clause"]
    assert isinstance(data, list) and len(clauses) == 3  # k clauses, then the policy rules that cite them, labelled
    assert data[: len(clauses)] == clauses and all(d["kind"] == "rule" for d in data[len(clauses):])
    assert set(data[0]) == {"id", "kind", "score", "text"}
    assert data[0]["id"] == "eu-ai-act:art_50.1"
    assert [d["score"] for d in clauses] == sorted((d["score"] for d in clauses), reverse=True)


def test_search_human_table_and_abstention(runner, small_index_dir, prof):
    r = runner.invoke(app, ["search", "What does the GDPR say about erasing my data?", "--index",
                            str(small_index_dir), *prof, "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "gdpr:art_17" in r.stdout and "erasure" in r.stdout
    off = runner.invoke(app, ["search", "How do I bake sourdough bread at home?", "--index", str(small_index_dir),
                              *prof])
    assert off.exit_code == 0 and "no relevant evidence" in off.stdout
    off_json = runner.invoke(app, ["search", "How do I bake sourdough bread at home?", "--index",
                                   str(small_index_dir), *prof, "--json"])
    assert json.loads(off_json.stdout) == []


def test_search_modes(runner, small_index_dir, prof):
    for mode in ("dense", "bm25"):
        r = runner.invoke(app, ["search", "register of information on ICT third-party contractual arrangements",
                                "--index", str(small_index_dir), *prof, "--json", "--mode", mode, "-k", "1"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)[0]["id"] == "dora:art_28"


def test_search_queries_file(runner, small_index_dir, tmp_path, prof):
    f = tmp_path / "q.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": "a", "query": "When must a personal data breach be reported to the authority?"}),
        "{not json",
        json.dumps({"question": "wrong key"}),
        "",
        json.dumps({"query": "Which AI systems are high-risk?"}),
        json.dumps({"query": "What is a good pasta recipe for a picnic?"}),
    ]) + "\n")
    r = runner.invoke(app, ["search", "--queries", str(f), "--index", str(small_index_dir), *prof, "-k", "2"])
    assert r.exit_code == 0, r.output
    rows = _json_lines(r.stdout)
    assert len(rows) == 5  # one output line per non-empty input line, in order
    assert rows[0]["id"] == "a" and rows[0]["results"][0]["id"] == "gdpr:art_33"
    assert rows[1]["line"] == 2 and "line 2" in rows[1]["error"]
    assert rows[2]["line"] == 3 and "query" in rows[2]["error"]
    assert rows[3]["query"] == "Which AI systems are high-risk?" and rows[3]["results"][0]["id"] == "eu-ai-act:art_6"
    assert rows[4]["results"] == [] and rows[4]["abstained"] is True


def test_search_argument_errors(runner, small_index_dir, tmp_path, prof):
    r = runner.invoke(app, ["search", "--index", str(small_index_dir), *prof])
    assert r.exit_code != 0 and "either a question or --queries" in str(r.exception)
    r = runner.invoke(app, ["search", "x", "--index", str(tmp_path / "nope"), *prof])
    assert r.exit_code != 0 and "mad-guardrails index build" in str(r.exception)


def test_index_info(runner, small_index_dir, prof):
    r = runner.invoke(app, ["index", "info", "--index", str(small_index_dir), *prof, "--json"])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["passages"] == 23 and info["index_type"] == "flat" and info["relevance_calibrated"] is True


def test_index_build_from_units_file(runner, tmp_path, shared_corpus_dir, monkeypatch, prof):
    """Build from one small act of the shared corpus (CSF 2.0 core), without policies, and query it."""
    monkeypatch.setenv("GUARDRAILS_HOME", str(tmp_path / "home"))
    out = tmp_path / "idx"
    r = runner.invoke(app, ["index", "build", "--corpus", str(shared_corpus_dir), "--docs", "nist-csf-2.0",
                            "--index", str(out), "--no-policies", *prof])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert man["docs"] == {"nist-csf-2.0": man["unit_count"]} and man["unit_count"] > 100
    assert man["relevance"]["calibrated"] is True and man["corpus_hash"]
    q = runner.invoke(app, ["search", "How are access permissions and least privilege managed?", "--index",
                            str(out), *prof, "--json", "-k", "5"])
    ids = [d["id"] for d in json.loads(q.stdout)]
    assert any(re.fullmatch(r"nist-csf-2\.0:PR\.AA(-0\d)?", i) for i in ids), ids


def test_index_build_without_corpus(runner, tmp_path):
    r = runner.invoke(app, ["index", "build", "--corpus", str(tmp_path / "empty"), "--index", str(tmp_path / "i")])
    assert r.exit_code != 0 and "no corpus" in str(r.exception)


def test_index_build_policies_only(runner, tmp_path, monkeypatch, prof):
    """Offline with no regulation text (the Quickstart's fallback): the policy rules alone are indexed and found."""
    monkeypatch.setenv("GUARDRAILS_HOME", str(tmp_path / "home"))
    out = tmp_path / "idx"
    r = runner.invoke(app, ["index", "build", "--policies-only", "--no-calibrate", "--index", str(out), *prof])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())
    assert list(man["docs"]) == ["policy"] and man["unit_count"] > 100
    q = runner.invoke(app, ["search", "When is the NIS2 early warning due?", "--index", str(out), *prof, "--json"])
    hits = json.loads(q.stdout)
    assert hits and all(d["id"].startswith("policy:") for d in hits), q.output
    bad = runner.invoke(app, ["index", "build", "--policies-only", "--corpus", str(tmp_path), "--index", str(out)])
    assert bad.exit_code != 0 and "--policies-only" in str(bad.exception)
