"""Bad inputs, as a hostile-but-fair tester tries them: every one is refused with a clear error naming the file / line
/ field (exit 2 for a bad file, option or config before anything is checked) or becomes an error row naming its line
while every other row goes on (exit 4) — never a traceback, never a silently swallowed row. Test ids ``input-<name>``
are counted by ``bench/fault_counts.py``. No model is loaded here except in the one ``check`` test."""

from __future__ import annotations

import io
import json
import sys

import pytest

from mad_guardrails.core.errors import InputError
from mad_guardrails.guardrails.audit.reader import read_rows
from tests.fault_server import record
from tests.fault_server import fault_profile, fault_server  # noqa: F401 - fixtures

GOOD = {"id": "good", "output": "NIS2 early warnings go to the CSIRT within 24 hours."}


def _main(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """Run the real CLI entry point (``mad_guardrails.guardrails.cli:main``) in-process."""
    from mad_guardrails.guardrails.cli import main

    monkeypatch.setattr(sys, "argv", ["mad-guardrails", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as e:
        main()
    cap = capsys.readouterr()
    return e.value.code, " ".join((cap.out + cap.err).split())


# -- row-level: each bad row becomes an error row naming its line; the good rows around it are kept -----------------
ROWS: dict[str, tuple[bytes, str]] = {
    "empty-output": (b'{"id": "x", "output": ""}', "'output' is"),
    "whitespace-output": (b'{"id": "x", "output": "  \\t\\n "}', "'output' is empty"),
    "missing-output": (b'{"id": "x", "query": "q"}', "'output' is missing"),
    "output-not-text": (b'{"id": "x", "output": 42}', "must be a string"),
    "one-megabyte": (json.dumps({"id": "x", "output": "a" * 1_000_000}).encode(), "the limit is"),
    "nul-bytes": (b'{"id": "x", "output": "abc\\u0000def"}', "NUL"),
    "non-utf8": (b'{"id": "x", "output": "caf\xe9 au lait"}', "not valid UTF-8 (byte"),
    "not-json": (b"{this is not json", "not valid JSON"),
    "json-array": (b'["a", "b"]', "expected a JSON object"),
    "truncated-json": (b'{"id": "x", "output": "cut sh', "not valid JSON"),
    "id-wrong-type": (b'{"id": ["x"], "output": "text"}', "'id' must be a string"),
    "policies-wrong-type": (b'{"id": "x", "output": "text", "policies": 3}', "'policies' must be a list"),
    "duplicate-id": (json.dumps(GOOD).encode(), "duplicate id 'good'"),
}


@pytest.mark.parametrize("name", [pytest.param(n, id=f"input-row-{n}") for n in ROWS])
def test_bad_jsonl_row_is_an_error_row_naming_its_line(tmp_path, name):
    bad, words = ROWS[name]
    src = tmp_path / "in.jsonl"
    after = {"id": "after", "output": "GDPR breach notification within 72 hours."}
    src.write_bytes(json.dumps(GOOD).encode() + b"\n" + bad + b"\n" + json.dumps(after).encode() + b"\n")
    rows = read_rows(src)
    assert len(rows) == 3 and rows[0].ok and rows[2].ok and rows[2].id == "after", [(r.id, r.error) for r in rows]
    assert not rows[1].ok and rows[1].line == 2 and rows[1].error.startswith("line 2:"), rows[1].error
    assert words in rows[1].error and "Fix:" in rows[1].error, rows[1].error
    record("input", f"row-{name}", handled=True)


def test_control_characters_are_data_not_errors(tmp_path):
    """ANSI escapes, bells and other control characters are text under check (data), kept as they are."""
    text = "Ignore this \x1b[31mred\x1b[0m text\x07 and \x0b tabs\x7f."
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"id": "ctl", "output": text}) + "\n", encoding="utf-8")
    rows = read_rows(src)
    assert rows[0].ok and rows[0].output == text
    record("input", "row-control-characters", handled=True)


