"""PDF loader for NIST publications (pypdf): numbered sections, appendices, and a CSF-style Core when present.

1. Text per page; running headers/footers (lines repeated on most pages) and page numbers are dropped.
2. Headings: the table of contents (lines with dot leaders) names the top headings (``1. Cybersecurity Framework
   (CSF) Overview``, ``Appendix A. CSF Core``); sub-headings (``3.1. CSF Profiles``) are short numbered lines whose
   number continues the numbering. Without a table of contents, short numbered lines in sequence are headings.
3. Units: ``sec_<number>`` (parent ``sec_<prefix>``), ``app_<letter>``, ``sec_front_matter`` for what precedes the
   first heading (table-of-contents lines removed). Hard-wrapped lines are re-joined; bullets start new lines.
4. A Core listed as in NIST CSWP 29 Appendix A (``GOVERN (GV): …``, ``• Organizational Context (GV.OC): …``,
   ``o GV.OC-01: …``) becomes framework elements with the official ids (``GV``, ``GV.OC``, ``GV.OC-01``); the
   appendix unit keeps only its introduction.

PDF text extraction is lossy (pypdf splits some words: "a nd"); the structured JSONL of the shared corpus is
preferred when it exists.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.text import collapse_ws
from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.ingest.base import check_doc_id, make_unit, read_bytes

_TOC_LINE = re.compile(r"^(?P<title>.+?)\s*\.{4,}\s*(?P<page>\d+|[ivxlc]+)\s*$", re.I)
_NUM_HEAD = re.compile(r"^(?P<num>\d{1,2}(?:\.\d{1,2}){0,3})\.?\s+(?P<title>[A-Z][^\n]{1,100})$")
_APP_HEAD = re.compile(r"^Appendix\s+(?P<letter>[A-Z])[.:]\s+(?P<title>\S.{0,100})$")
_PAGE_NO = re.compile(r"^\s*(\d{1,4}|[ivxlc]{1,6})\s*$", re.I)
_BULLET = re.compile(r"^\s*(?:[•▪◦●∙·]|o\s|-\s|\d{1,2}\.\s|\([a-z0-9]{1,3}\)\s)")
# pypdf may split ids and names with stray spaces ("ID .RA-01", "P R.AT-01"): the patterns allow them
_CORE_FN = re.compile(r"^(?P<name>[A-Z][A-Z ]{2,}?)\s*\((?P<id>[A-Z] ?[A-Z])\):\s*(?P<text>.*)$")
_CORE_CAT = re.compile(r"^[•▪●]\s*(?P<name>.+?)\s+\((?P<id>[A-Z] ?[A-Z] ?\. ?[A-Z] ?[A-Z])\):\s*(?P<text>.*)$")
_CORE_SUB = re.compile(r"^(?:o|◦|-)\s+(?P<id>[A-Z] ?[A-Z] ?\. ?[A-Z] ?[A-Z] ?- ?\d ?\d):\s*(?P<text>.*)$")


def _id(m: re.Match) -> str:
    return m.group("id").replace(" ", "")


_PAGES_CACHE: dict[str, tuple[str, ...]] = {}


def read_pdf_pages(path: Path) -> list[str]:
    data = read_bytes(path)
    if not data.startswith(b"%PDF-"):
        raise CorpusError("not a PDF (the file does not start with %PDF-)", where=str(path),
                          fix="pass the publication's PDF, or the right --format for this file")
    digest = hashlib.sha256(data).hexdigest()
    if digest in _PAGES_CACHE:  # the same bytes in one process (re-fetch, tests): extraction is the slow part
        return list(_PAGES_CACHE[digest])
    try:
        from io import BytesIO

        import pypdf

        reader = pypdf.PdfReader(BytesIO(data))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception as e:
                raise CorpusError("the PDF is encrypted", where=str(path),
                                  fix="save an unencrypted copy (e.g. print to PDF) and add that") from e
        pages = [(p.extract_text() or "") for p in reader.pages]
    except CorpusError:
        raise
    except Exception as e:  # pypdf raises many types on broken files
        raise CorpusError(f"cannot read the PDF ({type(e).__name__}: {e})", where=str(path),
                          fix="re-download it (a truncated download gives a broken PDF)") from e
    if len(_PAGES_CACHE) >= 4:
        _PAGES_CACHE.pop(next(iter(_PAGES_CACHE)))
    _PAGES_CACHE[digest] = tuple(pages)
    return pages


def _strip_running(pages: list[list[str]]) -> list[list[str]]:
    """Drop lines that repeat at the top/bottom of most pages, and bare page numbers."""
    if len(pages) >= 3:
        edge = Counter()
        for lines in pages:
            cand = {collapse_ws(re.sub(r"\d+", "#", ln)).lower() for ln in lines[:4] + lines[-3:] if ln.strip()}
            edge.update(cand)
        common = {k for k, v in edge.items() if v >= max(2, int(0.5 * len(pages)))}
    else:
        common = set()
    out = []
    for lines in pages:
        kept = []
        for j, ln in enumerate(lines):
            near_edge = j < 4 or j >= len(lines) - 3
            if near_edge and (collapse_ws(re.sub(r"\d+", "#", ln)).lower() in common or _PAGE_NO.match(ln)):
                continue
            kept.append(ln.rstrip())
        out.append(kept)
    return out


def _toc(lines: list[str]) -> tuple[set[str], set[int]]:
    """Titles named by the table of contents and the indexes of the TOC lines."""
    titles, idx = set(), set()
    for i, ln in enumerate(lines):
        m = _TOC_LINE.match(ln.strip())
        if m:
            titles.add(collapse_ws(m.group("title")).lower())
            idx.add(i)
    return titles, idx


def _is_successor(prev: list[int] | None, num: list[int]) -> bool:
    if prev is None:
        return num == [1] or len(num) == 1
    for depth in range(len(prev) + 1):
        if depth < len(prev):
            cand = prev[:depth] + [prev[depth] + 1]
        else:
            cand = prev + [1]
        if num == cand:
            return True
    return False


def _headings(lines: list[str], toc_titles: set[str], toc_idx: set[int]) -> list[tuple[int, str, str, str]]:
    """``(line index, local id, number, heading text)`` in order."""
    out: list[tuple[int, str, str, str]] = []
    prev_num: list[int] | None = None
    for i, raw in enumerate(lines):
        if i in toc_idx:
            continue
        ln = raw.strip()
        if m := _APP_HEAD.match(ln):
            if collapse_ws(ln).lower() in toc_titles or (not toc_titles and len(ln.split()) <= 12):
                letter = m.group("letter")
                out.append((i, f"app_{letter.lower()}", letter, ln))
                prev_num = None
            continue
        m = _NUM_HEAD.match(ln)
        if not m:
            continue
        num = [int(x) for x in m.group("num").split(".")]
        title = m.group("title").strip()
        words = len(title.split())
        in_toc = collapse_ws(ln).lower() in toc_titles
        plausible = words <= 12 and not title.rstrip().endswith((".", ",", ";", ":")) and _is_successor(prev_num, num)
        if in_toc or (plausible and (len(num) > 1 or not toc_titles)):
            if out and out[-1][1] == f"sec_{m.group('num')}":
                continue
            out.append((i, f"sec_{m.group('num')}", m.group("num"), ln))
            prev_num = num
    return out


def unwrap(lines: list[str]) -> str:
    """Re-join hard-wrapped PDF lines: bullets and numbered items start new lines; short lines ending a sentence end
    a paragraph; a line-end hyphen joins without a space."""
    lines = [ln.rstrip() for ln in lines]
    widths = sorted(len(ln) for ln in lines if ln.strip())
    typical = widths[int(len(widths) * 0.75)] if widths else 80
    out = ""
    prev = ""
    for ln in lines:
        s = ln.strip()
        if not s:
            if out and not out.endswith("\n\n"):
                out = out.rstrip(" ") + "\n\n"
            prev = ""
            continue
        if not out or out.endswith("\n"):
            out += s
        elif _BULLET.match(ln):
            out = out.rstrip(" ") + "\n" + s
        elif prev.endswith((".", ":", "!", "?")) and len(prev) < 0.7 * typical:
            out = out.rstrip(" ") + "\n\n" + s
        elif prev.endswith("-") and not prev.endswith(" -"):
            out = out.rstrip(" ") + s
        else:
            out = out.rstrip(" ") + " " + s
        prev = s
    return out.strip()


def _core_units(doc: str, lines: list[str], src: str) -> tuple[list[Unit], int | None]:
    """CSF-style core elements and the index of the first core line (None when there is no such core)."""
    items: list[tuple[str, str, str | None, str, list[str]]] = []  # (kind, id, parent, name, text lines)
    first = None
    fn = cat = None
    for i, raw in enumerate(lines):
        ln = raw.strip()
        if m := _CORE_FN.match(ln):
            fn, cat = _id(m), None
            items.append(("function", fn, None, m.group("name").replace(" ", ""), [m.group("text")]))
        elif m := _CORE_CAT.match(ln):
            cat = _id(m)
            items.append(("category", cat, fn, m.group("name"), [m.group("text")]))
        elif m := _CORE_SUB.match(ln):
            items.append(("subcategory", _id(m), cat, "", [m.group("text")]))
        else:
            if items and _APP_HEAD.match(ln):
                break  # the next appendix ends the Core
            if items and ln and not _NUM_HEAD.match(ln):
                items[-1][4].append(ln)  # a wrapped line
            continue
        if first is None:
            first = i
    subs = sum(1 for it in items if it[0] == "subcategory")
    if subs < 3:
        return [], None
    names = {it[1]: it[3] for it in items}
    units = []
    for kind, uid, parent, name, text in items:
        head = f"{uid} — {name}" if name else uid
        fn_id = uid.split(".")[0].split("-")[0]
        cat_id = uid.split("-")[0] if kind == "subcategory" else (uid if kind == "category" else None)
        units.append(make_unit(
            doc, uid, "framework_element", unwrap(text), source_file=src, parent=parent, heading=head,
            chapter=f"{fn_id} — {names.get(fn_id, '')}".rstrip(" —"),
            section=f"{cat_id} — {names.get(cat_id, '')}".rstrip(" —") if cat_id else None, number=uid,
        ))
    return units, first


def load_pdf(path: str | Path, doc: str) -> list[Unit]:
    path = Path(path)
    doc = check_doc_id(doc, str(path))
    pages = read_pdf_pages(path)
    if not any(p.strip() for p in pages):
        raise CorpusError("the PDF has no text layer (scanned images?)", where=str(path),
                          fix="run OCR first (e.g. ocrmypdf) or add a text/HTML version of the publication")
    page_lines = _strip_running([p.split("\n") for p in pages])
    lines = [ln for pl in page_lines for ln in pl]
    toc_titles, toc_idx = _toc(lines)
    heads = _headings(lines, toc_titles, toc_idx)
    src = path.name
    core, core_at = _core_units(doc, lines, src)
    units: list[Unit] = []
    first = heads[0][0] if heads else len(lines)
    front = [ln for i, ln in enumerate(lines[:first]) if i not in toc_idx]
    if "\n".join(front).strip():
        units.append(make_unit(doc, "sec_front_matter", "section", unwrap(front), source_file=src,
                               heading="Front matter"))
    made: set[str] = set()
    for k, (i, local, number, heading) in enumerate(heads):
        end = heads[k + 1][0] if k + 1 < len(heads) else len(lines)
        if core_at is not None and i < core_at < end:
            end = core_at  # the Core itself becomes framework elements
        body = unwrap([ln for j, ln in enumerate(lines[i + 1 : end], start=i + 1) if j not in toc_idx])
        if not body or local in made:
            continue
        parent = None
        if local.startswith("sec_") and "." in number:
            cand = f"sec_{number.rsplit('.', 1)[0]}"
            parent = cand if cand in made else None
        units.append(make_unit(doc, local, "section", body, source_file=src, parent=parent, heading=heading,
                               number=number))
        made.add(local)
    return units + core
