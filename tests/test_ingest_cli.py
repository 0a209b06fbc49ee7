"""`mad-guardrails corpus fetch|add|list|show` through typer's CliRunner."""

from __future__ import annotations

import json
import socket

import pytest
import typer
from typer.testing import CliRunner

from mad_guardrails.guardrails.commands import corpus as corpus_cmd
from mad_guardrails.retrieval.corpus import Corpus
from tests.fixtures.corpus import README_COUNTS


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _main() -> None:  # a group, so that `corpus` is a sub-command as in the real CLI
        pass

    corpus_cmd.register(root)
    return root


@pytest.fixture()
def run(app):
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_group_is_wired_into_the_guardrails_cli():
    from mad_guardrails.guardrails.cli import app as real_app

    r = CliRunner().invoke(real_app, ["corpus", "--help"])
    assert r.exit_code == 0 and "fetch" in r.output and "add" in r.output and "list" in r.output


def test_add_shared_tree_then_list(run, shared_corpus_dir, tmp_path):
    r = run("corpus", "add", str(shared_corpus_dir), "--corpus", str(tmp_path))
    assert r.exit_code == 0, r.output
    for doc in README_COUNTS:
        assert f"✓ {doc}:" in r.output
    assert "180 recitals, 113 articles, 13 annexes" in r.output
    c = Corpus.load(tmp_path)
    assert sorted(c.docs()) == sorted(README_COUNTS)
    r = run("corpus", "list", "--corpus", str(tmp_path))
    assert r.exit_code == 0 and "eu-ai-act" in r.output and "Cyber" in r.output
    r = run("corpus", "list", "--corpus", str(tmp_path), "--json")
    rows = {m["doc"]: m for m in json.loads(r.stdout)}
    assert rows["nis2"]["top_counts"] == {"annex": 3, "article": 46, "recital": 144}
    assert len(rows["gdpr"]["units_sha256"]) == 64


def test_add_one_file_with_doc_and_show(run, tmp_path):
    p = tmp_path / "policy.txt"
    p.write_text("Acme policy\n\nStaff report incidents within 24 hours.\n", encoding="utf-8")
    out = tmp_path / "corpus"
    r = run("corpus", "add", str(p), "--doc", "acme-policy", "--corpus", str(out))
    assert r.exit_code == 0, r.output
    assert "acme-policy: 1 paragraphs" in r.output
    r = run("corpus", "show", "acme-policy:sec_1", "--corpus", str(out))
    assert r.exit_code == 0 and "Staff report incidents within 24 hours." in r.output
    r = run("corpus", "show", "acme-policy:sec_9", "--corpus", str(out))
    assert r.exit_code == 2 and "no unit 'acme-policy:sec_9'" in r.output


def test_add_one_act_folder_infers_the_doc(run, shared_corpus_dir, tmp_path):
    r = run("corpus", "add", str(shared_corpus_dir / "nis2"), "--corpus", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert Corpus.load(tmp_path).docs() == ["nis2"]
    r = run("corpus", "show", "nis2:art_23.4.a", "--corpus", str(tmp_path))
    assert "(a) without undue delay and in any event within 24 hours" in r.output
    assert "parent: nis2:art_23.4" in r.output


@pytest.mark.parametrize("content, expect", [(b"", "empty"), ("é".encode("latin-1") * 40, "UTF-8")])
def test_add_bad_file_exits_2_with_the_fix(run, tmp_path, content, expect):
    p = tmp_path / "bad.md"
    p.write_bytes(content)
    r = run("corpus", "add", str(p), "--doc", "x", "--corpus", str(tmp_path / "c"))
    assert r.exit_code == 2
    assert "error:" in r.output and str(p) in r.output and expect in r.output and "Fix:" in r.output
    assert not (tmp_path / "c").exists()


def test_list_empty_corpus_says_how_to_fill_it(run, tmp_path):
    r = run("corpus", "list", "--corpus", str(tmp_path))
    assert r.exit_code == 2 and "mad-guardrails corpus fetch all" in r.output


def test_fetch_all_from_a_mirror(run, corpus_mirror, tmp_path):
    base, _ = corpus_mirror
    r = run("corpus", "fetch", "all", "--base-url", base, "--corpus", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert "skipping (no mirror path): nist-sp-1270" in r.output
    assert "sha256 recorded (not pinned in sources.yaml)" in r.output
    c = Corpus.load(tmp_path)
    assert sorted(c.docs()) == sorted(README_COUNTS)
    assert c.manifest("eu-ai-act").top_counts == {"annex": 13, "article": 113, "recital": 180}  # from the HTML
    assert c.manifest("nist-csf-2.0").counts["framework_element"] == 134  # from the PDF
    assert c.get("nist-ai-rmf:GOVERN-1.1") and c.get("dora:art_28.1.b")


def test_fetch_errors_exit_2(run, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = run("corpus", "fetch", "eu-ai-act", "--base-url", f"http://127.0.0.1:{port}/", "--corpus", str(tmp_path),
            "--timeout", "5")
    assert r.exit_code == 2 and "you are offline?" in r.output and "mad-guardrails corpus add FILE --doc ID" in r.output
    r = run("corpus", "fetch", "nist-sp-1270", "--base-url", "http://127.0.0.1:9/", "--corpus", str(tmp_path))
    assert r.exit_code == 2 and "no mirror path" in r.output
    r = run("corpus", "fetch", "nope", "--corpus", str(tmp_path))
    assert r.exit_code == 2 and "unknown act 'nope'" in r.output
