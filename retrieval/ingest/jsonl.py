"""JSONL loader: the shared unit format of the EU acts and the NIST core / risk / action formats.

Row schemas (recognised per row by their keys):

* EU acts ``*_units.jsonl``: ``unit_id`` (``rct_N``/``art_N``/``anx_<roman>``), ``type``, ``number``, ``title``,
  ``chapter``, ``section``, ``text``.
* NIST CSF 2.0 / AI RMF core ``*_core.jsonl``: ``id`` (``GV.OC-01`` / ``GOVERN 1.1``), ``type``
  (function|category|subcategory), ``function``, ``category``, ``name``, ``text``.
* NIST AI 600-1 risks: ``risk_id``, ``name``, ``definition``; suggested actions: ``action_id``, ``function``,
  ``subcategory_id``, ``subcategory_text``, ``suggested_action``, ``gai_risks`` ...
* Units saved by :meth:`mad_guardrails.retrieval.corpus.Corpus.save` (``id``, ``doc``, ``kind``, ``text`` ...): read back as is.

    >>> import json, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x_units.jsonl"
    >>> _ = p.write_text(json.dumps({"unit_id": "art_1", "type": "article", "number": "1", "title": "Scope",
    ...                              "chapter": "", "section": "", "text": "1. This applies."}) + "\\n")
    >>> [u.id for u in load_jsonl(p, "demo")]
    ['demo:art_1']
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.ingest.base import check_doc_id, eu_heading, eu_local_id, make_unit, read_text

_EU_KINDS = {"article", "recital", "annex"}


def iter_rows(path: Path):
    """Yield ``(line_number, dict)``; a row that is not a JSON object is an error naming its line."""
    text = read_text(path, expected="a UTF-8 JSONL file (one JSON object per line)")
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(f"line {n} is not valid JSON ({e.msg} at column {e.colno})", where=f"{path}:{n}",
                              fix="each line must be one complete JSON object; repair or delete that line") from None
        if not isinstance(row, dict):
            raise CorpusError(f"line {n} is a JSON {type(row).__name__}, not an object", where=f"{path}:{n}",
                              fix="each line must be one JSON object like {\"unit_id\": ..., \"text\": ...}")
        yield n, row


def _need(row: dict, key: str, path: Path, n: int, schema: str):
    if key not in row or row[key] is None:
        raise CorpusError(f"line {n} lacks the field {key!r} required by the {schema} schema", where=f"{path}:{n}",
                          fix=f"add {key!r} to that row (see retrieval/ingest/jsonl.py for the row schemas)")
    return row[key]


def _str(v) -> str:
    return "" if v is None else str(v)


def load_jsonl(path: str | Path, doc: str) -> list[Unit]:
    """Units of one JSONL file; the schema is recognised per row."""
    path = Path(path)
    doc = check_doc_id(doc, str(path))
    src = path.name
    units: list[Unit] = []
    has_core = False
    for n, row in iter_rows(path):
        try:
            if "unit_id" in row:
                units.append(_eu_row(row, doc, src, path, n))
            elif "risk_id" in row:
                units.append(_risk_row(row, doc, src, path, n))
            elif "action_id" in row:
                units.append(_action_row(row, doc, src, path, n))
            elif "id" in row and "kind" in row and "doc" in row:
                u = Unit.model_validate(row)
                if u.doc != doc:
                    u = _rehome(u, doc)
                units.append(u)
            elif "id" in row and row.get("type") in ("function", "category", "subcategory"):
                units.append(_core_row(row, doc, src, path, n))
                has_core = True
            else:
                raise CorpusError(
                    f"line {n}: unknown row schema (keys: {', '.join(sorted(row)) or 'none'})", where=f"{path}:{n}",
                    fix="use one of the row schemas of retrieval/ingest/jsonl.py (EU 'unit_id'/'type'/'text', NIST "
                    "core 'id'/'type'/'text', 'risk_id', 'action_id', or saved Units)")
        except ValidationError as e:
            raise CorpusError(f"line {n} is not a valid unit: {e.errors()[0]['msg']}", where=f"{path}:{n}",
                              fix="repair the fields of that row") from None
    if not units:
        raise CorpusError("no rows", where=str(path), fix="the JSONL file holds no JSON objects")
    return _core_context(units) if has_core else units


def _rehome(u: Unit, doc: str) -> Unit:
    def move(i: str | None) -> str | None:
        return None if i is None else f"{doc}:{i.partition(':')[2]}"
    return u.model_copy(update={"id": move(u.id), "doc": doc, "parent": move(u.parent)})


def _eu_row(row: dict, doc: str, src: str, path: Path, n: int) -> Unit:
    kind = _str(_need(row, "type", path, n, "EU unit"))
    if kind not in _EU_KINDS:
        raise CorpusError(f"line {n}: type {kind!r} is not one of recital/article/annex", where=f"{path}:{n}",
                          fix="set 'type' to recital, article or annex")
    raw_id = _str(row["unit_id"])
    number = _str(row.get("number")) or raw_id.partition("_")[2]
    title = _str(row.get("title"))
    return make_unit(
        doc, eu_local_id(kind, number), kind, _str(_need(row, "text", path, n, "EU unit")), source_file=src,
        heading=eu_heading(kind, number, title), chapter=_str(row.get("chapter")), section=_str(row.get("section")),
        number=number,
    )


def _core_row(row: dict, doc: str, src: str, path: Path, n: int) -> Unit:
    raw = _str(row["id"]).strip()
    typ = row["type"]
    name = _str(row.get("name"))
    parent = None
    if typ == "category":
        parent = _str(row.get("function")) or re.split(r"[ .]", raw)[0]
    elif typ == "subcategory":
        parent = _str(row.get("category")) or (raw.rsplit(".", 1)[0] if " " in raw else raw.split("-")[0])
    return make_unit(doc, raw.replace(" ", "-"), "framework_element", _str(row.get("text")), source_file=src,
                     parent=parent.replace(" ", "-") if parent else None,
                     heading=f"{raw} — {name}" if name else raw, number=raw)


def _core_context(units: list[Unit]) -> list[Unit]:
    """Stamp chapter (function) and section (category) headings on core elements."""
    by_id = {u.id: u for u in units}
    out = []
    for u in units:
        chain = [u]
        while chain[-1].parent and chain[-1].parent in by_id and len(chain) < 4:
            chain.append(by_id[chain[-1].parent])
        chain.reverse()  # function, category, subcategory
        upd = {"chapter": chain[0].heading}
        if len(chain) >= 2:
            cat = chain[1]  # AI RMF categories have no name: their statement says what they are about
            upd["section"] = cat.heading if " — " in cat.heading or not cat.text else f"{cat.heading}: {cat.text}"
        out.append(u.model_copy(update=upd))
    return out


def _risk_row(row: dict, doc: str, src: str, path: Path, n: int) -> Unit:
    num = _str(row["risk_id"]).strip()
    name = _str(_need(row, "name", path, n, "GAI risk"))
    return make_unit(doc, f"risk_{num}", "framework_element", _str(_need(row, "definition", path, n, "GAI risk")),
                     source_file=src, heading=f"GAI risk {num} — {name}", chapter="GAI risks", section=name,
                     number=num)


def _action_row(row: dict, doc: str, src: str, path: Path, n: int) -> Unit:
    aid = _str(row["action_id"]).strip()
    sub = _str(row.get("subcategory_id"))
    sub_text = _str(row.get("subcategory_text"))
    return make_unit(
        doc, aid, "framework_element", _str(_need(row, "suggested_action", path, n, "suggested action")),
        source_file=src, heading=f"{aid} — suggested action for {sub}" if sub else aid,
        chapter=_str(row.get("function")), section=f"{sub}: {sub_text}" if sub_text else sub, number=aid,
    )
