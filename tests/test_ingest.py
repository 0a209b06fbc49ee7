"""The shared corpus through the project's ingest: counts, id scheme, sub-units, metadata, passages, save/load."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest

from mad_guardrails.core.units import id_covers
from mad_guardrails.retrieval.corpus import Corpus, load_corpus
from tests.fixtures.corpus import README_COUNTS


def element_type(c: Corpus, u) -> str:
    """function / category / subcategory / risk / action for NIST elements, else the kind."""
    if u.kind != "framework_element":
        return u.kind
    if u.local_id.startswith("risk_"):
        return "risk"
    if re.fullmatch(r"[A-Z]{2}-\d+\.\d+-\d{3}", u.local_id):
        return "action"
    depth = len(c.ancestors(u.id))
    return ("function", "category", "subcategory")[depth]


@pytest.mark.parametrize("doc", sorted(README_COUNTS))
def test_unit_counts_match_the_shared_readme(shared_units_corpus, doc):
    c = shared_units_corpus
    got = Counter(element_type(c, u) for u in c.top_units(doc))
    want = README_COUNTS[doc]
    assert {k: got.get(k, 0) for k in want} == want
    if doc.startswith("nist-ai"):  # plus the prose sections of the Markdown (all text retrievable)
        assert got["section"] > 10
    else:
        assert set(got) <= set(want)


def test_all_eight_acts_present_and_ids_unique(shared_units_corpus):
    c = shared_units_corpus
    assert sorted(c.docs()) == sorted(README_COUNTS)
    ids = [u.id for u in c.units()]
    assert len(ids) == len(set(ids))
    for u in c.units():
        assert u.id.startswith(u.doc + ":")
        if u.parent is not None:
            assert c.get(u.parent) is not None, f"{u.id} has a dangling parent {u.parent}"


@pytest.mark.parametrize(
    "unit_id, parent, starts, contains",
    [
        ("eu-ai-act:art_5.1.c", "eu-ai-act:art_5.1", "(c)", "social score"),
        ("eu-ai-act:art_5.1.c.ii", "eu-ai-act:art_5.1.c", "(ii)", "unjustified or disproportionate"),
        ("eu-ai-act:art_5.1.h.iii", "eu-ai-act:art_5.1.h", "(iii)", "localisation or identification"),
        ("eu-ai-act:art_5.1", "eu-ai-act:art_5", "1.", "shall be prohibited"),
        ("nis2:art_23.4.a", "nis2:art_23.4", "(a)", "24 hours"),
        ("nis2:art_23.4.b", "nis2:art_23.4", "(b)", "72 hours"),
        ("eu-ai-act:art_3.1", "eu-ai-act:art_3", "(1)", "‘AI system’ means"),
        ("eu-ai-act:anx_iii.1.a", "eu-ai-act:anx_iii.1", "(a)", "remote biometric identification"),
        ("eu-ai-act:anx_vii.4.1", "eu-ai-act:anx_vii.4", "4.1.", "application referred to in point 3"),
        ("cra:anx_i.part_ii.1", "cra:anx_i.part_ii", "(1)", "vulnerabilities"),
        ("dora:art_5.2.i.ii", "dora:art_5.2.i", "(ii)", ""),
        ("gdpr:art_6.1.f", "gdpr:art_6.1", "(f)", "legitimate interests"),
        ("nist-csf-2.0:GV.OC-01", "nist-csf-2.0:GV.OC", "The organizational mission", "mission"),
        ("nist-ai-rmf:GOVERN-1.1", "nist-ai-rmf:GOVERN-1", "Legal and regulatory", "documented"),
        ("nist-ai-rmf:sec_3.1", "nist-ai-rmf:sec_3", "", "Validation"),
        ("nist-ai-600-1:GV-1.1-001", None, "Align GAI development", "intellectual property"),
        ("nist-ai-600-1:risk_2", None, "The production of confidently stated", "hallucinations"),
        ("nist-ai-600-1:sec_2.2", "nist-ai-600-1:sec_2", "", "confabulat"),
    ],
)
def test_id_scheme_and_points(shared_units_corpus, unit_id, parent, starts, contains):
    u = shared_units_corpus.get(unit_id)
    assert u is not None, unit_id
    assert u.parent == parent
    assert u.text.startswith(starts)
    assert contains.lower() in u.text.lower()


def test_roman_and_letter_points_are_told_apart(shared_units_corpus):
    c = shared_units_corpus
    # Article 5(1) of the AI Act runs (a)..(h); (h) has roman sub-points (i)..(iii)
    assert [k.local_id for k in c.children("eu-ai-act:art_5.1")] == [f"art_5.1.{x}" for x in "abcdefgh"]
    assert [k.local_id for k in c.children("eu-ai-act:art_5.1.h")] == [f"art_5.1.h.{x}" for x in ("i", "ii", "iii")]
    # CRA Annex I Part I point (2) runs (a)..(m): its (i) follows (h) and is a letter
    assert [k.local_id.rsplit(".", 1)[1] for k in c.children("cra:anx_i.part_i.2")] == list("abcdefghijklm")


def test_every_subunit_is_a_verbatim_slice_of_its_parent_and_article(shared_units_corpus):
    c = shared_units_corpus
    n = 0
    for u in c.units(kinds=("paragraph", "point")):
        parent = c.get(u.parent)
        root = c.root_of(u.id)
        assert u.text and u.text in parent.text, u.id
        assert u.text in root.text and root.kind in ("article", "annex"), u.id
        assert id_covers(root.id, u.id)
        n += 1
    assert n > 3000


def test_quote_from_a_point_is_found_in_its_article(shared_units_corpus):
    c = shared_units_corpus
    point = c.get("nis2:art_23.4.a")
    quote = point.text[4:80]
    assert quote in c.root_of(point.id).text
    assert c.root_of(point.id).id == "nis2:art_23"


def test_unit_metadata(shared_units_corpus):
    c = shared_units_corpus
    art5 = c.get("eu-ai-act:art_5")
    assert art5.act_title == "Regulation (EU) 2024/1689 (Artificial Intelligence Act)"
    assert art5.heading == "Article 5 — Prohibited AI practices"
    assert art5.kind == "article" and art5.number == "5"
    assert art5.chapter == "CHAPTER II — PROHIBITED AI PRACTICES"
    assert art5.published == date(2024, 7, 12)
    assert art5.source_file == "eu_ai_act_2024-1689_units.jsonl"
    pt = c.get("eu-ai-act:art_5.1.c")
    assert (pt.kind, pt.number, pt.heading, pt.chapter) == ("point", "5(1)(c)", art5.heading, art5.chapter)
    art10 = c.get("eu-ai-act:art_10")
    assert art10.section == "SECTION 2 — Requirements for high-risk AI systems"
    assert c.get("eu-ai-act:anx_iii").heading == "Annex III — High-risk AI systems referred to in Article 6(2)"
    assert c.get("eu-ai-act:rct_12").heading == "Recital (12)"
    sub = c.get("nist-csf-2.0:GV.OC-01")
    assert (sub.chapter, sub.section) == ("GV — GOVERN", "GV.OC — Organizational Context")
    assert c.get("nis2:art_1").published == date(2022, 12, 27)
    for doc in c.docs():
        assert all(u.act_title and u.published for u in c.units(doc)), doc


def test_children_root_and_top_units(shared_units_corpus):
    c = shared_units_corpus
    assert [k.id for k in c.children("nist-csf-2.0:GV")][:2] == ["nist-csf-2.0:GV.OC", "nist-csf-2.0:GV.RM"]
    assert c.root_of("nist-csf-2.0:GV.OC-01").id == "nist-csf-2.0:GV"
    assert c.root_of("eu-ai-act:art_5.1.c.ii").id == "eu-ai-act:art_5"
    assert c.root_of("eu-ai-act:nope") is None
    assert c.get("eu-ai-act:nope") is None
    tops = c.top_units("eu-ai-act")
    assert len(tops) == 306 and all(u.kind in ("recital", "article", "annex") for u in tops)
    assert {u.kind for u in c.units("eu-ai-act", kinds="point")} == {"point"}


def test_passages_cite_real_units_with_verbatim_text(shared_units_corpus):
    c = shared_units_corpus
    ps = c.passages(max_words=180)
    assert len({p.passage_id for p in ps}) == len(ps)
    for p in ps:
        u = c.get(p.unit_id)
        assert u is not None and p.doc == u.doc
        assert p.text and p.text in u.text, p.passage_id
        assert len(p.text.split()) <= 180, p.passage_id
        assert p.embed_text.startswith(p.heading) and p.text in p.embed_text
        assert p.passage_id == p.unit_id or p.passage_id.startswith(p.unit_id + "#")
    by_id = {p.passage_id: p for p in ps}
    # a long article is cut along its points; a point keeps the paragraph's lead-in as embedding context
    c_pass = by_id["eu-ai-act:art_5.1.c"]
    assert c_pass.heading == "EU AI Act, Article 5(1)(c) — Prohibited AI practices"
    assert "The following AI practices shall be prohibited:" in c_pass.embed_text
    assert "The following AI practices" not in c_pass.text
    # short units are one passage with their own id
    assert by_id["nist-csf-2.0:GV.OC-01"].text == c.get("nist-csf-2.0:GV.OC-01").text
    # every top-level unit with text is reachable from some passage
    covered = {c.root_of(p.unit_id).id for p in ps}
    missing = [u.id for u in c.top_units() if u.text.strip() and c.root_of(u.id).id not in covered]
    assert not missing


def test_passages_cover_all_text_of_an_article(shared_units_corpus):
    c = shared_units_corpus
    art = c.get("nis2:art_23")
    texts = [p.text for p in c.passages(doc="nis2") if id_covers(art.id, p.unit_id)]
    words = Counter(art.text.split())
    got = Counter(w for t in texts for w in t.split())
    lost = {w: n - got[w] for w, n in words.items() if got[w] < n}
    assert not lost


def test_smaller_max_words_gives_more_passages(shared_units_corpus):
    c = shared_units_corpus
    big, small = c.passages(max_words=400, doc="gdpr"), c.passages(max_words=80, doc="gdpr")
    assert len(small) > len(big)
    assert max(len(p.text.split()) for p in small) <= 80


def test_save_load_roundtrip_and_hash(shared_units_corpus, tmp_path):
    c = shared_units_corpus
    c.save(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.units.jsonl")) == sorted(f"{d}.units.jsonl" for d in c.docs())
    assert (tmp_path / "eu-ai-act.manifest.json").exists()
    back = Corpus.load(tmp_path)
    assert back.hash() == c.hash() and len(back) == len(c)
    assert back.get("eu-ai-act:art_5.1.c") == c.get("eu-ai-act:art_5.1.c")
    m = back.manifest("eu-ai-act")
    assert m.title.startswith("Regulation (EU) 2024/1689")
    assert m.top_counts == {"annex": 13, "article": 113, "recital": 180}
    assert m.sha256 and all(re.fullmatch(r"[0-9a-f]{64}", v) for v in m.sha256.values())
    # load_corpus auto-detects a saved corpus; docs= restricts it
    only = load_corpus(tmp_path, docs=["nis2"])
    assert only.docs() == ["nis2"] and only.hash() != c.hash()


def test_hash_is_stable_and_content_sensitive(shared_corpus_dir, shared_units_corpus):
    again = load_corpus(shared_corpus_dir / "nis2")
    ref = Corpus.from_units(shared_units_corpus.units("nis2"))
    assert again.hash() == ref.hash()
    u = again.get("nis2:art_1")
    changed = Corpus.from_units([u.model_copy(update={"text": u.text + " x"}) if x.id == u.id else x
                                 for x in again.units()], subunits=False)
    assert changed.hash() != again.hash()


def test_edited_units_file_is_detected(shared_units_corpus, tmp_path):
    from mad_guardrails.core.errors import CorpusError

    Corpus.from_units(shared_units_corpus.units("dora")).save(tmp_path)
    f = tmp_path / "dora.units.jsonl"
    lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
    f.write_text("".join(lines[:-3]), encoding="utf-8")
    with pytest.raises(CorpusError, match="does not match its manifest"):
        Corpus.load(tmp_path)


def test_load_corpus_on_one_act_folder_and_single_file(shared_corpus_dir):
    c = load_corpus(shared_corpus_dir / "nist-ai-600-1")
    assert c.docs() == ["nist-ai-600-1"]
    assert c.get("nist-ai-600-1:sec_2.1") is not None  # prose from the Markdown
    f = load_corpus(shared_corpus_dir / "dora" / "dora_regulation_2022-2554_units.jsonl")
    assert f.docs() == ["dora"] and f.get("dora:art_5.2.a") is not None
