"""Sub-units (paragraphs, points, sub-points) of articles and annexes, and the passages that get indexed.

**Sub-units.** :func:`split_unit` reads the structure of an article/annex text (the shared text format: paragraphs on
lines starting ``1.``, points ``(a)`` / ``(1)`` on their own lines, optionally bulleted ``- (a)`` and indented,
sub-points ``(i)``) and returns one Unit per paragraph / point / sub-point, ids following the project's scheme::

    art_5            article
    art_5.1          paragraph 1
    art_5.1.c        point (c) of paragraph 1
    art_5.1.c.ii     sub-point (ii)
    art_3.44         definition (44) of an article without numbered paragraphs
    anx_iii.1.a      annex III, point 1, point (a)
    anx_vii.4.1      annex VII, point 4.1
    anx_viii.part_ii.3   annex sections (Part/Section/Class headings) nest their points, because numbering restarts

Every sub-unit's text is a verbatim slice of its parent's text (so of its article's text too): a quote found in a
point is found in its article. A point ends where the next marker of the same or a higher level starts, or at an
unmarked line that follows a blank line and is not indented deeper than the point (the paragraph's closing
sub-paragraph belongs to the paragraph, not to its last point).

    >>> from mad_guardrails.core.units import Unit
    >>> art = Unit(id="x:art_1", doc="x", kind="article", heading="Article 1 — Demo",
    ...            text="1. Lead-in:\\n\\n(a) first;\\n\\n(b) second:\\n  (i) one;\\n  (ii) two.\\n\\n2. Other.")
    >>> [u.local_id for u in split_unit(art)]
    ['art_1.1', 'art_1.1.a', 'art_1.1.b', 'art_1.1.b.i', 'art_1.1.b.ii', 'art_1.2']
    >>> [u.text for u in split_unit(art)][2:4]
    ['(b) second:\\n  (i) one;\\n  (ii) two.', '(i) one;']

**Passages** (:func:`make_passages`): the pieces the index embeds. Choice made here: *every passage cites a real unit
id and its text is a verbatim slice of that unit's text*:

1. a top-level unit of at most ``max_words`` words is one passage;
2. a longer unit is cut along its sub-units: a sub-unit of at least ``min_words`` words (and at most ``max_words``)
   is its own passage with its own id (``art_5.1.c``); runs of consecutive short sub-units (and the parent's own
   sentences between them) are packed into one passage that cites the *parent* (the only id whose text contains
   the whole run); a sub-unit that is still too long is cut the same way, recursively;
3. a unit without sub-units that is still too long (long recitals, NIST prose sections, tables) is cut into
   windows at blank lines / sentence ends; each window cites that unit (``passage_id`` ``<unit id>#<n>``).

A short lead-in that ends with ':' ("The following AI practices shall be prohibited:") is not a passage of its
own; it is prepended to the ``embed_text`` of the sub-unit passages that follow it (never to their quotable text).
Chunks never cross a unit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, Field

from mad_guardrails.core.units import Unit

SUBUNIT_KINDS = ("paragraph", "point")
SPLITTABLE_KINDS = ("article", "annex")
_WORD = re.compile(r"\S+")


def n_words(text: str) -> int:
    return len(_WORD.findall(text))


# ------------------------------------------------------------------------------------------------ line markers

_PARA = re.compile(r"(\d{1,3})\.(?=\s|$)")
_ANNEX_NUM = re.compile(r"(?:\*\*)?(\d{1,2}(?:\.\d{1,2}){0,3})\.(?=\s|\*\*|$)")
_POINT = re.compile(r"(?:[-*•]\s+)?\((\d{1,3}|[a-z]{1,2}|[ivxl]{1,6})\)(?=\s|$)")
_SECTION = re.compile(r"(?:\*\*)?(Part|PART|Section|SECTION|Class|CLASS)\s+([A-Z]{1,4}|\d{1,2})\b(.*)$")
_ROMANS = {  # (l), (c) are always letters
    "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xv", "xvi", "xvii",
    "xviii", "xix", "xx",
}

# rank: smaller = higher level
R_SECTION, R_NUM, R_NPOINT, R_ALPHA, R_ROMAN = 0, 1, 5, 6, 7


@dataclass
class _Marker:
    line_no: int
    start: int  # offset of the marker in the parent text
    indent: int
    rank: int
    label: str  # id component ("1", "c", "ii", "part_ii", "4.1")
    kind: str
    number: str = ""  # dotted number for annex points ("4.1")


@dataclass
class _Node:
    m: _Marker
    uid: str
    parent_uid: str
    end: int = -1


def _lines(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for line in text.split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _classify_points(lines: list[tuple[int, str]], annex: bool) -> list[_Marker | None]:
    """One entry per line: the marker it starts with, or None."""
    marks: list[_Marker | None] = []
    last_para = 0
    for i, (off, line) in enumerate(lines):
        stripped = line.lstrip(" \t")
        indent = len(line) - len(stripped)
        m = None
        if annex and indent == 0 and (sm := _SECTION.match(stripped)) and _section_like(stripped):
            word, num = sm.group(1).lower(), sm.group(2).lower()
            m = _Marker(i, off, indent, R_SECTION, f"{word}_{num}", "section")
        elif annex and indent == 0 and (am := _ANNEX_NUM.match(stripped)):
            number = am.group(1)
            m = _Marker(i, off, indent, R_NUM + number.count("."), number, "paragraph", number)
        elif not annex and indent == 0 and (pm := _PARA.match(stripped)) and int(pm.group(1)) == last_para + 1:
            last_para += 1
            m = _Marker(i, off, indent, R_NUM, pm.group(1), "paragraph", pm.group(1))
        elif pt := _POINT.match(stripped):
            label = pt.group(1)
            start = off + indent + stripped.index("(")
            if label.isdigit():
                m = _Marker(i, start, indent, R_NPOINT, label, "point")
            else:
                m = _Marker(i, start, indent, R_ALPHA, label, "point")  # roman vs alpha decided in context below
        marks.append(m)
    return marks


def _section_like(line: str) -> bool:
    body = line.strip()
    if body.startswith("**"):
        return True
    return n_words(body) <= 20 and not body.rstrip("*").endswith((".", ";", ",", ":"))


def _next_point_label(marks: list[_Marker | None], i: int) -> str | None:
    for m in marks[i + 1 :]:
        if m is not None and m.kind == "point":
            return m.label
    return None


def _is_roman(m: _Marker, stack: list[_Node], marks: list[_Marker | None], idx: int, last_alpha: _Marker | None
              ) -> bool:
    """Is the letter-like label of ``m`` a roman sub-point ((i), (v), (x) are ambiguous)?"""
    label = m.label
    if label not in _ROMANS:
        return False
    open_roman = next((n for n in reversed(stack) if n.m.rank == R_ROMAN), None)
    if len(label) > 1:
        if label in ("ii", "vi", "xi") and last_alpha is not None and len(last_alpha.label) == 2:
            return False  # (hh) -> (ii): a run of double letters
        return True
    nxt = _next_point_label(marks, idx)
    follow_roman = {"i": "ii", "v": "vi", "x": "xi"}[label]
    follow_alpha = chr(ord(label) + 1)
    if nxt == follow_roman:
        return True
    if nxt == follow_alpha:
        return False
    if open_roman is not None and _roman_value(open_roman.m.label) + 1 == _roman_value(label):
        return True  # (iv) -> (v), (ix) -> (x)
    if last_alpha is not None and last_alpha.label == chr(ord(label) - 1):
        return m.indent > last_alpha.indent  # (h) -> (i): a letter unless indented below (h)
    return label == "i"


def _roman_value(s: str) -> int:
    vals = {"i": 1, "v": 5, "x": 10, "l": 50}
    total = 0
    for a, b in zip(s, s[1:] + " "):
        v = vals.get(a, 0)
        total += -v if b != " " and vals.get(b, 0) > v else v
    return total


def split_unit(unit: Unit) -> list[Unit]:
    """Paragraph / point / sub-point units of an article or annex (document order); [] for other kinds."""
    if unit.kind not in SPLITTABLE_KINDS or not unit.text:
        return []
    text = unit.text
    lines = _lines(text)
    annex = unit.kind == "annex"
    marks = _classify_points(lines, annex)
    root_uid = unit.id
    stack: list[_Node] = []
    nodes: list[_Node] = []
    seen: set[str] = {root_uid}
    prev_blank = False
    last_alpha: _Marker | None = None

    def close(node: _Node, at: int) -> None:
        node.end = at

    for i, (off, line) in enumerate(lines):
        m = marks[i]
        blank = not line.strip()
        if m is None:
            if not blank and prev_blank:
                indent = len(line) - len(line.lstrip(" \t"))
                # an unmarked line after a blank line closes points not indented deeper than it
                while stack and stack[-1].m.rank >= R_NPOINT and stack[-1].m.indent >= indent:
                    close(stack.pop(), off)
            prev_blank = blank
            continue
        prev_blank = False
        if m.kind == "point" and m.rank == R_ALPHA:
            if _is_roman(m, stack, marks, i, last_alpha):
                m.rank = R_ROMAN
            else:
                last_alpha = m
        elif m.rank <= R_NPOINT:
            last_alpha = None
        while stack and stack[-1].m.rank >= m.rank:
            close(stack.pop(), off)
        parent = stack[-1] if stack else None
        parent_uid = parent.uid if parent else root_uid
        label = m.label
        if m.number and "." in m.number:
            prefix, _, last = m.number.rpartition(".")
            label = last if parent is not None and parent.m.number == prefix else m.number
        uid = f"{parent_uid}.{label}"
        if uid in seen:  # numbering restarts without a section heading: keep the line as text of its parent
            marks[i] = None
            continue
        seen.add(uid)
        node = _Node(m, uid, parent_uid)
        stack.append(node)
        nodes.append(node)
    while stack:
        close(stack.pop(), len(text))

    out: list[Unit] = []
    for node in nodes:
        start = node.m.start
        if node.m.kind != "point":
            start = lines[node.m.line_no][0] + node.m.indent
        piece = text[start : node.end].rstrip()
        if not piece:
            continue
        out.append(
            unit.model_copy(
                update={
                    "id": node.uid,
                    "kind": "section" if node.m.kind == "section" else node.m.kind,
                    "parent": node.parent_uid,
                    "text": piece,
                    "number": _number_label(unit, node.uid),
                }
            )
        )
    return out


def _number_label(top: Unit, uid: str) -> str:
    """Citation number: '5(1)(c)' for art_5.1.c; 'III, point 1(a)' for anx_iii.1.a; 'VIII, Part II, point 3.1'."""
    rest = uid[len(top.id) + 1 :].split(".")
    base = top.number or top.local_id
    if top.kind != "annex":
        return base + "".join(f"({p})" for p in rest)
    out, nums, letters = base, [], ""
    for p in rest:
        if "_" in p:  # part_ii / section_a / class_i
            word, _, num = p.partition("_")
            out += f", {word.capitalize()} {num.upper()}"
        elif p.isdigit() and not letters:
            nums.append(p)
        else:
            letters += f"({p})"
    if nums or letters:
        out += ", point " + ".".join(nums) + letters
    return out


def expand(units: Iterable[Unit]) -> list[Unit]:
    """The units followed (each right after its parent) by their sub-units."""
    out: list[Unit] = []
    for u in units:
        out.append(u)
        out.extend(split_unit(u))
    return out


# ---------------------------------------------------------------------------------------------------- passages


class Passage(BaseModel):
    """One piece of text to index: cites ``unit_id``; ``text`` is a verbatim slice of that unit's text."""

    passage_id: str = Field(description="unique: the unit id, or '<unit id>#<n>' for a window of a long unit")
    unit_id: str
    doc: str
    kind: str
    heading: str = Field(description="act short name + citation label + title, e.g. 'EU AI Act, Article 5(1)(c) — …'")
    text: str = Field(description="verbatim, for quoting")
    embed_text: str = Field(description="heading (+ lead-in of the enclosing paragraph) + text, for the embedder")