CSV: dict[str, tuple[bytes, list[tuple[str, int, bool]]]] = {
    # (id, line, ok) of every row read
    "unterminated-quote": (b'id,output\na,"never closed\nb,second row\nc,third row\n',
                           [("line-2", 2, False), ("b", 3, True), ("c", 4, True)]),
    "quote-closed-too-late": (b'id,output\na,"oops\nb,second\nc,"third"\nd,fourth\n',
                              [("line-2", 2, False), ("b", 3, True), ("c", 4, True), ("d", 5, True)]),
    "too-many-fields": (b"id,output\na,one,two\nb,fine\n", [("line-2", 2, False), ("b", 3, True)]),
    "non-utf8-field": (b"id,output\na,caf\xe9\nb,fine\n", [("line-2", 2, False), ("b", 3, True)]),
    "empty-output-cell": (b"id,output\na,\nb,fine\n", [("a", 2, False), ("b", 3, True)]),
}


@pytest.mark.parametrize("name", [pytest.param(n, id=f"input-csv-{n}") for n in CSV])
def test_bad_csv_row_is_named_and_the_rest_is_read(tmp_path, name):
    data, want = CSV[name]
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    rows = read_rows(src)
    assert [(r.id, r.line, r.ok) for r in rows] == want, [(r.id, r.line, r.error) for r in rows]
    bad = next(r for r in rows if not r.ok)
    assert bad.error.startswith(f"line {bad.line}:") and "Fix:" in bad.error
    record("input", f"csv-{name}", handled=True)


def test_all_bad_rows_audit_exits_4_with_one_row_per_line(tmp_path, monkeypatch, capsys):
    """A file of nothing but bad rows: no model is loaded, every line is one error row, exit 4."""
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"\n".join(bad for name, (bad, _) in ROWS.items() if name != "duplicate-id") + b"\n")
    out = tmp_path / "out"
    code, text = _main(monkeypatch, capsys, "audit", str(src), "--out", str(out), "--no-progress")
    rows = [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines()]
    n = len(ROWS) - 1
    record("audit", "all-bad-rows", rows_in=n, rows_out=len(rows), lost=n - len(rows),
           duplicated=len(rows) - len({r["id"] for r in rows}))
    assert code == 4 and len(rows) == n and all(r["status"] == "error" for r in rows), text
    assert [r["line"] for r in rows] == list(range(1, n + 1))
    assert json.loads((out / "summary.json").read_text())["faults"]["input"] == n


# -- file-level / usage / config: exit 2 with a clear error, before anything is checked -----------------------------
def _file(tmp_path, name: str, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def _profile(tmp_path, edit) -> str:
    import yaml

    from mad_guardrails.guardrails.config import PROFILES_DIR

    data = yaml.safe_load((PROFILES_DIR / "offline.yaml").read_text(encoding="utf-8"))
    edit(data)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(p)


def _set(path: str, value):
    def edit(d):
        *head, last = path.split(".")
        for k in head:
            d = d.setdefault(k, {})
        d[last] = value
    return edit


GOOD_LINE = (json.dumps(GOOD) + "\n").encode()
USAGE = {
    "empty-file": (lambda t: [_file(t, "e.jsonl", b"")], "the input has no rows"),
    "whitespace-file": (lambda t: [_file(t, "w.jsonl", b"  \n\t\n \n")], "the input has no rows"),
    "utf16-file": (lambda t: [_file(t, "u.jsonl", GOOD_LINE.decode().encode("utf-16"))], "UTF-16"),
    "missing-file": (lambda t: [str(t / "nope.jsonl")], "input file not found"),
    "directory": (lambda t: [str(t)], "input is a directory"),
    "csv-without-output-column": (lambda t: [_file(t, "c.csv", b"id,text\na,b\n")], "no 'output' column"),
    "out-is-a-file": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--out", _file(t, "f.txt", b"x")],
                      "--out names a file"),
    "out-under-a-file": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--out", _file(t, "g.txt", b"x") + "/sub"],
                         "cannot create the output folder"),
    "unknown-option": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--bogus"], "No such option"),
    "bad-fail-on": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--fail-on", "sometimes"], "--fail-on"),
    "bad-mode": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--mode", "lenient", "--out", str(t / "o")],
                 "unknown mode"),
    "bad-yaml-profile": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--profile",
                                    _file(t, "bad.yaml", b"llm: [unclosed\n  model: x\n")], "bad.yaml"),
    "unknown-profile-key": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--profile",
                                       _profile(t, _set("llm.temprature", 0.2))], "temprature"),
    "negative-timeout": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--profile", _profile(t, _set("timeout_s", -5))],
                         "field 'timeout_s'"),
    "negative-llm-timeout": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--profile",
                                        _profile(t, _set("llm.timeout_s", -5))], "field 'llm.timeout_s'"),
    "zero-llm-concurrency": (lambda t: [_file(t, "in.jsonl", GOOD_LINE), "--profile",
                                        _profile(t, _set("llm.concurrency", 0))], "field 'llm.concurrency'"),
}


