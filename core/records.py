"""Record files: JSONL of pydantic models or of plain objects (plain or ``.gz``), and JSON + Markdown reports.

One place for the file formats that training data, candidates, predictions, query sets and reports share.

>>> import tempfile, pathlib
>>> from pydantic import BaseModel
>>> class Row(BaseModel):
...     id: str
>>> p = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl.gz"
>>> _ = write_models([Row(id="a"), Row(id="b")], p)
>>> [r.id for r in read_models(p, Row)]
['a', 'b']
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mad_guardrails.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


def _open(path: Path, mode: str, *, like: Path | None = None):
    """``path`` opened as text, gzip-compressed when ``like`` (default: ``path``) ends in ``.gz``."""
    if (like or path).suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def _dump(rows: Iterable[BaseModel], fh) -> None:
    for r in rows:
        fh.write(r.model_dump_json() + "\n")


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of the non-blank lines (``.gz`` read as such)."""
    with _open(path, "r") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                yield n, line


def write_models(rows: Iterable[BaseModel], path: str | Path, *, atomic: bool = False) -> Path:
    """Write one JSON object per line (gzip-compressed when the name ends in ``.gz``); creates the folder.

    ``atomic``: write ``<name>.tmp`` and move it into place, so a crash never leaves half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    target = p.with_name(p.name + ".tmp") if atomic else p
    with _open(target, "w", like=p) as fh:
        _dump(rows, fh)
    if atomic:
        target.replace(p)
    return p


def append_models(rows: Iterable[BaseModel], path: str | Path) -> Path:
    """Append one JSON object per line to a plain JSONL file (created with its folder); the file is closed, so
    flushed, before this returns."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        _dump(rows, fh)
    return p


def read_models(path: str | Path, model: type[M], *, missing_fix: str | None = None, tolerant: bool = False,
                fix: str = "regenerate the file") -> list[M]:
    """Read a JSONL file of ``model`` rows.

    ``missing_fix``: a missing file is an :class:`InputError` with this fix; without it a missing file is empty (a run
    that has not started yet). A line that does not parse is an :class:`InputError` naming it, with ``fix``;
    ``tolerant``: such lines are skipped (a line cut by a crash is simply redone)."""
    p = Path(path)
    if not p.is_file():
        if missing_fix is not None:
            raise InputError(f"no such {model.__name__} file", where=str(p), fix=missing_fix)
        return []
    out: list[M] = []
    for n, line in _numbered_lines(p):
        try:
            out.append(model.model_validate_json(line))
        except (ValidationError, ValueError) as e:
            if not tolerant:
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise InputError(f"line {n} is not a valid {model.__name__} ({why})", where=f"{p}:{n}",
                                 fix=fix) from e
    return out


def iter_jsonl(path: str | Path, *, tolerant: bool = False,
               fix: str = "correct that line") -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for each non-blank line of a JSONL file (``.gz`` too), values as parsed (objects are
    dicts). A line that is not valid JSON is an :class:`InputError` naming the file and the line, with ``fix``;
    ``tolerant``: it is skipped."""
    p = Path(path)
    for n, line in _numbered_lines(p):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            if not tolerant:
                raise InputError(f"line {n} is not valid JSON ({e.msg})", where=str(p), fix=fix) from e
            continue
        yield n, value


def read_jsonl(path: str | Path, *, tolerant: bool = False) -> list[dict[str, Any]]:
    """The objects of a JSONL file (``.gz`` too), blank lines skipped. A line that is not a JSON object is an
    :class:`InputError` naming the file and the line; ``tolerant``: it is skipped.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = p.write_text('{"id": "a"}\\n\\n[1]\\n{broken\\n', encoding="utf-8")
    >>> read_jsonl(p, tolerant=True)
    [{'id': 'a'}]
    """
    out: list[dict[str, Any]] = []
    for n, row in iter_jsonl(path, tolerant=tolerant, fix="one JSON object per line: repair or remove that line"):
        if isinstance(row, dict):
            out.append(row)
        elif not tolerant:
            raise InputError(f"line {n} is not a JSON object", where=str(path), fix="one JSON object per line")
    return out


def write_report(report: dict[str, Any], markdown: str, out_dir: str | Path, stem: str) -> Path:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (created); returns the JSON path."""
    o = Path(out_dir)
    o.mkdir(parents=True, exist_ok=True)
    (o / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (o / f"{stem}.md").write_text(markdown, encoding="utf-8")
    return o / f"{stem}.json"