@dataclass
class _Seg:
    start: int
    end: int
    child: Unit | None
    words: int


def _segments(unit: Unit, kids: list[Unit]) -> list[_Seg]:
    segs: list[_Seg] = []
    pos = 0
    text = unit.text
    for k in kids:
        at = text.find(k.text, pos)
        if at < 0:
            continue
        if text[pos:at].strip():
            g0 = pos + (len(text[pos:at]) - len(text[pos:at].lstrip()))
            g1 = at - (len(text[pos:at]) - len(text[pos:at].rstrip()))
            segs.append(_Seg(g0, g1, None, n_words(text[g0:g1])))
        segs.append(_Seg(at, at + len(k.text), k, n_words(k.text)))
        pos = at + len(k.text)
    tail = text[pos:]
    if tail.strip():
        g0 = pos + (len(tail) - len(tail.lstrip()))
        segs.append(_Seg(g0, len(text.rstrip()), None, n_words(text[g0:])))
    return segs


_SENT_END = re.compile(r"(?<=[.;:!?])\s+(?=[\"'‘“(\[A-Z0-9-])|\n\s*\n|\n(?=\s*[-*•|])")


def windows(text: str, max_words: int) -> list[tuple[int, int]]:
    """Cut ``text`` into verbatim ``(start, end)`` slices of at most ~``max_words`` words at blank lines / sentence
    ends (a single sentence longer than that is cut at word boundaries)."""
    pieces: list[tuple[int, int]] = []
    pos = 0
    for m in _SENT_END.finditer(text):
        if text[pos : m.start()].strip():
            pieces.append((pos, m.start()))
        pos = m.end()
    if text[pos:].strip():
        pieces.append((pos, len(text.rstrip())))
    # cut over-long sentences at word boundaries
    fine: list[tuple[int, int]] = []
    for a, b in pieces:
        words = list(_WORD.finditer(text, a, b))
        if len(words) <= max_words:
            fine.append((a, b))
            continue
        for j in range(0, len(words), max_words):
            chunk = words[j : j + max_words]
            fine.append((chunk[0].start(), chunk[-1].end()))
    out: list[tuple[int, int]] = []
    cur: list[int] | None = None
    cur_words = 0
    for a, b in fine:
        w = n_words(text[a:b])
        if cur is not None and cur_words + w > max_words:
            out.append((cur[0], cur[1]))
            cur = None
        if cur is None:
            cur, cur_words = [a, b], w
        else:
            cur[1], cur_words = b, cur_words + w
    if cur is not None:
        out.append((cur[0], cur[1]))
    return out


