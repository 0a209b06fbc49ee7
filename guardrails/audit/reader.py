"""Read an audit input (JSONL or CSV) into :class:`AuditRow` s, validating each row on its own.

The file is read as bytes and decoded row by row, so one bad line (not JSON, not UTF-8, no ``output``, too long, a
duplicate id) becomes an error row naming its line and the fix, and every other row is still checked. Only problems
with the file as a whole (missing, a directory, UTF-16, a CSV without an ``output`` column) raise
:class:`~mad_guardrails.core.errors.InputError`.

Columns / keys: ``id`` (string or integer; rows without one get ``line-<N>``), ``output`` (required, the AI output),
``query`` (optional, the question that produced it), ``context`` (optional), ``policies`` (optional list, or a
comma-separated string in CSV, restricting the check to packs / rule ids); every other key or column, and the keys of
an optional ``metadata`` object, are kept as the row's metadata and copied to its result.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> _ = p.write_bytes(b'{"id": "a", "output": "NIS2 gives 72 hours.", "team": "x"}\\nnot json\\n')
    >>> rows = read_rows(p)
    >>> [(r.id, r.ok, r.metadata) for r in rows]
    [('a', True, {'team': 'x'}), ('line-2', False, {})]
    >>> rows[1].error
    'line 2: not valid JSON (Expecting value at column 1). Fix: write one JSON object per line'
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.errors import InputError

#: keys an input row may carry besides metadata
RESERVED = ("id", "output", "query", "context", "policies", "metadata")
DEFAULT_MAX_CHARS = 20_000
_BOM = b"\xef\xbb\xbf"
_SURROGATE = re.compile("[\udc80-\udcff]")

Format = Literal["jsonl", "csv", "parquet"]


class AuditRow(BaseModel):
    """One input row: what to check, or why it cannot be checked (``error``)."""

    id: str
    line: int = Field(description="1-based line of the row in the input file (first line of a multi-line CSV row)")
    output: str | None = None
    query: str | None = None
    context: str | None = None
    policies: list[str] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why the row cannot be checked; it becomes an error row")

    @property
    def ok(self) -> bool:
        return self.error is None


def detect_format(path: Path, head: bytes) -> Format:
    """``.jsonl`` / ``.ndjson`` / ``.json`` → JSONL, ``.csv`` / ``.tsv`` → CSV, ``.parquet`` (or the ``PAR1`` magic)
    → Parquet, otherwise sniff the first byte."""
    suf = path.suffix.lower()
    if suf in (".parquet", ".pq") or head.startswith(b"PAR1"):
        return "parquet"
    if suf in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suf in (".csv", ".tsv"):
        return "csv"
    first = head.lstrip(_BOM).lstrip()[:1]
    return "jsonl" if first in (b"{", b"[") else "csv"


def _head(path: Path) -> bytes:
    """The first bytes of the input, after the checks on the file as a whole (exists, a file, not UTF-16)."""
    if not path.exists():
        raise InputError("input file not found", where=str(path), fix="check the path of the JSONL/CSV file")
    if path.is_dir():
        raise InputError("input is a directory", where=str(path), fix="pass a JSONL or CSV file")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("the file is UTF-16 encoded", where=str(path),
                         fix="re-encode it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    return head


def _read_bytes(path: Path) -> bytes:
    _head(path)
    return path.read_bytes().removeprefix(_BOM)


def _file_lines(path: Path):
    """The lines of ``path`` one at a time (bytes, newline included; a leading BOM dropped)."""
    with open(path, "rb") as f:
        for n, raw in enumerate(f):
            yield raw.removeprefix(_BOM) if n == 0 else raw


def _bad_utf8(raw: bytes) -> str:
    try:
        raw.decode("utf-8")
        return ""
    except UnicodeDecodeError as e:
        return f"not valid UTF-8 (byte {e.start + 1} of the line is {raw[e.start:e.start + 1]!r})"


def reason(e: Exception) -> str:
    """An error's text as one sentence plus its fix ("... is empty. Fix: ...")."""
    return re.sub(r"(?<=[^.!?]) Fix: ", ". Fix: ", str(e), count=1)


