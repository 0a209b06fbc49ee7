"""Sub-units (paragraphs / points / sub-points) and the passage policy, on small hand-made texts."""

from __future__ import annotations

import pytest

from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.chunking import citation_label, make_passages, n_words, split_unit, windows
from mad_guardrails.retrieval.corpus import Corpus


def art(text: str, number: str = "7", kind: str = "article", doc: str = "d") -> Unit:
    local = f"art_{number}" if kind == "article" else f"anx_{number.lower()}"
    head = f"Article {number} — Demo" if kind == "article" else f"Annex {number} — Demo"
    return Unit(id=f"{doc}:{local}", doc=doc, kind=kind, heading=head, text=text, number=number)


def ids(units):
    return [u.local_id for u in units]


def test_paragraphs_points_subpoints_and_closing_subparagraph():
    text = ("1. Member States shall ensure that:\n\n(a) first point;\n\n(b) second point:\n  (i) one;\n  (ii) two;\n\n"
            "(c) third point.\n\nThe first subparagraph shall not apply to micro enterprises.\n\n2. Second paragraph.")
    subs = split_unit(art(text))
    assert ids(subs) == ["art_7.1", "art_7.1.a", "art_7.1.b", "art_7.1.b.i", "art_7.1.b.ii", "art_7.1.c", "art_7.2"]
    by = {u.local_id: u for u in subs}
    assert by["art_7.1.c"].text == "(c) third point."  # the closing sub-paragraph belongs to the paragraph
    assert by["art_7.1"].text.endswith("micro enterprises.")
    assert by["art_7.1.b"].text == "(b) second point:\n  (i) one;\n  (ii) two;"
    assert by["art_7.1.b.ii"].parent == "d:art_7.1.b" and by["art_7.1.b.ii"].kind == "point"
    assert by["art_7.1"].kind == "paragraph" and by["art_7.1.b.ii"].number == "7(1)(b)(ii)"
    for u in subs:  # verbatim slices, heading inherited
        assert u.text in text and u.heading == "Article 7 — Demo"


def test_letter_i_after_h_versus_roman_i():
    letters = "\n\n".join(f"({x}) item {x};" for x in "abcdefghij")
    assert ids(split_unit(art("Lead:\n\n" + letters)))[-3:] == ["art_7.h", "art_7.i", "art_7.j"]
    roman = "Lead:\n\n(g) g;\n\n(h) h, where:\n  (i) first;\n  (ii) second;\n  (iii) third."
    assert ids(split_unit(art(roman)))[-3:] == ["art_7.h.i", "art_7.h.ii", "art_7.h.iii"]
    # roman (v) after (iv), letter (v) after (u)
    rv = "(a) a:\n  (i) 1;\n  (ii) 2;\n  (iii) 3;\n  (iv) 4;\n  (v) 5."
    assert ids(split_unit(art(rv)))[-1] == "art_7.a.v"


def test_bulleted_and_indented_points_and_definitions():
    text = ("For the purposes of this Directive:\n- (1) 'system' means:\n  - (a) a network;\n  - (b) a device;\n"
            "- (2) 'security' means the ability to resist.")
    subs = {u.local_id: u for u in split_unit(art(text, "6"))}
    assert list(subs) == ["art_6.1", "art_6.1.a", "art_6.1.b", "art_6.2"]
    assert subs["art_6.1.a"].text == "(a) a network;"  # starts at the marker, not at the bullet
    assert subs["art_6.2"].number == "6(2)"


def test_paragraph_numbers_must_follow_each_other():
    text = "1. First.\n\n2016. A year at a line start is no paragraph.\n\n2. Second."
    assert ids(split_unit(art(text))) == ["art_7.1", "art_7.2"]