def citation_label(unit: Unit) -> str:
    """Human label: 'Article 5(1)(c)', 'Annex III(1)(a)', 'Recital 12', 'GV.OC-01', 'Section 3.1'."""
    local = unit.local_id
    num = unit.number or ""
    if local.startswith("art_"):
        return f"Article {num or local[4:]}"
    if local.startswith("anx_"):
        return f"Annex {num or local[4:].upper()}"
    if local.startswith("rct_"):
        return f"Recital {num or local[4:]}"
    if local.startswith("sec_") and re.fullmatch(r"sec_\d+(\.\d+)*", local):
        return f"Section {local[4:]}"
    if local.startswith("app_"):
        return f"Appendix {local[4:].upper()}"
    return local


def _title_of(heading: str) -> str:
    return heading.split(" — ", 1)[1] if " — " in heading else ""


def passage_heading(unit: Unit, short: str) -> str:
    label = citation_label(unit)
    title = _title_of(unit.heading)
    if unit.local_id.startswith(("art_", "anx_", "rct_")):
        head = f"{label} — {title}" if title else label
    else:
        head = unit.heading or label
    return f"{short}, {head}" if short else head


def lead_in(unit: Unit, kids: list[Unit], max_words: int = 40) -> str:
    """The unit's own words before its first sub-unit when they end with ':' (a list's lead-in), else ''."""
    if not kids:
        return ""
    at = unit.text.find(kids[0].text)
    head = unit.text[:at].strip() if at > 0 else ""
    if head.endswith(":") and 0 < n_words(head) <= max_words:
        return head
    return ""


