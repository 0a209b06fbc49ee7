"""EUR-Lex HTML loader: the official HTML page of an act (``…/TXT/HTML/?uri=CELEX:32024R1689``).

Reads the document with the standard library's ``html.parser`` into a small element tree, then walks it in document
order. Works on the current OJ rendering (``oj-`` classes, ``eli-subdivision`` ids ``rct_N`` / ``art_N`` /
``anx_X``) and on the older one (``ti-art`` / ``sti-art`` / ``doc-ti`` classes, no ids):

* recitals: the two-cell rows ``(N) | text`` after "Whereas:" and before the first article;
* articles: ``Article N`` title (``[oj-]ti-art``), subtitle (``[oj-]sti-art``), body; chapters and sections from
  ``[oj-]ti-section-1/2`` titles;
* annexes: ``ANNEX X`` document titles (``[oj-]doc-ti``), the next title line is the annex title.

Text comes out in the project's unit text format (the one of the shared ``*_units.jsonl``): paragraphs separated by a
blank line, a list row ``(a) | text`` as the line ``(a) text``, nested lists indented by two spaces per level,
footnote references as ``[^n]``, non-breaking spaces as spaces.

    >>> import tempfile, pathlib
    >>> html = ('<html><body><p class="oj-normal">Whereas:</p><table><tr><td><p class="oj-normal">(1)</p></td>'
    ...         '<td><p class="oj-normal">First recital.</p></td></tr></table>'
    ...         '<p class="oj-ti-art">Article&nbsp;1</p><p class="oj-sti-art">Scope</p>'
    ...         '<p class="oj-normal">1.&nbsp;&nbsp;&nbsp;It applies.</p></body></html>')
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "act.html"
    >>> _ = p.write_text(html)
    >>> [(u.local_id, u.heading, u.text) for u in load_eurlex_html(p, "demo")]
    [('rct_1', 'Recital (1)', 'First recital.'), ('art_1', 'Article 1 — Scope', '1. It applies.')]
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.ingest.base import check_doc_id, eu_heading, eu_local_id, make_unit, read_text

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
_SKIP = {"script", "style", "head", "nav", "button", "noscript"}


class _El:
    __slots__ = ("tag", "attrs", "children", "parent")

    def __init__(self, tag: str, attrs: dict[str, str], parent: _El | None):
        self.tag = tag
        self.attrs = attrs
        self.children: list[_El | str] = []
        self.parent = parent

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def iter(self):
        yield self
        for c in self.children:
            if isinstance(c, _El):
                yield from c.iter()


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _El("#root", {}, None)
        self.cur = self.root
        self.skip_depth = 0

    def handle_starttag(self, tag, attrs):
        if self.skip_depth:
            if tag in _SKIP:
                self.skip_depth += 1
            return
        if tag in _SKIP:
            self.skip_depth = 1
            return
        el = _El(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(el)
        if tag not in _VOID:
            self.cur = el

    def handle_startendtag(self, tag, attrs):
        if not self.skip_depth and tag not in _SKIP:
            self.cur.children.append(_El(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag):
        if self.skip_depth:
            if tag in _SKIP:
                self.skip_depth -= 1
            return
        el = self.cur
        while el is not None and el.tag != tag:
            el = el.parent
        if el is not None and el.parent is not None:
            self.cur = el.parent

    def handle_data(self, data):
        if not self.skip_depth and data:
            self.cur.children.append(data)


def parse_html(text: str) -> _El:
    b = _TreeBuilder()
    b.feed(text)
    b.close()
    return b.root


def _has(el: _El, name: str) -> bool:
    """Class ``name`` with or without the ``oj-`` prefix of the current OJ rendering."""
    c = el.classes
    return name in c or f"oj-{name}" in c


def inline_text(el: _El | str) -> str:
    """Text of an element on one line: nbsp -> space, runs of spaces collapsed, note refs as ``[^n]``."""
    parts: list[str] = []

    def walk(n: _El | str) -> None:
        if isinstance(n, str):
            parts.append(n)
            return
        if n.tag == "br":
            parts.append(" ")
            return
        if n.tag == "a" and any(_has(x, "note-tag") for x in n.iter() if isinstance(x, _El)):
            tag = "".join(str(x) for x in _strings(n)).strip()
            parts.append(f" [^{tag.strip('()')}]" if tag else "")
            return
        for c in n.children:
            walk(c)

    walk(el)
    s = "".join(parts).replace("\xa0", " ")
    return re.sub(r"[ \t\r\n]+", " ", s).strip()


def _strings(n: _El):
    for c in n.children:
        if isinstance(c, str):
            yield c
        else:
            yield from _strings(c)


# ----------------------------------------------------------------------------------------------- block stream

class _Block:
    """A unit of text in document order: a paragraph, a list row, or a title."""

    __slots__ = ("kind", "text", "depth", "el")

    def __init__(self, kind: str, text: str, depth: int, el: _El):
        self.kind = kind  # 'p' | 'row' | 'title:<class>'
        self.text = text
        self.depth = depth
        self.el = el


_TITLE_CLASSES = ("ti-art", "sti-art", "doc-ti", "ti-section-1", "ti-section-2", "ti-grseq-1")
_MARKER = re.compile(  # the first cell of a list row: 1. / (1) / 3.1. / (a) / (iv) / — / a), maybe after a quote
    r"^[‘'\"“]?(\(?[0-9]{1,3}[a-z]?\)?\.?|\d{1,3}(?:\.\d{1,3})+\.?|\([a-z]{1,3}\)|\([ivxlc]+\)|[—–-]|[a-z]\))$"
)


def _blocks(root: _El) -> list[_Block]:
    out: list[_Block] = []

    def title_class(el: _El) -> str | None:
        for c in _TITLE_CLASSES:
            if _has(el, c):
                return c
        return None

    def walk(el: _El, depth: int) -> None:
        for c in el.children:
            if isinstance(c, str):
                continue
            if c.tag == "table":
                rows = [r for r in c.iter() if r.tag == "tr" and _owner_table(r) is c]
                for r in rows:
                    row(r, depth)
                continue
            if _has(c, "note"):  # footnote bodies at the end of the OJ document
                continue
            if c.tag == "hr" and (c.classes & {"oj-separator", "oj-doc-sep", "oj-doc-end", "separator", "doc-sep",
                                                "doc-end"}):
                out.append(_Block("end", "", depth, c))  # end of a document part (act, annex, OJ footer)
                continue
            if c.tag == "p":
                tc = title_class(c)
                txt = inline_text(c)
                if txt or tc:
                    out.append(_Block(f"title:{tc}" if tc else "p", txt, depth, c))
                continue
            walk(c, depth)

    def row(tr: _El, depth: int) -> None:
        cells = [td for td in tr.children if isinstance(td, _El) and td.tag in ("td", "th")]
        texts = [inline_text(td) for td in cells]
        # marker cell + content cell(s) (some renderings put an empty spacer cell first)
        nonempty = [i for i, t in enumerate(texts) if t]
        if len(nonempty) >= 2 and _MARKER.match(texts[nonempty[0]]):
            marker_i = nonempty[0]
            content = cells[marker_i + 1 :]
            first = True
            for td in content:
                for kind, txt, sub in _cell_parts(td):
                    if kind == "table":
                        for r in [r for r in sub.iter() if r.tag == "tr" and _owner_table(r) is sub]:
                            row(r, depth + 1)
                        continue
                    if first:
                        out.append(_Block("row", f"{texts[marker_i]} {txt}", depth, td))
                        first = False
                    else:
                        out.append(_Block("cont", txt, depth + 1, td))
            if first:
                out.append(_Block("row", texts[marker_i], depth, tr))
        else:
            for td in cells:
                walk_cell(td, depth)

    def walk_cell(td: _El, depth: int) -> None:
        for kind, txt, sub in _cell_parts(td):
            if kind == "table":
                for r in [r for r in sub.iter() if r.tag == "tr" and _owner_table(r) is sub]:
                    row(r, depth)
            else:
                tc = title_class(sub) if isinstance(sub, _El) else None
                out.append(_Block(f"title:{tc}" if tc else "p", txt, depth, td))

    walk(root, 0)
    return out


def _owner_table(tr: _El) -> _El | None:
    el = tr.parent
    while el is not None and el.tag != "table":
        el = el.parent
    return el


def _cell_parts(td: _El):
    """Paragraph texts and nested tables of a cell, in order."""
    loose: list[_El | str] = []

    def flush():
        if loose:
            t = inline_text(_wrap(loose))
            loose.clear()
            if t:
                return [("p", t, td)]
        return []

    out = []
    for c in td.children:
        if isinstance(c, _El) and c.tag == "table":
            out.extend(flush())
            out.append(("table", "", c))
        elif isinstance(c, _El) and c.tag in ("p", "div"):
            out.extend(flush())
            if any(isinstance(x, _El) and x.tag == "table" for x in c.iter() if x is not c):
                out.extend(_cell_parts(c))
            else:
                t = inline_text(c)
                if t:
                    out.append(("p", t, c))
        else:
            loose.append(c)
    out.extend(flush())
    return out


def _wrap(children: list[_El | str]) -> _El:
    el = _El("span", {}, None)
    el.children = list(children)
    return el


# ------------------------------------------------------------------------------------------------ unit builder

_ART_TITLE = re.compile(r"^Article\s+(\d+[a-z]?)$", re.I)
_ANNEX_TITLE = re.compile(r"^ANNEX(?:\s+([IVXLC]+))?$", re.I)
_RECITAL_ROW = re.compile(r"^\((\d{1,3})\)\s+(.*)$", re.S)
_PARA_START = re.compile(r"^(\d{1,3})\.\s+")


def _render(blocks: list[_Block]) -> str:
    """Blocks of one unit -> text in the shared unit format."""
    lines: list[str] = []
    for b in blocks:
        txt = _PARA_START.sub(lambda m: f"{m.group(1)}. ", b.text)
        if lines and b.depth == 0 and b.kind != "cont":
            lines.append("")  # a blank line between top-level paragraphs / points
        lines.append("  " * b.depth + txt)
    return "\n".join(lines).strip("\n")


def load_eurlex_html(path: str | Path, doc: str) -> list[Unit]:
    path = Path(path)
    doc = check_doc_id(doc, str(path))
    text = read_text(path, expected="a UTF-8 HTML page (EUR-Lex)")
    if "<" not in text[:2000]:
        raise CorpusError("this is not an HTML page", where=str(path), fix="pass the EUR-Lex HTML page of the act")
    blocks = _blocks(parse_html(text))
    src = path.name
    units: list[Unit] = []
    chapter: str | None = None
    section: str | None = None
    cur: dict | None = None
    seen_article = False
    in_recitals = False

    def flush() -> None:
        nonlocal cur
        if cur is not None:
            body = _render(cur["blocks"])
            if body:
                units.append(make_unit(doc, eu_local_id(cur["kind"], cur["number"]), cur["kind"], body,
                                       source_file=src, heading=eu_heading(cur["kind"], cur["number"], cur["title"]),
                                       chapter=cur.get("chapter"), section=cur.get("section"), number=cur["number"]))
        cur = None

    i = 0
    while i < len(blocks):
        b = blocks[i]
        t = b.text
        kind = b.kind
        if kind == "title:doc-ti" and (m := _ANNEX_TITLE.match(t)):
            flush()
            title = ""
            if i + 1 < len(blocks) and blocks[i + 1].kind == "title:doc-ti":
                title = blocks[i + 1].text
                i += 1
            cur = {"kind": "annex", "number": (m.group(1) or "").upper(), "title": title, "blocks": []}
            chapter = section = None
        elif kind == "title:ti-art" and (m := _ART_TITLE.match(t)):
            flush()
            seen_article = True
            in_recitals = False
            title = ""
            if i + 1 < len(blocks) and blocks[i + 1].kind == "title:sti-art":
                title = blocks[i + 1].text
                i += 1
            cur = {"kind": "article", "number": m.group(1), "title": title, "blocks": [], "chapter": chapter,
                   "section": section}
        elif kind == "title:ti-section-1":
            flush()
            label = t
            title = ""
            if i + 1 < len(blocks) and blocks[i + 1].kind == "title:ti-section-2":
                title = blocks[i + 1].text
                i += 1
            full = f"{label} — {title}" if title else label
            if label.upper().startswith("SECTION"):
                section = full
            else:
                chapter, section = full, None
        elif kind == "end":
            flush()
            in_recitals = False
        elif kind.startswith("title:doc-ti") or kind == "title:ti-section-2":
            if cur is not None and cur["kind"] == "annex":
                cur["blocks"].append(_Block("p", t, b.depth, b.el))
        elif not seen_article and cur is None and kind == "p" and t.rstrip(":").lower() == "whereas":
            in_recitals = True
        elif in_recitals and kind == "row" and (m := _RECITAL_ROW.match(t)):
            flush()
            cur = {"kind": "recital", "number": m.group(1), "title": "", "blocks": [
                _Block("p", m.group(2), 0, b.el)]}
        elif in_recitals and kind == "p" and cur is not None and cur["kind"] == "recital" and \
                t.startswith("HAVE ADOPTED"):
            flush()
            in_recitals = False
        elif cur is not None:
            if cur["kind"] == "annex" and kind.startswith("title:"):
                cur["blocks"].append(_Block("p", f"**{t}**", b.depth, b.el))  # annex headings, bold as in Markdown
            else:
                cur["blocks"].append(b)
        i += 1
    flush()
    if not units:
        raise CorpusError("no recitals, articles or annexes found", where=str(path),
                          fix="pass the HTML page of the act itself (EUR-Lex: …/TXT/HTML/?uri=CELEX:<number>), not a "
                          "search or summary page")
    return _dedupe(units)


def _dedupe(units: list[Unit]) -> list[Unit]:
    """Keep the first of units sharing an id (EUR-Lex repeats amended articles inside quotations)."""
    seen: set[str] = set()
    out = []
    for u in units:
        if u.id not in seen:
            seen.add(u.id)
            out.append(u)
    return out
