"""Verbatim checks: is each quote really in the unit it cites?

* **strict verbatim** — the quote is an exact substring of the cited unit's text;
* **content verbatim** — equal after normalising whitespace, quotes, dashes, hyphenation, ellipses and case
  (see :mod:`mad_guardrails.verifier.normalize`).

Both are reported, as the seed coordinator's evaluation does: content minus strict measures *near-miss* quotes
(cosmetically altered text). A quote that is neither gets the most similar span of the unit in its failure message.

The cited unit's text comes from ``lookup(unit_id) -> str | None``. A quote citing an article (``nis2:art_23``) is
checked against the whole article, so it may quote any of its points. When the lookup does not know a point id
(``nis2:art_23.4.a``) the nearest enclosing id it knows (``nis2:art_23.4``, ``nis2:art_23``) is used instead;
whether the cited id itself exists is the citation check's business.

    >>> units = {"gdpr:art_33.1": "the controller shall without undue delay and, where feasible, not later than "
    ...                            "72 hours after having become aware of it, notify"}
    >>> qs = [Quote(doc_id="gdpr:art_33.1", text="not later than 72 hours"),
    ...       Quote(doc_id="gdpr:art_33.1", text="Without undue delay and, where feasible")]
    >>> strict_verbatim(qs, units.get).score, content_verbatim(qs, units.get).score
    (0.5, 1.0)
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable
from difflib import SequenceMatcher
from typing import Literal

from pydantic import BaseModel

from mad_guardrails.core.debate import Quote, clean_id, dedupe_quotes  # noqa: F401 -- re-exported
from mad_guardrails.core.verdict import CheckResult
from mad_guardrails.verifier.normalize import elision_fragments, find_content_span, fold, word_count

Lookup = Callable[[str], "str | None"]

#: quotes shorter than this many words are not accepted as quotes ("72 hours" proves nothing about its context)
MIN_QUOTE_WORDS = 3
#: similarity (difflib ratio over folded text) from which a failed quote is called a near-miss
NEAR_MISS = 0.8

QuoteStatus = Literal["strict", "content", "near_miss", "not_found", "not_a_quote", "unknown_unit"]


def ancestor_ids(unit_id: str) -> list[str]:
    """Enclosing ids derived from the id itself, nearest first: ``eu-ai-act:art_5.1.c`` → ``[…art_5.1, …art_5]``.

    Only a fallback for a lookup that does not know the point: the hierarchy proper is ``Unit.parent``."""
    doc, sep, local = unit_id.partition(":")
    out = []
    while sep and "." in local:
        local = local.rsplit(".", 1)[0]
        out.append(f"{doc}:{local}")
    return out


def resolve_text(unit_id: str, lookup: Lookup) -> tuple[str, str] | None:
    """``(id, text)`` of the cited unit, or of its nearest enclosing unit that the lookup knows; None if neither."""
    for uid in (unit_id, *ancestor_ids(unit_id)):
        text = lookup(uid)
        if text:
            return uid, text
    return None


def _short(text: str, n: int = 160) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class QuoteCheck(BaseModel):
    """The outcome of checking one quote against the unit it cites."""

    doc_id: str
    text: str
    status: QuoteStatus
    checked_against: str | None = None
    similarity: float | None = None
    closest: str | None = None
    exact: str | None = None

    @property
    def strict_ok(self) -> bool:
        return self.status == "strict"

    @property
    def content_ok(self) -> bool:
        return self.status in ("strict", "content")

    def message(self) -> str:
        q = f'"{_short(self.text)}"'
        where = f"[{self.doc_id}]"
        if self.checked_against and self.checked_against != self.doc_id:
            where += f" (checked against [{self.checked_against}])"
        if self.status == "strict":
            return f"{where} exact: {q}"
        if self.status == "content":
            return f'{where} not exact, equal only after normalising: {q} vs source "{_short(self.exact or "")}"'
        if self.status == "near_miss":
            return f'{where} near-miss ({self.similarity:.2f}): {q} vs "{_short(self.closest or "")}"'
        if self.status == "not_found":
            return (f'{where} not in the cited unit (closest {self.similarity or 0:.2f}): {q} vs '
                    f'"{_short(self.closest or "")}"')
        if self.status == "not_a_quote":
            return f"{where} not a quote ({word_count(self.text)} words; at least {MIN_QUOTE_WORDS} needed): {q}"
        return f"{where} unknown unit, no text to check against: {q}"


def closest_span(quote: str, source: str, *, candidates: int = 8) -> tuple[float, str]:
    """The span of ``source`` most similar to ``quote``: (difflib ratio over folded text, the span as in source).

    Windows of about the quote's length in words; only the windows sharing the most words with the quote are scored
    with difflib, so a long article costs milliseconds.

    >>> closest_span("within 48 hours", "without undue delay and in any event within 24 hours of becoming aware")
    (0.93, 'within 24 hours')
    """
    words = list(re.finditer(r"\S+", source))
    if not words or not quote.strip():
        return 0.0, ""
    fq = fold(quote)
    n = max(1, len(fq.split()))
    folded = [fold(w.group()) for w in words]
    qwords = set(fq.split())
    W = max(1, len(words) - n + 1)
    hits = [1 if w in qwords else 0 for w in folded]
    overlap = [0] * W
    cur = sum(hits[:n])
    for s in range(W):
        overlap[s] = cur
        if s + n < len(hits):
            cur += hits[s + n] - hits[s]
    starts = heapq.nlargest(candidates, range(W), key=lambda s: (overlap[s], -s))
    best = (0.0, "")
    seen = set()
    for s0 in starts:
        for s in (s0 - 1, s0, s0 + 1):
            for size in (n - 1, n, n + 1, n + 2):
                if s < 0 or size < 1 or s + size > len(words) or (s, size) in seen:
                    continue
                seen.add((s, size))
                span = source[words[s].start(): words[s + size - 1].end()]
                r = SequenceMatcher(None, fq, fold(span), autojunk=False).ratio()
                if r > best[0]:
                    best = (r, span)
    return round(best[0], 2), best[1]


def check_quote(quote: Quote, lookup: Lookup, *, min_words: int = MIN_QUOTE_WORDS,
                near_miss: float = NEAR_MISS) -> QuoteCheck:
    """Check one quote: strict, content, near-miss, not found, not a quote, or unknown unit."""
    uid = clean_id(quote.doc_id)
    text = quote.text.strip()
    base = dict(doc_id=uid, text=quote.text)
    if word_count(" ".join(elision_fragments(text))) < min_words:
        return QuoteCheck(status="not_a_quote", **base)
    resolved = resolve_text(uid, lookup)
    if resolved is None:
        return QuoteCheck(status="unknown_unit", **base)
    at, source = resolved
    if text in source:
        return QuoteCheck(status="strict", checked_against=at, exact=text, similarity=1.0, **base)
    span = find_content_span(text, source)
    if span is not None:
        return QuoteCheck(status="content", checked_against=at, exact=source[span[0]:span[1]], **base)
    ratio, closest = closest_span(text, source)
    return QuoteCheck(status="near_miss" if ratio >= near_miss else "not_found", checked_against=at,
                      similarity=ratio, closest=closest, **base)


def check_quotes(quotes: Iterable[Quote], lookup: Lookup, *, min_words: int = MIN_QUOTE_WORDS) -> list[QuoteCheck]:
    return [check_quote(q, lookup, min_words=min_words) for q in dedupe_quotes(quotes)]


def strict_verbatim(quotes: list[Quote], lookup: Lookup, *, min_words: int = MIN_QUOTE_WORDS,
                    results: list[QuoteCheck] | None = None) -> CheckResult:
    """Each quote is an exact substring of the cited unit's text (``results``: reuse :func:`check_quotes` output)."""
    res = results if results is not None else check_quotes(quotes, lookup, min_words=min_words)
    if not res:
        return CheckResult(name="strict_verbatim", status="skipped", detail="no quotes to check")
    ok = sum(r.strict_ok for r in res)
    return CheckResult(name="strict_verbatim", status="pass" if ok == len(res) else "fail", score=ok / len(res),
                       failures=[r.message() for r in res if not r.strict_ok],
                       detail=f"{ok}/{len(res)} quotes are exact substrings of the cited unit")


def content_verbatim(quotes: list[Quote], lookup: Lookup, *, min_words: int = MIN_QUOTE_WORDS,
                     results: list[QuoteCheck] | None = None) -> CheckResult:
    """Each quote equals a span of the cited unit after normalisation; the detail gives the strict/content gap."""
    res = results if results is not None else check_quotes(quotes, lookup, min_words=min_words)
    if not res:
        return CheckResult(name="content_verbatim", status="skipped", detail="no quotes to check")
    ok = sum(r.content_ok for r in res)
    strict = sum(r.strict_ok for r in res)
    near = sum(r.status == "near_miss" for r in res)
    return CheckResult(
        name="content_verbatim", status="pass" if ok == len(res) else "fail", score=ok / len(res),
        failures=[r.message() for r in res if not r.content_ok],
        detail=(f"{ok}/{len(res)} quotes match after normalisation; strict {strict / len(res):.3f}, content "
                f"{ok / len(res):.3f}, gap {(ok - strict) / len(res):.3f}; {near} near-miss"))