def make_passages(
    top_units: Iterable[Unit],
    children: Callable[[str], list[Unit]],
    short_name: Callable[[str], str],
    max_words: int = 180,
    min_words: int = 25,
) -> Iterator[Passage]:
    """Passages of ``top_units`` following the policy in the module docstring."""
    if max_words < 10:
        raise ValueError("max_words must be at least 10")

    def sub(u: Unit) -> list[Unit]:
        return [k for k in children(u.id) if k.kind in SUBUNIT_KINDS or (k.kind == "section" and u.kind == "annex")]

    def emit(u: Unit, a: int, b: int, idx: int | None, context: list[str]) -> Passage:
        head = passage_heading(u, short_name(u.doc))
        txt = u.text[a:b].strip()
        ctx = "\n".join(c for c in context if c)
        return Passage(
            passage_id=u.id if idx is None else f"{u.id}#{idx}", unit_id=u.id, doc=u.doc, kind=u.kind, heading=head,
            text=txt, embed_text="\n".join(p for p in (head, ctx, txt) if p),
        )

    def win(u: Unit, a: int, b: int, context: list[str], counter: list[int]) -> Iterator[Passage]:
        for wa, wb in windows(u.text[a:b], max_words):
            counter[0] += 1
            yield emit(u, a + wa, a + wb, counter[0], context)

    def walk(u: Unit, context: list[str]) -> Iterator[Passage]:
        if not u.text.strip():
            return
        if n_words(u.text) <= max_words:
            yield emit(u, 0, len(u.text), None, context)
            return
        kids = sub(u)
        counter = [0]
        segs = _segments(u, kids) if kids else []
        if not segs or all(s.child is None for s in segs):
            yield from win(u, 0, len(u.text), context, counter)
            return
        intro = lead_in(u, kids)
        ctx = context + [intro] if intro else context
        run: list[_Seg] = []
        run_words = 0

        def flush() -> Iterator[Passage]:
            nonlocal run, run_words
            if run:
                if len(run) == 1 and run[0].child is not None:
                    yield from walk(run[0].child, ctx)
                else:
                    counter[0] += 1
                    yield emit(u, run[0].start, run[-1].end, counter[0], ctx)
            run, run_words = [], 0

        for s in segs:
            if s.child is None and intro and u.text[s.start : s.end].strip() == intro:
                continue  # the lead-in rides along in the embed_text of what follows
            if s.words > max_words:
                yield from flush()
                if s.child is not None:
                    yield from walk(s.child, ctx)
                else:
                    yield from win(u, s.start, s.end, context, counter)
                continue
            if s.child is not None and s.words >= min_words:
                yield from flush()
                yield from walk(s.child, ctx)
                continue
            if run_words + s.words > max_words:
                yield from flush()
            run.append(s)
            run_words += s.words
        yield from flush()

    for top in top_units:
        ctx = []
        if top.kind in ("framework_element", "section") and top.section and top.section not in top.heading:
            ctx.append(top.section)  # the category / parent section a framework element or section belongs to
        yield from walk(top, ctx)