def test_annex_sections_nest_restarting_numbers():
    text = ("Part I Requirements for products\n(1) Products shall be secure.\n(2) Products shall:\n(a) x;\n(b) y.\n"
            "Part II Vulnerability handling\n(1) identify vulnerabilities;\n(2) remediate them.\n"
            "**4. Control**\n4.1. First sub-point.\n4.2. Second sub-point.")
    subs = {u.local_id: u for u in split_unit(art(text, "I", kind="annex"))}
    assert "anx_i.part_i.2.b" in subs and "anx_i.part_ii.2" in subs
    assert subs["anx_i.part_ii"].kind == "section"
    assert subs["anx_i.part_ii.4.1"].parent == "d:anx_i.part_ii.4"
    assert citation_label(subs["anx_i.part_i.2.b"]) == "Annex I, Part I, point 2(b)"
    assert citation_label(subs["anx_i.part_ii.4.1"]) == "Annex I, Part II, point 4.1"


def test_duplicate_numbering_stays_text_of_the_parent():
    text = "Article 26 is amended:\n\n(a) one;\n\n(b) two;\n\nArticle 34 is amended:\n\n(a) again;"
    subs = split_unit(art(text, "60"))
    assert ids(subs) == ["art_60.a", "art_60.b"]
    assert subs[-1].text == "(b) two;"  # closed by the unmarked line after it
    assert all("again" not in u.text for u in subs)  # the repeated (a) stays text of the article


def test_other_kinds_are_not_split():
    u = Unit(id="d:rct_1", doc="d", kind="recital", text="(a) not a point of a recital.")
    assert split_unit(u) == []


def test_windows_are_verbatim_and_bounded():
    text = " ".join(f"Sentence number {i} has some words in it." for i in range(60)) + "\n\n" + "word " * 500
    wins = windows(text, 50)
    assert all(n_words(text[a:b]) <= 50 for a, b in wins)
    assert all(text[a:b] and text[a:b] == text[a:b].strip() for a, b in wins)
    assert sum(n_words(text[a:b]) for a, b in wins) == n_words(text)
    assert [a for a, _ in wins] == sorted(a for a, _ in wins)


def test_passage_policy_on_a_long_article():
    long_point = "(b) " + "long words " * 120 + "end;"
    text = ("1. The following shall be prohibited:\n\n(a) " + "short " * 30 + "point;\n\n" + long_point +
            "\n\n(c) tiny;\n\n(d) tiny too;\n\n2. " + "closing paragraph " * 20 + ".")
    c = Corpus.from_units([art(text)])
    ps = c.passages(max_words=100, min_words=25)
    got = [p.passage_id for p in ps]
    # (a) is long enough to stand alone; (b) is too long and has no sub-units -> windows of (b);
    # (c) and (d) are short -> packed, citing their parent; paragraph 2 fits
    assert got[0] == "d:art_7.1.a"
    assert any(g.startswith("d:art_7.1.b#") for g in got)
    assert "d:art_7.1#1" in got and "d:art_7.2" in got
    packed = next(p for p in ps if p.passage_id == "d:art_7.1#1")
    assert packed.text == "(c) tiny;\n\n(d) tiny too;"
    for p in ps:
        assert p.text in c.get(p.unit_id).text
        assert n_words(p.text) <= 100
    lead = "1. The following shall be prohibited:"
    assert all(lead in p.embed_text and lead not in p.text for p in ps if p.unit_id.startswith("d:art_7.1"))


def test_short_unit_is_one_passage_and_empty_units_none():
    short = Unit(id="d:GV.OC-01", doc="d", kind="framework_element", heading="GV.OC-01", text="Mission understood.",
                 section="GV.OC — Organizational Context")
    empty = Unit(id="d:GOVERN", doc="d", kind="framework_element", heading="GOVERN", text="")
    ps = list(make_passages([short, empty], lambda _id: [], lambda _doc: "Demo"))
    assert [p.passage_id for p in ps] == ["d:GV.OC-01"]
    assert ps[0].heading == "Demo, GV.OC-01"
    assert ps[0].embed_text == "Demo, GV.OC-01\nGV.OC — Organizational Context\nMission understood."


def test_max_words_is_validated():
    with pytest.raises(ValueError):
        list(make_passages([], lambda _id: [], lambda _doc: "", max_words=3))
