"""Typed record files: JSONL of pydantic models (plain or ``.gz``) and JSON + Markdown reports.

One place for the file formats that training data, candidates, predictions and reports share.

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mad_guardrails.core.errors import InputError

M = TypeVar("M", bound=BaseModel)


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def write_models(rows: Iterable[BaseModel], path: str | Path) -> Path:
    """Write one JSON object per line (gzip-compressed when the name ends in ``.gz``); creates the folder."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with _open(p, "w") as fh:
        for r in rows:
            fh.write(r.model_dump_json() + "\n")
    return p


def read_models(path: str | Path, model: type[M], *, missing_fix: str | None = None,
                tolerant: bool = False) -> list[M]:
    """Read a JSONL file of ``model`` rows.

    ``missing_fix``: a missing file is an :class:`InputError` with this fix; without it a missing file is empty (a run
    that has not started yet). ``tolerant``: skip lines that do not parse (a line cut by a crash is simply redone)."""
    p = Path(path)
    if not p.is_file():
        if missing_fix is not None:
            raise InputError(f"no such {model.__name__} file", where=str(p), fix=missing_fix)
        return []
    out: list[M] = []
    with _open(p, "r") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(model.model_validate_json(line))
            except (ValidationError, ValueError) as e:
                if not tolerant:
                    raise InputError(f"line {n} is not a valid {model.__name__} ({type(e).__name__})", where=str(p),
                                     fix="regenerate the file") from e
    return out


def write_report(report: dict[str, Any], markdown: str, out_dir: str | Path, stem: str) -> Path:
    """``<stem>.json`` and ``<stem>.md`` in ``out_dir`` (created); returns the JSON path."""
    o = Path(out_dir)
    o.mkdir(parents=True, exist_ok=True)
    (o / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (o / f"{stem}.md").write_text(markdown, encoding="utf-8")
    return o / f"{stem}.json"