def _text_field(value: Any, name: str, max_chars: int, *, required: bool) -> str | None:
    """Validate a text field with the guardrail's own rules (:func:`mad_guardrails.guardrails.guardrail.validate_output`)."""
    from mad_guardrails.guardrails.guardrail import validate_output

    if value is None or (isinstance(value, str) and not value.strip() and not required):
        if required:
            raise InputError(f"'{name}' is missing", fix=f"give each row a non-empty '{name}'")
        return None
    return validate_output(value, max_chars, field=f"'{name}'")


def _policies(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",")]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        items = [p.strip() for p in value]
    else:
        raise InputError("'policies' must be a list of strings (or a comma-separated string)",
                         fix="e.g. [\"nis2\", \"eu-ai-act.prohibited\"]")
    return [p for p in items if p] or None


def _row_id(value: Any, line: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"line-{line}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InputError(f"'id' must be a string or an integer, got {type(value).__name__}",
                         fix="give each row a unique string id")
    return str(value).strip()


def _build(record: dict[str, Any], line: int, max_chars: int) -> AuditRow:
    """A row from a decoded record; any problem becomes the row's error (with the id when it is known)."""
    rid = f"line-{line}"
    meta: dict[str, Any] = {}
    try:
        rid = _row_id(record.get("id"), line)
        extra = record.get("metadata")
        if isinstance(extra, dict):
            meta.update(extra)
        elif extra not in (None, ""):
            meta["metadata"] = extra
        meta.update({k: v for k, v in record.items() if k not in RESERVED})
        return AuditRow(id=rid, line=line, metadata=meta,
                        output=_text_field(record.get("output"), "output", max_chars, required=True),
                        query=_text_field(record.get("query"), "query", max_chars, required=False),
                        context=_text_field(record.get("context"), "context", max_chars, required=False),
                        policies=_policies(record.get("policies")))
    except InputError as e:
        return AuditRow(id=rid, line=line, metadata=meta, error=f"line {line}: {reason(e)}")


def _jsonl_rows(lines, max_chars: int):
    for n, raw in enumerate(lines, 1):
        raw = raw.rstrip(b"\n").rstrip(b"\r")
        if not raw.strip():
            continue
        bad = _bad_utf8(raw)
        if bad:
            yield AuditRow(id=f"line-{n}", line=n,
                           error=f"line {n}: {bad}. Fix: save the file as UTF-8")
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as e:
            yield AuditRow(id=f"line-{n}", line=n,
                           error=f"line {n}: not valid JSON ({e.msg} at column {e.colno}). "
                                 "Fix: write one JSON object per line")
            continue
        if not isinstance(rec, dict):
            yield AuditRow(id=f"line-{n}", line=n,
                           error=f"line {n}: expected a JSON object with an 'output' key, got "
                                 f"{type(rec).__name__}. Fix: write one object per line")
            continue
        yield _build(rec, n, max_chars)


