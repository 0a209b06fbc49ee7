"""What every loader shares: the act catalog (``retrieval/sources.yaml``), strict text decoding, unit construction.

Decoding fails with a :class:`~mad_guardrails.core.errors.CorpusError` that names the file and the fix (empty, binary,
UTF-16, Latin-1 ...)::

    >>> act_info("eu-ai-act").title
    'Regulation (EU) 2024/1689 (Artificial Intelligence Act)'
    >>> eu_local_id("annex", "III")
    'anx_iii'
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mad_guardrails.core.errors import CorpusError
from mad_guardrails.core.units import Unit

SUPPORTED_FORMATS = ("jsonl", "markdown", "eurlex_html", "pdf", "text")


class SourceInfo(BaseModel):
    """One official download of an act (see the comment block of ``retrieval/sources.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "official"
    url: str
    format: str
    sha256: str | None = None
    mirror: list[str] = Field(default_factory=list)

    @field_validator("mirror", mode="before")
    @classmethod
    def _listify(cls, v):
        if v is None:
            return []
        return [v] if isinstance(v, str) else list(v)

    @field_validator("format")
    @classmethod
    def _check_format(cls, v: str) -> str:
        if v not in SUPPORTED_FORMATS:
            raise ValueError(f"unknown format {v!r}; expected one of {', '.join(SUPPORTED_FORMATS)}")
        return v

    @field_validator("sha256")
    @classmethod
    def _check_sha(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("sha256 must be 64 lowercase hex digits or null")
        return v


class ActInfo(BaseModel):
    """Catalog entry of one act."""

    model_config = ConfigDict(extra="forbid")

    doc: str
    title: str
    short: str = ""
    published: date | None = None
    celex: str | None = None
    doi: str | None = None
    shared: list[str] = Field(default_factory=list)
    sources: list[SourceInfo] = Field(default_factory=list)


def _load_catalog_text(text: str, where: str) -> dict[str, ActInfo]:
    try:
        raw = yaml.safe_load(text) or {}
        acts = raw.get("acts") or {}
        return {doc: ActInfo(doc=doc, **(entry or {})) for doc, entry in acts.items()}
    except Exception as e:  # yaml or pydantic
        raise CorpusError(f"the act catalog is invalid: {e}", where=where,
                          fix="repair the YAML (see the comment block at the top of retrieval/sources.yaml)") from e


@lru_cache(maxsize=1)
def catalog() -> dict[str, ActInfo]:
    """All acts of ``retrieval/sources.yaml`` by doc id (cached)."""
    text = resources.files("mad_guardrails.retrieval").joinpath("sources.yaml").read_text(encoding="utf-8")
    return _load_catalog_text(text, "retrieval/sources.yaml")


def load_catalog(path: str | Path | None = None) -> dict[str, ActInfo]:
    """The packaged catalog, or the one in ``path`` (same schema)."""
    if path is None:
        return catalog()
    p = Path(path)
    return _load_catalog_text(read_text(p), str(p))


def act_info(doc: str) -> ActInfo:
    """Catalog entry of ``doc``; an unknown doc gets a minimal entry titled with its id."""
    info = catalog().get(doc)
    return info if info is not None else ActInfo(doc=doc, title=doc, short=doc)


_DOC_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


def check_doc_id(doc: str | None, where: str) -> str:
    if not doc:
        raise CorpusError("no act id given and none can be inferred from the file or folder name", where=where,
                          fix=f"pass --doc ID (known ids: {', '.join(catalog())})")
    if not _DOC_RE.match(doc):
        raise CorpusError(f"act id {doc!r} is not valid", where=where,
                          fix="use lowercase letters, digits, '.', '-' or '_' (e.g. 'eu-ai-act', 'my-policy-2025')")
    return doc


# ---------------------------------------------------------------------------------------------------- decoding

def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError("file not found", where=str(path), fix="check the path") from None
    except IsADirectoryError:
        raise CorpusError("is a folder, a file was expected", where=str(path),
                          fix="pass a file, or use `mad-guardrails corpus add DIR` for a folder of acts") from None
    except OSError as e:
        raise CorpusError(f"cannot read the file ({e.strerror})", where=str(path), fix="check its permissions") from e
    if not data.strip():
        raise CorpusError("the file is empty", where=str(path),
                          fix="re-download or re-export it (an interrupted download leaves an empty file)")
    return data


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\x00" in head:
        return True
    ctrl = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return ctrl > max(8, len(head) // 50)


def decode_text(data: bytes, where: str, expected: str = "a UTF-8 text file") -> str:
    """Decode UTF-8 strictly; a clear error for UTF-16, Latin-1/Windows-1252 and binary content."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _utf16_without_bom(data):
        raise CorpusError(
            f"the file is UTF-16 encoded; {expected} (UTF-8) was expected", where=where,
            fix=f"convert it: iconv -f UTF-16 -t UTF-8 '{where}' > converted.txt (or save it as UTF-8)")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if looks_binary(data):
        raise CorpusError(
            f"binary content where {expected} was expected", where=where,
            fix="pass the text/HTML/PDF/JSONL file of the act (not an archive, image or Word file), or the right "
            "--format")
    try:
        return drop_controls(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        bad = data[e.start : e.start + 1].hex()
        guess = "Windows-1252/Latin-1" if _decodes_as_cp1252(data) else "an unknown 8-bit encoding"
        raise CorpusError(
            f"not valid UTF-8 (byte 0x{bad} on line {line}); it looks like {guess}. UTF-8 was expected",
            where=where,
            fix=f"convert it: iconv -f WINDOWS-1252 -t UTF-8 '{where}' > converted.txt (or re-save it as UTF-8)",
        ) from None


def _utf16_without_bom(data: bytes) -> bool:
    head = data[:4096]
    if len(head) < 8:
        return False
    even_nul = head[0::2].count(0) / max(1, len(head[0::2]))
    odd_nul = head[1::2].count(0) / max(1, len(head[1::2]))
    return max(even_nul, odd_nul) > 0.4 and min(even_nul, odd_nul) < 0.05


def _decodes_as_cp1252(data: bytes) -> bool:
    try:
        data.decode("cp1252")
        return True
    except UnicodeDecodeError:
        return False


def read_text(path: Path, expected: str = "a UTF-8 text file") -> str:
    """Read a whole file as UTF-8 with the checks of :func:`decode_text` (empty, binary, wrong encoding)."""
    text = decode_text(read_bytes(path), str(path), expected)
    if not text.strip():
        raise CorpusError("the file holds only whitespace", where=str(path), fix="re-export it with its content")
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ------------------------------------------------------------------------------------------------ unit helpers

_ROMAN = {"i": 1, "v": 5, "x": 10, "l": 50, "c": 100}


def roman_to_int(s: str) -> int | None:
    s = s.lower()
    if not s or any(ch not in _ROMAN for ch in s):
        return None
    total = 0
    for a, b in zip(s, s[1:] + " "):
        v = _ROMAN[a]
        total += -v if b != " " and _ROMAN[b] > v else v
    return total


def eu_local_id(kind: str, number: str) -> str:
    """Local id of an EU unit: ``art_5``, ``rct_12``, ``anx_iii`` (annex numerals lower-cased)."""
    number = number.strip()
    if kind == "article":
        return f"art_{number}"
    if kind == "recital":
        return f"rct_{number}"
    if kind == "annex":
        return f"anx_{number.lower()}" if number else "anx"
    raise ValueError(kind)


def eu_heading(kind: str, number: str, title: str = "") -> str:
    labels = {"article": f"Article {number}", "recital": f"Recital ({number})", "annex": f"Annex {number}".rstrip()}
    label = labels[kind]
    return f"{label} — {title.strip()}" if title and title.strip() else label


def slug(text: str, max_len: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s[:max_len].rstrip("_") or "untitled"


_SPLIT_MARK = re.compile(r"(?<=\w)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+[ \t]*(?=\w)")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def drop_controls(text: str) -> str:
    """The text without control characters (tab and newlines kept). One inside a word is a publisher's break mark
    (the CRA's ``elec<U+0002> trical``): the word is joined again.

    >>> drop_controls("means a system, including elec\\x02 trical equipment\\x07.\\tok")
    'means a system, including electrical equipment.\\tok'
    """
    return _CONTROLS.sub("", _SPLIT_MARK.sub("", text))


def make_unit(doc: str, local_id: str, kind: str, text: str, *, source_file: str | None, parent: str | None = None,
              heading: str = "", chapter: str | None = None, section: str | None = None,
              number: str | None = None) -> Unit:
    """A top-level (loader-made) unit with the act's catalog metadata stamped on it."""
    info = act_info(doc)
    return Unit(
        id=f"{doc}:{local_id}", doc=doc, kind=kind, parent=f"{doc}:{parent}" if parent else None,
        heading=drop_controls(heading), text=drop_controls(text), act_title=info.title, chapter=chapter or None, section=section or None,
        number=number or None, source_file=source_file, published=info.published,
    )


def check_unique(units: list[Unit], where: str) -> list[Unit]:
    seen: set[str] = set()
    for u in units:
        if u.id in seen:
            raise CorpusError(f"unit id {u.id!r} occurs twice", where=where,
                              fix="each article/recital/annex/element must appear once; remove the duplicate")
        seen.add(u.id)
    return units
