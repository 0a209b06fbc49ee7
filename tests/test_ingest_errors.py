"""Bad corpus files fail closed with a CorpusError that names the file and says how to fix it."""

from __future__ import annotations

import json

import pytest

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.retrieval.corpus import Corpus, load_corpus
from mad_guardrails.retrieval.ingest import ingest_act_dir, ingest_file


def _err(path, **kw) -> str:
    with pytest.raises(CorpusError) as ei:
        ingest_file(path, **kw)
    msg = str(ei.value)
    assert str(path) in msg, msg  # names the file
    assert "Fix:" in msg, msg  # says what to do
    return msg


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.md", "empty.txt", "empty.html", "empty.pdf"])
def test_empty_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"")
    assert "empty" in _err(p, doc="x")


def test_whitespace_only_file(tmp_path):
    p = tmp_path / "blank.md"
    p.write_text("\n   \n\t\n", encoding="utf-8")
    assert "empty" in _err(p, doc="x")


def test_binary_garbage(tmp_path):
    p = tmp_path / "act.txt"
    p.write_bytes(bytes(range(256)) * 20)
    assert "binary" in _err(p, doc="x")


def test_binary_without_known_extension(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    msg = _err(p, doc="x")
    assert "unknown format" in msg and "pdf" in msg


def test_latin1_is_reported_with_conversion_hint(tmp_path):
    p = tmp_path / "act.md"
    p.write_bytes("# Article 1 — Définitions\n\nLa présente réglementation…\n".encode("latin-1", "replace"))
    msg = _err(p, doc="x")
    assert "not valid UTF-8" in msg and "line 1" in msg
    assert "UTF-8 was expected" in msg and "iconv" in msg


def test_utf16_is_reported_with_conversion_hint(tmp_path):
    p = tmp_path / "act.txt"
    p.write_bytes("Article 1\n\nThis Regulation applies.\n".encode("utf-16"))
    msg = _err(p, doc="x")
    assert "UTF-16" in msg and "UTF-8" in msg and "iconv -f UTF-16 -t UTF-8" in msg


def test_utf16_without_bom(tmp_path):
    p = tmp_path / "act.txt"
    p.write_bytes("Article 1\n\nThis Regulation applies to providers.\n".encode("utf-16-le"))
    assert "UTF-16" in _err(p, doc="x")


def test_jsonl_row_that_is_not_json_names_the_line(tmp_path):
    p = tmp_path / "x_units.jsonl"
    good = {"unit_id": "art_1", "type": "article", "number": "1", "title": "", "text": "1. Fine."}
    p.write_text(json.dumps(good) + "\n\n" + '{"unit_id": "art_2", "type": "article", "text": "oops"\n',
                 encoding="utf-8")
    msg = _err(p, doc="x")
    assert "line 3" in msg and f"{p}:3" in msg and "not valid JSON" in msg


def test_jsonl_row_that_is_not_an_object(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('["a", "b"]\n', encoding="utf-8")
    assert "line 1 is a JSON list" in _err(p, doc="x")


def test_jsonl_unknown_schema_and_missing_field(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"foo": 1}\n', encoding="utf-8")
    assert "unknown row schema" in _err(p, doc="x")
    p.write_text('{"unit_id": "art_1", "type": "article"}\n', encoding="utf-8")
    assert "lacks the field 'text'" in _err(p, doc="x")
    p.write_text('{"unit_id": "art_1", "type": "chapter", "text": "t"}\n', encoding="utf-8")
    assert "recital/article/annex" in _err(p, doc="x")


def test_duplicate_unit_ids(tmp_path):
    p = tmp_path / "x.jsonl"
    row = json.dumps({"unit_id": "art_1", "type": "article", "number": "1", "text": "1. A."})
    p.write_text(row + "\n" + row + "\n", encoding="utf-8")
    assert "occurs twice" in _err(p, doc="x")


@pytest.mark.parametrize("name, hint", [("act.docx", "Word"), ("act.xml", "Formex"), ("act.json", ".jsonl"),
                                        ("act.zip", "unpack")])
def test_unknown_format(tmp_path, name, hint):
    p = tmp_path / name
    p.write_bytes(b"PK\x03\x04 whatever")
    msg = _err(p, doc="x")
    assert "unknown format" in msg and hint in msg


def test_unknown_format_name(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("text\n", encoding="utf-8")
    assert "unknown format 'docx'" in _err(p, doc="x", fmt="docx")


def test_broken_pdf(tmp_path):
    p = tmp_path / "pub.pdf"
    p.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> garbage garbage\n")
    msg = _err(p, doc="x")
    assert "PDF" in msg and "re-download" in msg


def test_html_that_is_not_an_act(tmp_path):
    p = tmp_path / "search.html"
    p.write_text("<html><body><p>No results.</p></body></html>", encoding="utf-8")
    assert "no recitals, articles or annexes" in _err(p, doc="x")


def test_bad_doc_id_and_missing_doc(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text("Some paragraph.\n", encoding="utf-8")
    assert "--doc" in _err(p)
    assert "not valid" in _err(p, doc="Bad Id!")


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "nope")
    with pytest.raises(CorpusError, match="neither an ingested corpus"):
        load_corpus(tmp_path)
    (tmp_path / "act").mkdir()
    with pytest.raises(CorpusError, match="no ingestible files"):
        ingest_act_dir(tmp_path / "act", "act")
    with pytest.raises(CorpusError, match="no ingested acts"):
        Corpus.load(tmp_path)


def test_corrupt_saved_units_line(tmp_path):
    (tmp_path / "x.units.jsonl").write_text('{"id": "x:art_1"}\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"x.units.jsonl:1.*not a saved Unit"):
        Corpus.load(tmp_path)