def _csv_rows(data: bytes, max_chars: int, path: Path):
    text = data.decode("utf-8", errors="surrogateescape")
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:4096].split("\n", 1)[0], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    csv.field_size_limit(max(csv.field_size_limit(), max_chars * 4 + 1024))
    lines = io.StringIO(text, newline="").readlines()  # the physical lines exactly as the csv reader sees them
    offset = 0  # lines before the current reader's first line (it restarts after a broken quoted row)
    reader = csv.reader(iter(lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise InputError(f"the CSV header cannot be parsed ({e})", where=f"{path}:1",
                         fix="the first line must name the columns, e.g. id,output,query") from e
    names = [h.strip().lower() for h in header]
    if _SURROGATE.search("".join(names)):
        raise InputError("the CSV header is not valid UTF-8", where=f"{path}:1", fix="save the file as UTF-8")
    if "output" not in names:
        raise InputError(f"the CSV has no 'output' column (columns: {', '.join(names) or 'none'})",
                         where=f"{path}:1", fix="name the column holding the AI outputs 'output'")
    dup = sorted({h for h in names if names.count(h) > 1})
    if dup:
        raise InputError(f"the CSV repeats column(s) {', '.join(dup)}", where=f"{path}:1", fix="rename them")
    while True:
        start = offset + reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            end = offset + reader.line_num
            spans = f"; its quote runs on to line {end}" if end > start else ""
            yield AuditRow(id=f"line-{start}", line=start,
                           error=f"line {start}: not valid CSV ({e}{spans}). Fix: close the quote on that line and "
                                 "double inner quotes; quote fields that contain the delimiter or newlines")
            if end > start:  # an unterminated quote swallowed the next lines: read them again as rows of their own
                offset = start
                reader = csv.reader(iter(lines[start:]), delimiter=delimiter, strict=True)
            continue
        if not any(f.strip() for f in fields):
            continue
        m = _SURROGATE.search("".join(fields))
        if m:
            byte = ord(m.group(0)) - 0xDC00
            yield AuditRow(id=f"line-{start}", line=start,
                           error=f"line {start}: not valid UTF-8 (byte 0x{byte:02x}). Fix: save the file as UTF-8")
            continue
        if len(fields) > len(names):
            yield AuditRow(id=f"line-{start}", line=start,
                           error=f"line {start}: {len(fields)} fields but the header has {len(names)}. Fix: quote "
                                 f"fields that contain the delimiter {delimiter!r}")
            continue
        rec = {k: (v if v != "" else None) for k, v in zip(names, fields, strict=False)}
        yield _build(rec, start, max_chars)


def _parquet_rows(max_chars: int, path: Path):
    """Parquet (the format large audits come in): the same columns as CSV; ``line`` is the 1-based row number. Read
    4096 rows at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
    except (pa.ArrowException, OSError) as e:
        raise InputError(f"not a readable Parquet file ({e})", where=str(path),
                         fix="write it with pyarrow / pandas (to_parquet), or give a JSONL or CSV file") from e
    names = [n.lower() for n in pf.schema_arrow.names]
    if "output" not in names:
        raise InputError(f"the Parquet file has no 'output' column (columns: {', '.join(names) or 'none'})",
                         where=str(path), fix="name the column holding the AI outputs 'output'")
    n = 0
    for batch in pf.iter_batches(batch_size=4096):
        for rec in batch.to_pylist():
            n += 1
            yield _build({k.lower(): v for k, v in rec.items()}, n, max_chars)


def iter_rows(path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS, limit: int | None = None):
    """The rows of ``path`` in file order, one at a time (what :func:`read_rows` returns, without holding them):
    JSONL is read line by line and Parquet a record batch at a time; a CSV file is read whole (its rows may span
    lines). Problems with the file as a whole raise when the first row is asked for."""
    path = Path(path)
    head = _head(path)
    fmt = detect_format(path, head.removeprefix(_BOM))
    rows_iter = (_jsonl_rows(_file_lines(path), max_chars) if fmt == "jsonl" else _parquet_rows(max_chars, path)
                 if fmt == "parquet" else _csv_rows(_read_bytes(path), max_chars, path))
    first_line: dict[str, int] = {}
    for n, row in enumerate(rows_iter):
        if limit is not None and n >= limit:
            break
        if row.id in first_line:
            original = row.id
            new_id = f"{original}#line{row.line}"
            while new_id in first_line:
                new_id += "'"
            row = row.model_copy(update={
                "id": new_id, "output": None,
                "error": f"line {row.line}: duplicate id {original!r} (first used on line {first_line[original]}). "
                         "Fix: give each row a unique id"})
        first_line[row.id] = row.line
        yield row


def read_rows(path: str | Path, *, max_chars: int = DEFAULT_MAX_CHARS, limit: int | None = None) -> list[AuditRow]:
    """All rows of ``path`` in file order (the first ``limit`` non-blank ones), ids unique.

    A second row with an id already seen becomes an error row with the id ``<id>#line<N>`` (so every result id is
    unique and the first row keeps the id).
    """
    rows = list(iter_rows(path, max_chars=max_chars, limit=limit))
    if not rows:
        raise InputError("the input has no rows", where=str(path),
                         fix="write one JSON object per line (JSONL) or a header plus rows (CSV), each with 'output'")
    return rows
