"""Corpus ingestion: one loader per format, a dispatcher that picks the loader, and folder ingestion.

Loaders (each ``load_<format>(path, doc) -> list[Unit]`` returning the structural units: articles, recitals,
annexes, framework elements, sections):

* :mod:`mad_guardrails.retrieval.ingest.jsonl`  — the shared unit JSONL of the EU acts, NIST core / risks / actions JSONL
* :mod:`mad_guardrails.retrieval.ingest.markdown` — Markdown conversions (EU ``#### Article N — title`` style, NIST prose sections)
* :mod:`mad_guardrails.retrieval.ingest.eurlex_html` — the official EUR-Lex HTML page of an act
* :mod:`mad_guardrails.retrieval.ingest.pdf` — NIST publications (pypdf; numbered section headings)
* :mod:`mad_guardrails.retrieval.ingest.text` — plain text, one unit per paragraph

:func:`ingest_file` picks the loader by extension / content sniffing and adds the paragraph / point sub-units
(:mod:`mad_guardrails.retrieval.chunking`); :func:`ingest_act_dir` ingests a folder of one act laid out like
``shared/data/corpus/<act>/``.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.hashing import file_sha256
from mad_guardrails.core.units import Unit
from mad_guardrails.retrieval.chunking import expand
from mad_guardrails.retrieval.ingest.base import (
    SUPPORTED_FORMATS,
    act_info,
    catalog,
    check_doc_id,
    check_unique,
    looks_binary,
    read_bytes,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "act_folders",
    "infer_doc",
    "ingest_act_dir",
    "ingest_file",
    "load_file",
    "sniff_format",
]

_EXT = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".md": "markdown", ".markdown": "markdown", ".html": "eurlex_html",
    ".htm": "eurlex_html", ".xhtml": "eurlex_html", ".pdf": "pdf", ".txt": "text", ".text": "text",
}
_UNSUPPORTED = {
    ".xml": "Formex XML is not supported: use the act's EUR-Lex HTML page "
            "(https://eur-lex.europa.eu/legal-content/EN/TXT/HTML/?uri=CELEX:<number>) or a units JSONL",
    ".json": "a single JSON document is not supported: write one JSON object per line (.jsonl)",
    ".docx": "Word files are not supported: export to PDF, HTML or plain text",
    ".doc": "Word files are not supported: export to PDF, HTML or plain text",
    ".odt": "OpenDocument files are not supported: export to PDF, HTML or plain text",
    ".rtf": "RTF is not supported: export to plain text",
    ".epub": "EPUB is not supported: export to HTML or plain text",
    ".zip": "archives are not read: unpack it and add the folder",
    ".gz": "archives are not read: unpack it and add the file",
    ".csv": "CSV is not a corpus format: convert rows to JSONL units",
    ".xlsx": "spreadsheets are not a corpus format: convert rows to JSONL units",
}


def sniff_format(path: Path, data: bytes | None = None) -> str:
    """The loader for ``path``: by extension, else by content (PDF magic, HTML, JSON lines, Markdown headings)."""
    suffix = path.suffix.lower()
    if suffix in _UNSUPPORTED:
        raise CorpusError(f"unknown format ({suffix})", where=str(path),
                          fix=f"{_UNSUPPORTED[suffix]}. Supported: {', '.join(SUPPORTED_FORMATS)}")
    if data is None:
        data = read_bytes(path)
    if data.startswith(b"%PDF-"):
        return "pdf"
    if suffix in _EXT:
        return _EXT[suffix]
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if looks_binary(data):
        raise CorpusError("unknown format: binary content that is not a PDF", where=str(path),
                          fix=f"pass a file in one of the supported formats ({', '.join(SUPPORTED_FORMATS)})")
    if head.startswith((b"<!doctype html", b"<html", b"<?xml")) and b"<html" in data[:65536].lower():
        return "eurlex_html"
    if head.startswith(b"{"):
        return "jsonl"
    if re.search(rb"(?m)^#{1,6} \S", data[:65536]):
        return "markdown"
    return "text"


def load_file(path: str | Path, doc: str, fmt: str | None = None) -> list[Unit]:
    """Structural units of one file (no sub-units)."""
    path = Path(path)
    fmt = fmt or sniff_format(path)
    if fmt == "jsonl":
        from mad_guardrails.retrieval.ingest.jsonl import load_jsonl as loader
    elif fmt == "markdown":
        from mad_guardrails.retrieval.ingest.markdown import load_markdown as loader
    elif fmt == "eurlex_html":
        from mad_guardrails.retrieval.ingest.eurlex_html import load_eurlex_html as loader
    elif fmt == "pdf":
        from mad_guardrails.retrieval.ingest.pdf import load_pdf as loader
    elif fmt == "text":
        from mad_guardrails.retrieval.ingest.text import load_text as loader
    else:
        raise CorpusError(f"unknown format {fmt!r}", where=str(path),
                          fix=f"use one of: {', '.join(SUPPORTED_FORMATS)}")
    units = loader(path, doc)
    if not units:
        raise CorpusError(f"no units found ({fmt} loader)", where=str(path),
                          fix="check that this is the text of an act (articles, sections or paragraphs), or try "
                          "another --format")
    return units


def infer_doc(path: Path) -> str | None:
    """Act id from a folder or file name: the folder name when it is a catalog id, else a catalog id whose
    words all occur in the file name (``eu_ai_act_2024-1689_units.jsonl`` -> ``eu-ai-act``)."""
    path = Path(path)
    known = catalog()
    for part in (path.name, path.parent.name) if path.is_file() else (path.name,):
        if part in known:
            return part
    name = path.name.lower().replace("_", "-")
    for doc in sorted(known, key=len, reverse=True):
        if doc in name:
            return doc
    raw = path.name.lower()
    for doc, info in known.items():  # official file names: NIST.CSWP.29.pdf, L_202401689EN…, CELEX 32024R1689
        keys = [info.doi.rsplit("/", 1)[-1].lower()] if info.doi else []
        if info.celex:
            keys += [info.celex.lower(), f"l_{info.celex[1:5]}0{info.celex[6:]}".lower()]
        if any(k and k in raw for k in keys):
            return doc
    return None


def ingest_file(path: str | Path, doc: str | None = None, *, fmt: str | None = None,
                subunits: bool = True) -> list[Unit]:
    """Units of one file (plus paragraph/point sub-units).

    >>> from mad_guardrails.core.paths import shared_corpus
    >>> root = shared_corpus()
    >>> units = ingest_file(root / "nis2" / "nis2_directive_2022-2555_units.jsonl") if root else []
    >>> (not root) or any(u.id == "nis2:art_23.4.a" for u in units)
    True
    """
    path = Path(path)
    doc = check_doc_id(doc or infer_doc(path), str(path))
    units = load_file(path, doc, fmt)
    return check_unique(expand(units) if subunits else units, str(path))


def act_files(folder: Path, doc: str) -> list[Path]:
    """The files that make up an act in a shared-corpus-like folder (catalog ``shared`` globs; for an unknown act:
    its JSONL files, else Markdown, else HTML, else PDF, else text)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    info = catalog().get(doc)
    if info and info.shared:
        picked = [p for p in files if any(fnmatch.fnmatch(p.name, g) for g in info.shared)]
        if picked:
            return picked
    for exts in ((".jsonl",), (".md", ".markdown"), (".html", ".htm", ".xhtml"), (".pdf",), (".txt",)):
        picked = [p for p in files if p.suffix.lower() in exts]
        if picked:
            return picked
    return []


def ingest_act_dir(folder: str | Path, doc: str | None = None, *, subunits: bool = True
                   ) -> tuple[list[Unit], dict[str, str]]:
    """Units of one act folder and ``{file name: sha256}`` of the files read."""
    folder = Path(folder)
    doc = check_doc_id(doc or infer_doc(folder), str(folder))
    files = act_files(folder, doc)
    if not files:
        raise CorpusError("no ingestible files in this folder", where=str(folder),
                          fix=f"put the act's *_units.jsonl, Markdown, HTML, PDF or text file there "
                          f"(formats: {', '.join(SUPPORTED_FORMATS)})")
    units: list[Unit] = []
    for f in files:
        units.extend(load_file(f, doc))
    units = check_unique(expand(units) if subunits else units, str(folder))
    return units, {f.name: file_sha256(f) for f in files}


def act_folders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` that hold an act (shared-corpus layout: one folder per act)."""
    out = []
    for sub in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if act_files(sub, sub.name):
            out.append(sub)
    return out


def short_name(doc: str) -> str:
    return act_info(doc).short or doc
