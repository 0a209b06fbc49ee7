"""Text normalisation for quote checking: the "content verbatim" comparison key and readable folding.

Two quotes are *content-equal* when their comparison keys are equal. The key of a text is built character by
character (and remembers where each key character came from, so a match can be mapped back to the exact source span):

* Unicode NFKC (ligatures ``ﬁ`` → ``fi``, ``…`` → ``...``, non-breaking spaces → spaces) and lower case;
* typographic quotes and apostrophes (‘ ’ ‚ “ ” „ « » ` ´) all become ``'``;
* every dash or hyphen (- ‐ ‑ ‒ – — ―, soft hyphen, minus sign) and bullet is dropped, and so is all whitespace and
  every control / zero-width character: so ``inte grating``, ``inte-\\ngrating``, ``inte\\u00adgrating`` and
  ``integrating`` share a key, as do ``cross-border`` and ``cross- border``, and a list marker ``\\n   - (b)`` reads
  as ``(b)``;
* footnote markers of the corpus (``[^12]``) are dropped.

Letters, digits and the remaining punctuation must agree. An elided quote (``A ... B``, ``A […] B``) is content-equal
when its fragments occur in order.

    >>> content_key("The ‘Charter’ — inte-\\ngrating")[0]
    "the'charter'integrating"
    >>> find_content_span("within 24 hours", "in any event within\\n24 hours of becoming aware")
    (13, 28)
    >>> fold("Without  undue\\u00a0delay – “72 hours”")
    'without undue delay - "72 hours"'
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from mad_guardrails.core.text import collapse_ws

_QUOTES = "'\"‘’‚‛“”„‟«»‹›`´ʹʻʼ′″"
_DASHES = "-‐‑‒–—―−﹘﹣－\u00ad"
_BULLETS = "•·▪●◦*"
_FOOTNOTE = re.compile(r"\[\^\d+\]")
_ELISION = re.compile(r"\s*(?:\[\s*(?:\.\.\.|…)\s*\]|\(\s*(?:\.\.\.|…)\s*\)|\.\.\.|…)\s*")
_EDGE_PUNCT = "'.,;:"

_FOLD_TABLE = str.maketrans({**{c: "'" for c in "‘’‚‛`´ʹʻʼ′"}, **{c: '"' for c in "“”„‟«»″"},
                             **{c: "-" for c in "‐‑‒–—―−﹘﹣－"}, "\u00ad": None, "\u200b": None, "\ufeff": None})


def fold(text: str) -> str:
    """Readable folding for similarity scores and messages: NFKC, straight quotes, ``-`` for dashes, hyphenation at a
    line end joined, whitespace collapsed, lower case. (The strict key for equality is :func:`content_key`.)

    Not :func:`mad_guardrails.core.text.collapse_ws` alone: a quote copied from a PDF or a model's answer differs from
    the corpus in ligatures, typographic quotes, dashes and line-end hyphenation, which must not lower its similarity;
    nor :func:`mad_guardrails.policies.screen.normalise_text`, which splits words at hyphens (a quote keeps them)."""
    t = unicodedata.normalize("NFKC", text).translate(_FOLD_TABLE)
    t = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", t)
    t = "".join(ch if unicodedata.category(ch)[0] != "C" or ch in "\n\t" else " " for ch in t)
    return collapse_ws(t).lower()


def _dropped(ch: str) -> bool:
    if ch.isspace() or ch in _DASHES or ch in _BULLETS:
        return True
    cat = unicodedata.category(ch)
    return cat[0] == "C" or cat in ("Pd", "Zs", "Zl", "Zp")


def content_key(text: str) -> tuple[str, tuple[int, ...]]:
    """The content-verbatim comparison key of ``text`` and, per key character, its index in ``text`` (cached: unit
    texts are keyed once however many quotes cite them)."""
    return _content_key(text)


@lru_cache(maxsize=1024)
def _content_key(text: str) -> tuple[str, tuple[int, ...]]:
    skip = set()
    for m in _FOOTNOTE.finditer(text):
        skip.update(range(m.start(), m.end()))
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if i in skip:
            continue
        if ch in _QUOTES:  # before NFKC, which turns some of them into a space + combining mark
            out.append("'")
            where.append(i)
            continue
        for c in unicodedata.normalize("NFKC", ch).lower():
            if _dropped(c):
                continue
            out.append("'" if c in _QUOTES else c)
            where.append(i)
    return "".join(out), tuple(where)


def quote_key(quote: str) -> str:
    """Key of a quote: as :func:`content_key`, with enclosing quotation marks and edge punctuation trimmed."""
    return content_key(quote)[0].strip(_EDGE_PUNCT)


def elision_fragments(quote: str) -> list[str]:
    """The fragments of an elided quote (``"A ... B"`` → ``["A", "B"]``); a quote without elision gives ``[quote]``."""
    parts = [p for p in _ELISION.split(quote) if quote_key(p)]
    return parts or [quote]


def find_content_span(quote: str, source: str) -> tuple[int, int] | None:
    """Where ``quote`` occurs in ``source`` up to content normalisation: the (start, end) span of the exact source
    text, or None. Elided quotes (``A ... B``) match when their fragments occur in order; the span then runs from the
    first fragment's start to the last fragment's end."""
    skey, where = content_key(source)
    frags = elision_fragments(quote)
    pos, first, last = 0, None, None
    for frag in frags:
        k = quote_key(frag)
        if not k:
            continue
        at = skey.find(k, pos)
        if at < 0:
            return None
        first = at if first is None else first
        last = at + len(k)
        pos = last
    if first is None:
        return None
    return where[first], where[last - 1] + 1


def content_equal_in(quote: str, source: str) -> bool:
    """True when ``quote`` occurs in ``source`` up to content normalisation (see module docstring)."""
    return find_content_span(quote, source) is not None


def word_count(text: str) -> int:
    return len(re.findall(r"\w+", text))