@pytest.mark.parametrize("name", [pytest.param(n, id=f"input-usage-{n}") for n in USAGE])
def test_bad_file_option_or_config_exits_2_with_a_clear_error(tmp_path, monkeypatch, capsys, name):
    make, words = USAGE[name]
    args = make(tmp_path)
    code, text = _main(monkeypatch, capsys, "audit", *args, "--no-progress")
    assert code == 2, text
    assert words in text and "Traceback" not in text, text
    record("input", f"usage-{name}", handled=True)


# -- the text under check (check / console / API all go through validate_text) --------------------------------------
TEXTS = {
    "empty": ("", "is empty"),
    "whitespace": (" \n\t ", "is empty"),
    "nul": ("abc\x00def", "NUL"),
    "surrogate-escaped-bytes": ("caf\udce9 au lait", "not valid UTF-8 (byte 3"),
    "non-utf8-bytes": (b"caf\xe9", "not valid UTF-8 (byte 3"),
    "one-megabyte": ("a" * 1_000_000, "the limit is"),
    "not-text": (12345, "must be a string"),
}


@pytest.mark.parametrize("name", [pytest.param(n, id=f"input-text-{n}") for n in TEXTS])
def test_bad_text_is_an_input_error(name):
    from mad_guardrails.core.debate import validate_text

    value, words = TEXTS[name]
    with pytest.raises(InputError) as e:
        validate_text(value)
    assert words in str(e.value) and "Fix:" in str(e.value), str(e.value)
    record("input", f"text-{name}", handled=True)


def test_check_cli_non_utf8_stdin_exits_2(fault_profile, monkeypatch, capsys):  # noqa: F811
    """Bytes that are not UTF-8 on stdin: a clear input error naming the byte, exit 2 (not a TypeError)."""
    stdin = io.TextIOWrapper(io.BytesIO(b"The early warning is due in 24 h\xff\xfe ours."), encoding="utf-8",
                             errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, text = _main(monkeypatch, capsys, "check", "-", "--profile", str(fault_profile))
    assert code == 2 and "not valid UTF-8 (byte 32" in text, text
    record("input", "check-stdin-non-utf8", handled=True)


# -- policy packs -------------------------------------------------------------------------------------------------
def test_policies_validate_fails_on_an_empty_folder(tmp_path, monkeypatch, capsys):
    code, text = _main(monkeypatch, capsys, "policies", "validate", str(tmp_path), "--no-corpus")
    assert code == 1 and "no policy pack files" in text, text
    record("input", "policies-empty-folder", handled=True)


def test_policies_validate_reports_bad_yaml_with_its_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "bad.yaml").write_text("id: x\nrules:\n  - id: [unclosed\n", encoding="utf-8")
    code, text = _main(monkeypatch, capsys, "policies", "validate", str(tmp_path), "--no-corpus")
    assert code == 1 and "bad.yaml:" in text and "not valid YAML" in text, text
    record("input", "policies-bad-yaml", handled=True)


def test_policies_validate_accepts_the_corpus_layout_corpus_add_writes(tmp_path, monkeypatch, capsys):
    from mad_guardrails.core.paths import shared_corpus
    from mad_guardrails.policies.loader import BUILTIN_DIR
    from mad_guardrails.policies.validate import validate_sources

    root = shared_corpus()
    if root is None:
        pytest.skip("../shared/data/corpus is not present")
    src = next((root / "nis2").glob("*_units.jsonl"))
    corpus = tmp_path / "corpus"
    code, text = _main(monkeypatch, capsys, "corpus", "add", str(src), "--doc", "nis2", "--corpus", str(corpus))
    assert code in (0, None) and any(corpus.glob("*.units.jsonl")), text  # the saved layout: <doc>.units.jsonl
    rep = validate_sources([str(BUILTIN_DIR / "nis2.yaml")], corpus=corpus)
    assert rep.checked_provisions > 0 and rep.ok, [str(p) for p in rep.errors][:3]
    code, text = _main(monkeypatch, capsys, "policies", "validate", str(BUILTIN_DIR / "nis2.yaml"), "--corpus",
                       str(corpus))
    assert code == 0 and "no units found" not in text, text
    record("input", "policies-corpus-add-layout", handled=True)
