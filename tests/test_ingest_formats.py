"""One loader per format (JSONL, Markdown, EUR-Lex HTML, PDF, text) and the dispatcher that picks it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mad_guardrails.core.text import collapse_ws
from mad_guardrails.retrieval.ingest import infer_doc, ingest_file, load_file, sniff_format
from mad_guardrails.retrieval.ingest.eurlex_html import load_eurlex_html
from mad_guardrails.retrieval.ingest.jsonl import load_jsonl
from mad_guardrails.retrieval.ingest.markdown import load_markdown
from mad_guardrails.retrieval.ingest.pdf import load_pdf
from mad_guardrails.retrieval.ingest.text import load_text


@pytest.fixture(scope="module")
def ai_act_jsonl(shared_corpus_dir):
    return {u.id: u for u in load_jsonl(shared_corpus_dir / "eu-ai-act" / "eu_ai_act_2024-1689_units.jsonl",
                                        "eu-ai-act")}


@pytest.fixture(scope="module")
def csf_pdf_units(shared_corpus_dir):
    return load_pdf(shared_corpus_dir / "nist-csf-2.0" / "NIST.CSWP.29.pdf", "nist-csf-2.0")


# ---------------------------------------------------------------------------------------------------- JSONL
def test_jsonl_nist_core_formats(shared_corpus_dir):
    rmf = {u.local_id: u for u in load_jsonl(shared_corpus_dir / "nist-ai-rmf" / "nist_ai_rmf_1.0_core.jsonl",
                                             "nist-ai-rmf")}
    assert rmf["GOVERN-1.1"].parent == "nist-ai-rmf:GOVERN-1"
    assert rmf["GOVERN-1"].parent == "nist-ai-rmf:GOVERN"
    assert rmf["GOVERN"].parent is None and rmf["GOVERN-1.1"].number == "GOVERN 1.1"
    assert rmf["GOVERN-1.1"].section.startswith("GOVERN 1: Policies, processes")
    risks = load_jsonl(shared_corpus_dir / "nist-ai-600-1" / "nist_ai_600-1_gai_risks.jsonl", "nist-ai-600-1")
    assert [u.local_id for u in risks] == [f"risk_{i}" for i in range(1, 13)]
    assert risks[1].heading == "GAI risk 2 — Confabulation"
    actions = load_jsonl(shared_corpus_dir / "nist-ai-600-1" / "nist_ai_600-1_suggested_actions.jsonl",
                         "nist-ai-600-1")
    assert len(actions) == 212 and actions[0].local_id == "GV-1.1-001"
    assert actions[0].section.startswith("GOVERN 1.1: Legal and regulatory")


def test_jsonl_reads_back_saved_units_into_another_doc(tmp_path):
    from mad_guardrails.core.units import Unit

    u = Unit(id="a:art_1", doc="a", kind="article", text="1. Hello.", heading="Article 1")
    p = tmp_path / "saved.jsonl"
    p.write_text(u.model_dump_json() + "\n", encoding="utf-8")
    assert load_jsonl(p, "a")[0] == u
    assert load_jsonl(p, "b")[0].id == "b:art_1"


# ------------------------------------------------------------------------------------------------- Markdown
def test_markdown_eu_act_matches_the_structured_units(shared_corpus_dir, ai_act_jsonl):
    md = load_markdown(shared_corpus_dir / "eu-ai-act" / "eu_ai_act_2024-1689_en.md", "eu-ai-act")
    assert Counter(u.kind for u in md) == {"recital": 180, "article": 113, "annex": 13}
    same = sum(collapse_ws(u.text) == collapse_ws(ai_act_jsonl[u.id].text) for u in md)
    assert same >= 300  # the Markdown keeps the closing formulas the JSONL drops (2 units)
    assert all(u.heading == ai_act_jsonl[u.id].heading for u in md)
    art10 = next(u for u in md if u.local_id == "art_10")
    assert (art10.chapter, art10.section) == (ai_act_jsonl[art10.id].chapter, ai_act_jsonl[art10.id].section)


@pytest.mark.parametrize("doc, name, counts", [
    ("dora", "dora_regulation_2022-2554_en.md", {"recital": 106, "article": 64}),
    ("nis2", "nis2_directive_2022-2555_en.md", {"recital": 144, "article": 46, "annex": 3}),
])
def test_markdown_eu_acts_with_list_recitals_and_bold_titles(shared_corpus_dir, doc, name, counts):
    md = load_markdown(shared_corpus_dir / doc / name, doc)
    assert dict(Counter(u.kind for u in md)) == counts
    art1 = next(u for u in md if u.local_id == "art_1")
    assert art1.heading.startswith("Article 1 — Subject matter") and art1.text.startswith("1.")


def test_markdown_prose_sections_of_nist(shared_corpus_dir):
    us = {u.local_id: u for u in load_markdown(shared_corpus_dir / "nist-ai-rmf" / "nist_ai_100-1_ai_rmf_1.0.md",
                                               "nist-ai-rmf")}
    for lid in ("sec_1", "sec_1.2.1", "sec_3.7", "sec_5.1", "sec_6", "app_a", "app_d", "sec_executive_summary"):
        assert lid in us, lid
    assert us["sec_1.2.1"].parent == "nist-ai-rmf:sec_1.2"
    assert us["sec_3.1"].heading == "3.1 Valid and Reliable" and us["sec_3.1"].number == "3.1"
    assert us["sec_3.1"].chapter == "Part 1: Foundational Information"
    assert us["app_a.additional_ai_actors"].parent == "nist-ai-rmf:app_a"
    assert "table_of_contents" not in " ".join(us) and "sec_table_of_contents" not in us
    assert not us["sec_front_matter"].text.startswith(">")  # the converter's provenance note is not NIST text


# ---------------------------------------------------------------------------------------------- EUR-Lex HTML
def test_eurlex_html_sample(shared_corpus_dir, ai_act_jsonl):
    path = shared_corpus_dir / "eu-ai-act" / "source" / "L_202401689EN.000101.fmx.xml.html"
    html = load_eurlex_html(path, "eu-ai-act")
    assert Counter(u.kind for u in html) == {"recital": 180, "article": 113, "annex": 13}
    exact = sum(u.text == ai_act_jsonl[u.id].text for u in html)
    assert exact >= 300, exact
    by = {u.local_id: u for u in html}
    assert by["art_5"].heading == "Article 5 — Prohibited AI practices"
    assert by["art_5"].chapter == "CHAPTER II — PROHIBITED AI PRACTICES"
    assert by["anx_iii"].heading == "Annex III — High-risk AI systems referred to in Article 6(2)"
    assert by["rct_1"].text.startswith("The purpose of this Regulation")
    assert "ISSN" not in by["anx_xiii"].text  # the OJ footer is not part of the last annex
    units = ingest_file(path, "eu-ai-act")  # + sub-units, same ids as from the JSONL
    assert any(u.id == "eu-ai-act:art_5.1.c" and u.text.startswith("(c)") for u in units)


def test_eurlex_html_old_rendering_without_ids(tmp_path):
    html = """<html><body>
    <p class="doc-ti">REGULATION (EU) 2016/679</p>
    <p class="normal">Whereas:</p>
    <table><tr><td><p class="normal">(1)</p></td><td><p class="normal">Protection is a right.</p></td></tr></table>
    <table><tr><td><p class="normal">(2)</p></td><td><p class="normal">Second recital.</p></td></tr></table>
    <p class="normal">HAVE ADOPTED THIS REGULATION:</p>
    <p class="ti-section-1">CHAPTER I</p><p class="ti-section-2">General provisions</p>
    <p class="ti-art">Article 1</p><p class="sti-art">Subject-matter</p>
    <p class="normal">1.   This Regulation lays down:</p>
    <table><tr><td><p class="normal">(a)</p></td><td><p class="normal">rules one;</p></td></tr></table>
    <table><tr><td><p class="normal">(b)</p></td><td><p class="normal">rules two.</p></td></tr></table>
    <p class="normal">2.   It applies.</p>
    <p class="doc-ti">ANNEX</p><p class="doc-ti">A single annex</p><p class="normal">Annex text.</p>
    </body></html>"""
    p = tmp_path / "gdpr.html"
    p.write_text(html, encoding="utf-8")
    units = {u.local_id: u for u in ingest_file(p, "gdpr")}
    assert units["rct_2"].text == "Second recital."
    assert units["art_1"].text == "1. This Regulation lays down:\n\n(a) rules one;\n\n(b) rules two.\n\n2. It applies."
    assert units["art_1"].chapter == "CHAPTER I — General provisions"
    assert units["art_1.1.b"].text == "(b) rules two."
    assert units["anx"].heading == "Annex — A single annex"


# ------------------------------------------------------------------------------------------------------- PDF
def test_pdf_sections_of_nist_csf(csf_pdf_units):
    by = {u.local_id: u for u in csf_pdf_units}
    for lid in ("sec_1", "sec_2", "sec_3", "sec_3.1", "sec_3.2", "sec_4", "sec_5", "sec_5.1", "sec_5.2", "app_a",
                "app_b", "app_c"):
        assert lid in by, lid
    assert by["sec_3.1"].parent == "nist-csf-2.0:sec_3"
    assert by["sec_3.1"].heading == "3.1. CSF Profiles"
    assert "Organizational Profile" in by["sec_3.1"].text
    assert "NIST CSWP 29" not in by["sec_4"].text  # running header removed
    assert "....." not in by["sec_front_matter"].text  # table of contents removed


def test_pdf_core_elements_match_the_core_jsonl(csf_pdf_units, shared_corpus_dir):
    ref = {u.id: u for u in load_jsonl(shared_corpus_dir / "nist-csf-2.0" / "nist_csf_2.0_core.jsonl",
                                       "nist-csf-2.0")}
    fe = {u.id: u for u in csf_pdf_units if u.kind == "framework_element"}
    assert set(fe) == set(ref)
    depth = Counter(0 if u.parent is None else 1 if fe[u.parent].parent is None else 2 for u in fe.values())
    assert depth == {0: 6, 1: 22, 2: 106}
    squash = lambda s: "".join(ch for ch in s if ch.isalnum())  # noqa: E731 -- pypdf splits some words
    assert sum(squash(fe[i].text) == squash(ref[i].text) for i in ref) >= 130


# ------------------------------------------------------------------------------------------------------ text
def test_text_paragraph_units(tmp_path):
    p = tmp_path / "acme_policy.txt"
    p.write_text("Acme AI use policy\n\nStaff must not paste personal data into chatbots.\n\n"
                 "Incidents are reported within 24 hours.\nTo security@acme.example.\n", encoding="utf-8")
    units = load_text(p, "acme")
    assert [(u.local_id, u.kind) for u in units] == [("sec_1", "text"), ("sec_2", "text")]
    assert units[1].text == "Incidents are reported within 24 hours.\nTo security@acme.example."
    assert units[0].heading == "Acme AI use policy — paragraph 1"


# ------------------------------------------------------------------------------------------------ dispatcher
@pytest.mark.parametrize("name, content, fmt", [
    ("a.jsonl", b'{"x": 1}\n', "jsonl"),
    ("a.md", b"# T\n\ntext\n", "markdown"),
    ("a.html", b"<html><body></body></html>", "eurlex_html"),
    ("a.txt", b"plain\n", "text"),
    ("noext", b"%PDF-1.7\n...", "pdf"),
    ("page.download", b"<!DOCTYPE html><html><body>x</body></html>", "eurlex_html"),
    ("rows.data", b'{"unit_id": "art_1"}\n', "jsonl"),
    ("notes.data", b"# Heading\n\nBody\n", "markdown"),
    ("notes2.data", b"Just prose.\n", "text"),
])
def test_sniff_format(tmp_path, name, content, fmt):
    p = tmp_path / name
    p.write_bytes(content)
    assert sniff_format(p) == fmt


def test_infer_doc_from_names(shared_corpus_dir):
    assert infer_doc(shared_corpus_dir / "eu-ai-act" / "eu_ai_act_2024-1689_units.jsonl") == "eu-ai-act"
    assert infer_doc(shared_corpus_dir / "nist-csf-2.0") == "nist-csf-2.0"
    assert infer_doc(Path("/x/unrelated.txt")) is None
    # official file names: DOI / CELEX / OJ numbers from the catalog
    assert infer_doc(Path("/dl/NIST.AI.600-1.pdf")) == "nist-ai-600-1"
    assert infer_doc(Path("/dl/NIST.CSWP.29.pdf")) == "nist-csf-2.0"
    assert infer_doc(Path("/dl/CELEX_32022L2555_EN_TXT.html")) == "nis2"
    assert infer_doc(shared_corpus_dir / "eu-ai-act" / "source" / "L_202401689EN.000101.fmx.xml.html") == "eu-ai-act"


def test_dispatcher_picks_the_loader_by_content(shared_corpus_dir, tmp_path):
    src = shared_corpus_dir / "nist-ai-600-1" / "nist_ai_600-1_gai_risks.jsonl"
    p = tmp_path / "risks.data"
    p.write_bytes(src.read_bytes())
    units = load_file(p, "nist-ai-600-1")
    assert len(units) == 12 and units[0].source_file == "risks.data"
    assert json.loads(src.read_text(encoding="utf-8").splitlines()[0])["definition"] == units[0].text
