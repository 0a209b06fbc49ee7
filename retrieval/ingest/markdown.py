"""Markdown loader: EU acts converted to Markdown, and heading-based prose sections (NIST publications).

*EU mode* (the file has ``Article N`` headings): ``#### Article N — title`` (or ``### Article N`` followed by a
``**title**`` line), ``### Recital (N)`` (or recitals as ``- (N) text`` items under a ``## Recitals`` heading),
``### ANNEX X — title``; ``## CHAPTER …`` / ``## IV. …`` and ``### SECTION …`` headings become the chapter / section
metadata of the articles below them. Recital texts lose their leading ``(N)``.

*Prose mode* (anything else): one unit per heading with body text. Numbered headings give ``sec_<number>``
(``### 3.1 Valid and Reliable`` → ``sec_3.1``, parent ``sec_3``), ``# Appendix A: …`` gives ``app_a``, other headings
a slug (``sec_executive_summary``, ``app_a.additional_ai_actors``). A unit's text is its own body (up to the next
heading), not its sub-sections'. The document title's body is ``sec_front_matter``; tables of contents are skipped;
a heading without body (``# Part 1: …``) only becomes the chapter of what follows.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "demo.md"
    >>> _ = p.write_text("# Demo\\n\\n## 1. Scope\\n\\nIt applies.\\n\\n### 1.1 Detail\\n\\nMore.\\n")
    >>> [(u.local_id, u.parent, u.text) for u in load_markdown(p, "demo")]
    [('sec_1', None, 'It applies.'), ('sec_1.1', 'demo:sec_1', 'More.')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.ingest.base import check_doc_id, eu_heading, eu_local_id, make_unit, read_text, slug

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ART = re.compile(r"^Article\s+(\d+[a-z]?)\s*(?:[—–:-]\s*(.*))?$", re.I)
_RCT = re.compile(r"^Recital\s*\(?(\d+)\)?\s*$", re.I)
_ANX = re.compile(r"^ANNEX(?:\s+([IVXLC]+))?\b\s*(?:[—–:-]\s*(.*))?$", re.I)
_CHAPTER = re.compile(r"^(CHAPTER\s+[IVXLC]+\b.*|[IVXLC]+\.\s+\S.*)$", re.I)
_SECTION = re.compile(r"^SECTION\s+\d+\b.*$", re.I)
_RECITALS = re.compile(r"^(Recitals|Whereas:?)$", re.I)
_RECITAL_ITEM = re.compile(r"^(?:[-*]\s+)?\((\d+)\)\s+(.*)$")
_BOLD_LINE = re.compile(r"^\*\*(.+?)\*\*\s*$")
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(\S.*)$")
_APPENDIX = re.compile(r"^Appendix\s+([A-Z])\b[:.]?\s*(.*)$", re.I)
_PART = re.compile(r"^Part\s+(\d+|[IVX]+)\b[:.]?\s*(.*)$", re.I)
_TOC = re.compile(r"^(table of contents|contents)$", re.I)


@dataclass
class _Block:
    level: int
    title: str
    body: str
    line: int


def split_headings(text: str) -> tuple[str, list[_Block]]:
    """``(text before the first heading, blocks)``; headings inside ``` fences are text."""
    pre: list[str] = []
    blocks: list[_Block] = []
    cur: list[str] = pre
    fenced = False
    for n, line in enumerate(text.split("\n"), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        m = None if fenced else _HEADING.match(line)
        if m:
            blocks.append(_Block(len(m.group(1)), m.group(2).strip(), "", n))
            cur = []
            blocks[-1].body = cur  # type: ignore[assignment]
            continue
        cur.append(line)
    for b in blocks:
        b.body = "\n".join(b.body).strip("\n").rstrip()  # type: ignore[arg-type]
        b.body = _strip_blank_edges(b.body)
    return _strip_blank_edges("\n".join(pre)), blocks


def _strip_blank_edges(s: str) -> str:
    lines = s.split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def load_markdown(path: str | Path, doc: str) -> list[Unit]:
    path = Path(path)
    doc = check_doc_id(doc, str(path))
    text = read_text(path, expected="a UTF-8 Markdown file")
    pre, blocks = split_headings(text)
    if any(_ART.match(b.title) for b in blocks):
        return _eu_units(blocks, doc, path.name)
    return _prose_units(pre, blocks, doc, path.name)


# ------------------------------------------------------------------------------------------------------ EU mode

def _eu_units(blocks: list[_Block], doc: str, src: str) -> list[Unit]:
    units: list[Unit] = []
    chapter: str | None = None
    section: str | None = None
    in_recitals = False
    cur: dict | None = None  # the unit being built: kind, number, title, level, lines

    def flush() -> None:
        nonlocal cur
        if cur is None:
            return
        body = _strip_blank_edges("\n".join(cur["lines"]))
        kind, number, title = cur["kind"], cur["number"], cur["title"]
        if kind == "recital":
            body = _strip_blank_edges(re.split(r"(?m)^\s*HAVE ADOPTED THIS", body)[0])
            body = re.sub(rf"^(?:[-*]\s+)?\({re.escape(number)}\)\s*", "", body, count=1)
        if body.strip():
            units.append(make_unit(
                doc, eu_local_id(kind, number), kind, body, source_file=src, heading=eu_heading(kind, number, title),
                chapter=cur["chapter"], section=cur["section"], number=number,
            ))
        cur = None

    for b in blocks:
        t = b.title
        if m := _ART.match(t):
            flush()
            in_recitals = False
            number, title = m.group(1), (m.group(2) or "").strip()
            lines = b.body.split("\n") if b.body else []
            if not title:
                first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
                if first is not None and (bm := _BOLD_LINE.match(lines[first].strip())):
                    title = bm.group(1).strip()
                    lines = lines[first + 1 :]
            cur = {"kind": "article", "number": number, "title": title, "level": b.level, "lines": lines,
                   "chapter": chapter, "section": section}
        elif m := _RCT.match(t):
            flush()
            cur = {"kind": "recital", "number": m.group(1), "title": "", "level": b.level,
                   "lines": b.body.split("\n"), "chapter": None, "section": None}
        elif (m := _ANX.match(t)) and (m.group(1) or t.strip().upper() == "ANNEX"):
            flush()
            in_recitals = False
            cur = {"kind": "annex", "number": (m.group(1) or "").upper(), "title": (m.group(2) or "").strip(),
                   "level": b.level, "lines": b.body.split("\n"), "chapter": None, "section": None}
        elif _RECITALS.match(t):
            flush()
            in_recitals = True
            units.extend(_recital_items(b.body, doc, src))
        elif _CHAPTER.match(t) and not _ANX.match(t):
            flush()
            in_recitals = False
            chapter, section = t, None
        elif _SECTION.match(t):
            flush()
            section = t
        elif cur is not None and b.level > cur["level"]:
            cur["lines"].extend(["", f"{'#' * b.level} {t}", "", b.body])  # a sub-heading inside a unit
        else:
            flush()
            if in_recitals and b.body:
                units.extend(_recital_items(b.body, doc, src))
    flush()
    return units


def _recital_items(body: str, doc: str, src: str) -> list[Unit]:
    out: list[Unit] = []
    num: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if num is not None and "\n".join(lines).strip():
            out.append(make_unit(doc, f"rct_{num}", "recital", _strip_blank_edges("\n".join(lines)), source_file=src,
                                 heading=eu_heading("recital", num), number=num))

    for line in body.split("\n"):
        if m := _RECITAL_ITEM.match(line):
            flush()
            num, lines = m.group(1), [m.group(2)]
        elif num is not None:
            lines.append(line)
    flush()
    return out


# --------------------------------------------------------------------------------------------------- prose mode

def _prose_units(pre: str, blocks: list[_Block], doc: str, src: str) -> list[Unit]:
    units: list[Unit] = []
    used: set[str] = set()
    stack: list[tuple[int, str, str]] = []  # (level, local id, heading) of headings that made a unit
    chapter: str | None = None
    title_level = None
    if blocks and blocks[0].level == 1 and not pre.strip():
        title_level = 1
    if pre.strip():
        units.append(make_unit(doc, "sec_front_matter", "section", pre, source_file=src, heading="Front matter"))
        used.add("sec_front_matter")

    for i, b in enumerate(blocks):
        t = b.title
        if i == 0 and title_level is not None:
            if b.body.strip():
                body = _drop_leading_quote(b.body)
                if body.strip():
                    units.append(make_unit(doc, "sec_front_matter", "section", body, source_file=src, heading=t))
                    used.add("sec_front_matter")
            continue
        if _TOC.match(t):
            continue
        while stack and stack[-1][0] >= b.level:
            stack.pop()
        parent = stack[-1] if stack else None
        number = None
        if m := _NUMBERED.match(t):
            number = m.group(1)
            local = f"sec_{number}"
        elif m := _APPENDIX.match(t):
            number = m.group(1).upper()
            local = f"app_{number.lower()}"
        elif (m := _PART.match(t)) and not b.body.strip():
            chapter = t
            stack.clear()
            continue
        else:
            base = parent[1] if parent else "sec"
            local = f"{base}.{slug(t)}" if parent else f"sec_{slug(t)}"
        if local in used:
            k = 2
            while f"{local}_{k}" in used:
                k += 1
            local = f"{local}_{k}"
        if b.level == 1:
            chapter = t
        if not b.body.strip():
            stack.append((b.level, local, t))  # a heading without body: still the parent of its sub-headings
            used.add(local)
            continue
        parent_id = _nearest_unit_parent(stack, {u.local_id for u in units})
        if number and "." in number:  # sec_3.1 -> sec_3 when that unit exists
            guess = f"sec_{number.rsplit('.', 1)[0]}"
            if any(u.local_id == guess for u in units):
                parent_id = guess
        units.append(make_unit(doc, local, "section", b.body, source_file=src, parent=parent_id, heading=t,
                               chapter=chapter if chapter != t else None,
                               section=parent[2] if parent else None, number=number))
        used.add(local)
        stack.append((b.level, local, t))
    return units


def _nearest_unit_parent(stack: list[tuple[int, str, str]], used_units: set[str]) -> str | None:
    for _level, local, _ in reversed(stack):
        if local in used_units:
            return local
    return None


def _drop_leading_quote(body: str) -> str:
    """Front matter of the shared NIST files opens with a '> …' provenance note of the converter: not NIST text."""
    lines = body.split("\n")
    while lines and (lines[0].startswith(">") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines)
