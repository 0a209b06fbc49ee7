"""ROUGE-L: the longest common subsequence of words between a candidate and a reference (no new dependency).

Tokens are lower-cased runs of letters and digits (``\\w+``). With LCS length ``l``, candidate length ``m`` and
reference length ``n``: precision ``l/m``, recall ``l/n``, F = ``(1+β²)PR / (R + β²P)`` (β = 1 by default: the
harmonic mean).

    >>> round(rouge_l("the cat sat on the mat", "the cat lay on the mat").f, 4)
    0.8333
    >>> rouge_l("", "anything").f
    0.0
    >>> best_rouge_l("within 24 hours", ["nothing alike", "an early warning within 24 hours"]).recall
    0.5
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel

_TOKEN_RE = re.compile(r"\w+", re.UNICODE)


class RougeL(BaseModel):
    precision: float
    recall: float
    f: float


def tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall((text or "").lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (O(len(a)·len(b)) time, O(min) memory).

    >>> lcs_length("a b c d".split(), "a c d b".split())
    3
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l(candidate: str, reference: str, *, beta: float = 1.0) -> RougeL:
    c, r = tokens(candidate), tokens(reference)
    if not c or not r:
        return RougeL(precision=0.0, recall=0.0, f=0.0)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return RougeL(precision=0.0, recall=0.0, f=0.0)
    p, rec = lcs / len(c), lcs / len(r)
    f = (1 + beta**2) * p * rec / (rec + beta**2 * p)
    return RougeL(precision=p, recall=rec, f=f)


def best_rouge_l(candidate: str, references: Iterable[str], *, beta: float = 1.0) -> RougeL:
    """The reference with the highest F (several gold passages: the answer need match only one)."""
    best = RougeL(precision=0.0, recall=0.0, f=0.0)
    for ref in references:
        s = rouge_l(candidate, ref, beta=beta)
        if s.f > best.f:
            best = s
    return best
