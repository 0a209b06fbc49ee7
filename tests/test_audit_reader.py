"""Audit input: JSONL / CSV rows are validated one by one; a bad row becomes an error row, the rest are read."""

from __future__ import annotations

import json

import pytest

from mad_guardrails.core.errors import InputError
from mad_guardrails.guardrails.audit.reader import read_rows


def _jsonl(tmp_path, lines: list[bytes | str | dict], name="in.jsonl"):
    p = tmp_path / name
    out = []
    for ln in lines:
        if isinstance(ln, dict):
            ln = json.dumps(ln)
        out.append(ln if isinstance(ln, bytes) else ln.encode())
    p.write_bytes(b"\n".join(out) + b"\n")
    return p


def test_jsonl_bad_rows_become_error_rows_with_line_and_reason(tmp_path):
    p = _jsonl(tmp_path, [
        {"id": "ok-1", "output": "NIS2 gives 24 hours for the early warning.", "query": "NIS2?", "team": "a",
         "metadata": {"source": "bot"}},
        "{not json",
        {"id": "empty", "output": "   "},
        {"id": "missing"},
        b'{"id": "latin1", "output": "caf\xe9"}',
        {"id": "long", "output": "x" * 200},
        "[1, 2]",
        {"id": 7, "output": "integer ids are fine"},
        {"id": ["a"], "output": "list id"},
        {"id": "bad-query", "output": "fine", "query": 5},
        "",
        {"output": "no id: the line number names it"},
    ])
    rows = read_rows(p, max_chars=100)
    by = {r.id: r for r in rows}
    assert [r.id for r in rows] == ["ok-1", "line-2", "empty", "missing", "line-5", "long", "line-7", "7", "line-9",
                                    "bad-query", "line-12"]
    ok = by["ok-1"]
    assert ok.ok and ok.query == "NIS2?" and ok.metadata == {"source": "bot", "team": "a"} and ok.line == 1
    assert "line 2: not valid JSON" in by["line-2"].error
    assert "line 3" in by["empty"].error and "empty" in by["empty"].error
    assert "line 4" in by["missing"].error and "'output' is missing" in by["missing"].error
    assert "line 5: not valid UTF-8" in by["line-5"].error
    assert "200 characters" in by["long"].error and "limit is 100" in by["long"].error
    assert "expected a JSON object" in by["line-7"].error
    assert by["7"].ok
    assert "'id' must be a string or an integer" in by["line-9"].error
    assert "'query' must be a string" in by["bad-query"].error
    assert by["line-12"].ok and by["line-12"].line == 12
    assert all("Fix:" in r.error for r in rows if not r.ok)


def test_duplicate_ids_become_error_rows_and_ids_stay_unique(tmp_path):
    p = _jsonl(tmp_path, [{"id": "a", "output": "one"}, {"id": "b", "output": "two"}, {"id": "a", "output": "three"},
                          {"id": "a", "output": "four"}])
    rows = read_rows(p)
    assert [r.id for r in rows] == ["a", "b", "a#line3", "a#line4"]
    assert rows[0].ok and rows[0].output == "one"
    assert "duplicate id 'a' (first used on line 1)" in rows[2].error and rows[2].output is None
    assert len({r.id for r in rows}) == len(rows)


def test_limit_bom_and_crlf(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + b"\r\n".join(json.dumps({"id": i, "output": f"text {i}"}).encode()
                                                for i in range(5)) + b"\r\n")
    rows = read_rows(p, limit=3)
    assert [(r.id, r.output) for r in rows] == [("0", "text 0"), ("1", "text 1"), ("2", "text 2")]


def test_csv_rows_quoted_newlines_bad_encoding_and_extra_fields(tmp_path):
    p = tmp_path / "in.csv"
    p.write_bytes(
        b"id,output,query,team\n"
        b'r1,"Two lines,\nwith a comma",What?,red\n'
        b"r2,caf\xe9 latin-1,,blue\n"
        b"r3,too,many,fields,here\n"
        b"r4,,,green\n"
        b'r5,"fine ""quoted"" text",,\n'
        b'r6,"unterminated\n'
    )
    rows = read_rows(p)
    by = {r.id: r for r in rows}
    assert by["r1"].ok and by["r1"].output == "Two lines,\nwith a comma" and by["r1"].query == "What?"
    assert by["r1"].metadata == {"team": "red"} and by["r1"].line == 2
    bad_enc = next(r for r in rows if r.line == 4)
    assert "not valid UTF-8 (byte 0xe9)" in bad_enc.error
    extra = next(r for r in rows if r.line == 5)
    assert "5 fields but the header has 4" in extra.error
    assert "'output' is missing" in by["r4"].error
    assert by["r5"].output == 'fine "quoted" text' and by["r5"].query is None
    assert "not valid CSV" in next(r for r in rows if r.line == 8).error


def test_csv_policies_column_and_semicolon_delimiter(tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("id;output;policies\na;NIS2 text;nis2, gdpr\n", encoding="utf-8")
    (row,) = read_rows(p)
    assert row.ok and row.policies == ["nis2", "gdpr"]


@pytest.mark.parametrize("content,needle", [
    (b"id,query\n1,x\n", "no 'output' column"),
    (b"\xff\xfei\x00d\x00", "UTF-16"),
    (b"\n\n", "no rows"),
])
def test_whole_file_problems_raise_input_error(tmp_path, content, needle):
    p = tmp_path / ("in.csv" if content.startswith(b"id") else "in.jsonl")
    p.write_bytes(content)
    with pytest.raises(InputError, match=needle):
        read_rows(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_rows(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="directory"):
        read_rows(tmp_path)


def test_example_file_has_two_bad_rows():
    from mad_guardrails.core.paths import PROJECT_ROOT

    rows = read_rows(PROJECT_ROOT / "examples" / "audit_small.jsonl")
    bad = [r for r in rows if not r.ok]
    assert len(rows) >= 12 and len(bad) == 2
    assert any("not valid JSON" in r.error for r in bad) and any("empty" in r.error for r in bad)
