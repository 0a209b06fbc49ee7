"""Look up the text of a provision id (``eu-ai-act:art_5.1.c``) so policy packs can be checked against the acts.

Two sources, in this order:

1. the project's corpus loader (``mad_guardrails.retrieval.corpus.load_corpus``) when that module exists — the same units the
   retriever indexes, so a provision that validates here is one the guardrail can cite;
2. a small reader of the units JSONL files (``<corpus>/<act>/*_units.jsonl`` and the NIST ``*_core.jsonl`` /
   ``*_gai_risks.jsonl`` / ``*_suggested_actions.jsonl``) that splits articles into paragraphs (``1.``), points
   (``(a)``) and sub-points (``(i)``) following the project's id scheme (see the brief / ``retrieval/units.py``).

Both answer :meth:`ProvisionSource.text` with the unit text or ``None`` when the id does not exist.

    >>> from mad_guardrails.core.paths import shared_corpus
    >>> src = open_provisions(shared_corpus())            # doctest: +SKIP
    >>> "24 hours" in src.text("nis2:art_23.4.a")           # doctest: +SKIP
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from mad_guardrails.core.records import read_jsonl
from mad_guardrails.core.units import split_unit_id

__all__ = ["ProvisionSource", "JsonlProvisions", "open_provisions", "split_article"]


class ProvisionSource(Protocol):
    name: str

    def text(self, unit_id: str) -> str | None: ...

    def docs(self) -> set[str]: ...


# ----------------------------------------------------------------------------------------------------------- split
_PART = re.compile(r"^Part\s+([IVX]+)\b")
_PARA = re.compile(r"^\s{0,3}(\d{1,3})\.\s+\S")
_POINT = re.compile(r"^(\s*)(?:[-*]\s+)?\(([a-z]{1,5}|\d{1,3})\)\s*")
_ROMAN = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii", "xiii", "xiv", "xv", "xvi",
          "xvii", "xviii", "xix", "xx"]


def _next_letter(prev: str | None) -> str:
    if prev is None:
        return "a"
    if prev == "z":
        return "aa"
    if len(prev) == 2 and prev[0] == prev[1]:  # aa -> bb (EU style after z)
        return chr(ord(prev[0]) + 1) * 2
    return chr(ord(prev[-1]) + 1)


def _next_roman(prev: str | None) -> str | None:
    if prev is None:
        return "i"
    try:
        return _ROMAN[_ROMAN.index(prev) + 1]
    except (ValueError, IndexError):
        return None


def split_article(text: str) -> dict[str, str]:
    r"""Split the text of an article / annex into its numbered parts, keyed by local suffix.

    Keys are ``"1"`` (paragraph), ``"1.a"`` (point), ``"1.a.i"`` (sub-point); points of an article without numbered
    paragraphs are keyed ``"a"``; annexes divided into ``Part I``, ``Part II`` ... prefix their keys with
    ``"part_i."`` (numbering restarts in each part). A paragraph's text includes its points, a point's its sub-points.

    >>> parts = split_article("1. Intro:\n(a) first;\n  (i) one;\n(b) second.\n2. Next.")
    >>> sorted(parts)
    ['1', '1.a', '1.a.i', '1.b', '2']
    >>> parts["1.a"]
    '(a) first;\n  (i) one;'
    """
    parts: dict[str, list[str]] = {}
    prefix = ""  # "part_ii." inside Part II of an annex
    part_key: str | None = None
    para: str | None = None  # full key of the open paragraph, e.g. "part_i.2"
    last_para_no = 0
    point: str | None = None  # letter of the open point
    point_indent = 0
    sub: str | None = None
    paren_numbering = False  # "(1) ... (2) ..." numbered items instead of "1." paragraphs (definitions, annexes)
    open_keys: list[str] = []  # the parts currently receiving lines

    def _open(keys: list[str]) -> None:
        nonlocal open_keys
        open_keys = ([part_key] if part_key else []) + keys
        for k in open_keys:
            parts.setdefault(k, [])

    def _add(line: str) -> None:
        for k in open_keys:
            parts[k].append(line)

    for raw in text.splitlines():
        line = raw.rstrip()
        m_part = _PART.match(line)
        if m_part:
            part_key = f"part_{m_part.group(1).lower()}"
            prefix = part_key + "."
            para, point, sub, last_para_no, paren_numbering = None, None, None, 0, False
            _open([])
            _add(line)
            continue
        m_para = _PARA.match(line)
        if m_para and int(m_para.group(1)) == last_para_no + 1 and not paren_numbering:
            last_para_no = int(m_para.group(1))
            para, point, sub = f"{prefix}{last_para_no}", None, None
            _open([para])
            _add(line.strip())
            continue
        m_pt = _POINT.match(line)
        if m_pt:
            indent, tok = len(m_pt.group(1)), m_pt.group(2)
            if tok.isdigit():
                if int(tok) == last_para_no + 1 and (paren_numbering or (para is None and point is None)):
                    # "(1) 'AI system' means ..." — numbered items instead of "1." paragraphs
                    paren_numbering = True
                    last_para_no = int(tok)
                    para, point, sub = f"{prefix}{tok}", None, None
                    _open([para])
                    _add(line.strip())
                    continue
            else:
                exp_letter = _next_letter(point)
                exp_roman = _next_roman(sub) if point is not None else None
                is_sub = is_point = False
                if tok == exp_roman and tok == exp_letter:  # "(i)" after "(h)": decide by indentation
                    is_sub = indent > point_indent
                    is_point = not is_sub
                elif tok == exp_roman:
                    is_sub = True
                elif tok == exp_letter or (point is None and tok == "a"):
                    is_point = True
                if is_point:
                    point, sub, point_indent = tok, None, indent
                    key = f"{para}.{tok}" if para else f"{prefix}{tok}"
                    _open(([para] if para else []) + [key])
                    _add(line)
                    continue
                if is_sub:
                    sub = tok
                    pkey = f"{para}.{point}" if para else f"{prefix}{point}"
                    _open(([para] if para else []) + [pkey, f"{pkey}.{tok}"])
                    _add(line)
                    continue
        # a continuation line. Text at column 0 after a list (e.g. "By way of derogation ...", "Exit plans shall
        # ...") closes the open point: it belongs to the paragraph only.
        if line.strip() and point is not None and not line.startswith((" ", "\t")):
            point, sub = None, None
            _open([para] if para else [])
        _add(line)
    return {k: "\n".join(v).strip() for k, v in parts.items() if "".join(v).strip()}


# ------------------------------------------------------------------------------------------------- JSONL reader
def _norm_local(local: str) -> str:
    """``anx_III`` -> ``anx_iii`` (the id scheme writes annex numerals in lower case)."""
    if local.lower().startswith("anx_"):
        return "anx_" + local[4:].lower()
    return local


class JsonlProvisions:
    """Provision texts read straight from a corpus folder (``<dir>/<act>/*.jsonl``), split into paragraphs/points."""

    def __init__(self, corpus_dir: Path):
        self.name = f"units JSONL under {corpus_dir}"
        self.root = Path(corpus_dir)
        self._texts: dict[str, str] = {}
        self._load()

    def docs(self) -> set[str]:
        return {k.split(":", 1)[0] for k in self._texts}

    def ids(self) -> Iterable[str]:
        return self._texts.keys()

    def text(self, unit_id: str) -> str | None:
        try:
            doc, local = split_unit_id(unit_id)
        except ValueError:
            return None
        return self._texts.get(f"{doc}:{_norm_local(local)}")

    # -- loading
    def _add(self, uid: str, text: str) -> None:
        self._texts[uid] = text

    def _load(self) -> None:
        for act_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            doc = act_dir.name
            for f in sorted(act_dir.glob("*.jsonl")):
                rows = read_jsonl(f)
                if f.name.endswith("_units.jsonl"):
                    for r in rows:
                        local = _norm_local(r["unit_id"])
                        self._add(f"{doc}:{local}", r["text"])
                        if r.get("type") in ("article", "annex"):
                            for suffix, t in split_article(r["text"]).items():
                                self._add(f"{doc}:{local}.{suffix}", t)
                elif f.name.endswith("_gai_risks.jsonl"):
                    for r in rows:
                        self._add(f"{doc}:risk_{r['risk_id']}", f"{r['name']}: {r['definition']}")
                elif f.name.endswith("_suggested_actions.jsonl"):
                    for r in rows:
                        self._add(f"{doc}:{r['action_id']}", r["suggested_action"])
                elif f.name.endswith("_core.jsonl"):
                    for r in rows:
                        uid = r["id"].replace(" ", "-")
                        text = r.get("text") or ""
                        if r.get("name"):
                            text = f"{r['name']}: {text}" if text else r["name"]
                        self._add(f"{doc}:{uid}", text or uid)
            for md in sorted(act_dir.glob("*.md")):
                if doc.startswith("nist-"):
                    for sec, t in _md_sections(md.read_text(encoding="utf-8")).items():
                        self._texts.setdefault(f"{doc}:{sec}", t)


_SEC_HEAD = re.compile(r"^(#{1,4})\s+(\d+(?:\.\d+)*)\.?\s+(.*)$")
_APP_HEAD = re.compile(r"^#{1,4}\s+Appendix\s+([A-Z])\b")


def _md_sections(md: str) -> dict[str, str]:
    """``## 2.1. Title`` -> ``sec_2.1``; ``# Appendix A: ...`` -> ``app_a``; a section's text includes subsections."""
    out: dict[str, list[str]] = {}
    stack: list[tuple[int, str]] = []
    for line in md.splitlines():
        m = _SEC_HEAD.match(line)
        a = _APP_HEAD.match(line)
        if m or a:
            level = len(line) - len(line.lstrip("#"))
            key = f"sec_{m.group(2)}" if m else f"app_{a.group(1).lower()}"
            stack = [(lv, k) for lv, k in stack if lv < level] + [(level, key)]
            out.setdefault(key, []).append(line)
            for _lv, k in stack[:-1]:
                out[k].append(line)
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            stack = [(lv, k) for lv, k in stack if lv < level]
        for _lv, k in stack:
            out[k].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


# -------------------------------------------------------------------------------------- project corpus adapter
class _CorpusProvisions:
    """Adapter over ``mad_guardrails.retrieval.corpus.Corpus`` (``get(id)`` -> Unit | None)."""

    def __init__(self, corpus, path: Path):
        self.name = f"corpus loaded by mad_guardrails.retrieval.corpus from {path}"
        self._c = corpus
        self._docs: set[str] | None = None

    def docs(self) -> set[str]:
        if self._docs is None:
            units = getattr(self._c, "units", None)
            if callable(units):
                units = units()
            if isinstance(units, dict):
                units = units.values()
            self._docs = {u.doc for u in units} if units is not None else set()
        return self._docs

    def text(self, unit_id: str) -> str | None:
        try:
            u = self._c.get(unit_id)
        except (KeyError, ValueError):
            u = None
        if u is None:
            try:
                doc, local = split_unit_id(unit_id)
                alt = f"{doc}:{_norm_local(local)}"
                u = self._c.get(alt) if alt != unit_id else None
            except (KeyError, ValueError):
                u = None
        return None if u is None else u.text


def open_provisions(corpus_dir: Path, *, prefer_project_loader: bool = True) -> ProvisionSource:
    """A provision source over ``corpus_dir``: the project's ``mad_guardrails.retrieval.corpus.load_corpus`` when it is importable
    and loads, else :class:`JsonlProvisions`."""
    corpus_dir = Path(corpus_dir)
    if prefer_project_loader:
        try:
            from mad_guardrails.retrieval.corpus import load_corpus  # written by the retrieval owner
        except ImportError:
            load_corpus = None
        if load_corpus is not None:
            try:
                return _CorpusProvisions(load_corpus(corpus_dir), corpus_dir)
            except Exception:  # noqa: BLE001 — fall back to the plain reader; validate reports which source it used
                pass
    return JsonlProvisions(corpus_dir)


def has_units(corpus_dir: Path | None) -> bool:
    """True when ``corpus_dir`` holds at least one ``<act>/*.jsonl`` file."""
    return bool(corpus_dir) and Path(corpus_dir).is_dir() and any(Path(corpus_dir).glob("*/*.jsonl"))
