"""Pairing the terms of key facts with the quantities of a text: sentences, clauses, and which quantity a term
occurrence states (:func:`pair_terms`).

A term (case-insensitive, simple plural / inflection: ``warning`` ~ ``warnings``, ``notify`` ~ ``notified``; see
:func:`term_pattern`) is paired with a quantity of its fact's dimension in the same sentence:

* **clauses** — a sentence is split at ``,`` ``;`` and the words *and*, *while*, *whereas*, *but*, *although*, at
  dashes and parentheses (a parenthesis is a clause of its own; the words after it continue the clause before it).
  A term is paired with a quantity of *its own* clause, so "an incident notification within 72 hours, and a final
  report no later than one month after it" gives the final report one month, never 72 hours. A clause that is only
  a noun phrase naming a fact ("*The early warning* and the incident notification are both due within 24 hours")
  shares the next clause's predicate; a clause that only continues a deadline ("goes out without undue delay *and in
  any event within 48 hours*") lends its figure to the term of the clause before;
* **order** — a quantity right next to the term ("24-hour early warning", "five functions") comes first, then one that
  *follows* the term in its clause ("final report within one month"), then one that precedes it ("within 72 hours an
  incident notification", "72 hours to send the early warning"); each quantity goes to one term occurrence first,
  occurrences left over share the nearest one of their clause;
* **construction** — a duration counts only in a deadline-like construction (*within*, *no later than*, *at the
  latest*, *of*, *after*, *in*, *is*, *gives you* ...) or right next to the term ("the early warning took 72 hours"
  is a narrative, not the rule);
* **anchors** — a term that only anchors a later period ("one month *after* the incident notification", "within one
  year *of the* incident notification") is not its subject;
* **other clauses** — a term with no quantity in its clause is paired, *weakly*, with a quantity of another clause of
  its sentence: such a pairing may confirm a fact but never contradict it (see :mod:`mad_guardrails.verifier.numbers`).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

from pydantic import BaseModel, Field

from mad_guardrails.verifier.quantities import Quantity

_SENT_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z\"'(\[])|\n\s*\n|\n\s*(?:[-*•]|\d+[.)])\s+")


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence (also split at blank lines and list items)."""
    out, pos = [], 0
    for m in _SENT_BOUNDARY.finditer(text):
        if m.start() > pos:
            out.append((pos, m.start()))
        pos = m.end()
    if pos < len(text):
        out.append((pos, len(text)))
    return out


def term_pattern(term: str) -> re.Pattern:
    """Case-insensitive pattern for a term with simple inflection of each word (plural, -ed, -ing)."""
    parts = []
    for w in re.split(r"[\s\-]+", term.strip()):
        if not w:
            continue
        lw = re.escape(w.lower())
        if len(w) <= 2 or not w.isalpha():
            parts.append(lw)
        elif w.lower().endswith("y"):
            parts.append(lw[:-1] + r"(?:y|ies|ied|ying)")
        elif w.lower().endswith("e"):
            parts.append(lw[:-1] + r"(?:e|es|ed|ing)")
        elif w.lower().endswith("s"):
            parts.append(lw + r"(?:es)?")
        else:
            parts.append(lw + r"(?:s|es|ed|ing)?")
    return re.compile(r"\b" + r"[\s\-]+".join(parts) + r"\b", re.I)



class Mention(BaseModel):
    """One occurrence of a term in the text, with the facts whose terms match it."""

    facts: list[int] = Field(description="indices of the facts one of whose terms matches this span")
    start: int
    end: int
    text: str


_ANCHOR = re.compile(r"\b(?:after|before|following|upon|prior\s+to|subsequent\s+to)\b", re.I)
_ANCHOR_OF = re.compile(r"\s+(?:of|from)\s+(?:(?:the|an?|that|this|its|their|your)\s+)?$", re.I)


def _anchors(text: str, a: int, b: int, kind: str = "duration") -> bool:
    """True when text[a:b] (between a quantity and a later term) makes the term the period's reference point:
    "one month *after* the incident notification", "within one year *of the* incident notification"."""
    last = None
    for last in _ANCHOR.finditer(text, a, b):
        pass
    if last is not None and not re.search(r"[,;:()]", text[last.end():b]):
        return True
    return kind == "duration" and _ANCHOR_OF.fullmatch(text, a, b) is not None


def _gap(text: str, words: list[int], a: tuple[int, int], b: tuple[int, int]) -> int:
    lo, hi = (a[1], b[0]) if a[1] <= b[0] else (b[1], a[0])
    if lo >= hi:
        return 0
    n = bisect_left(words, hi) - bisect_right(words, lo - 1)
    return n + 3 * text.count(";", lo, hi)


# clause boundaries inside a sentence; a "(" opens a parenthetical clause and the words after its ")" continue the
# clause before it
_CLAUSE_BREAK = re.compile(r";|,(?!\d)|\s+[–—]\s+|\s\(|\)|\s+(?:and|while|whilst|whereas|but|although|though)\s+",
                           re.I)
_DETERMINERS = re.compile(r"(?:\b(?:the|an?|both|either|its|their|this|that|these|those|each|any|every|your|our)\b|"
                          r"[\s\"'])*", re.I)
# a deadline-like construction right before a duration: "within 72 hours", "no later than one month", "is 10 days",
# "of at least six months", "gives you 72 hours"
_DEADLINE_CUE = re.compile(
    r"(?:\b(?:within|than|latest|of|after|in|by|to|for|is|are|be|was|were|been|being|due|until|till|before|from|"
    r"since|on|at|every|each|over|under|only|just|least|most|maximum|minimum|max|min|about|around|approximately|"
    r"roughly|some|another|further|extra|additional|up|deadline|limit|period|window|clock|timeline|timeframe|"
    r"term|requires?|required|sets?)|[:=\-–—])\s*$"
    r"|\b(?:gives?|given|giving|has|have|had|having|gets?|got|allows?|allowed|allowing|grants?|granted|leaves?)"
    r"\s+(?:\w+\s+){0,2}$", re.I)
# what may open a clause that only continues the previous one's deadline: "..., and in any event within 48 hours"
_CONTINUATION = re.compile(
    r"\s*(?:(?:in\s+any\s+(?:event|case)|in\s+all\s+cases|at\s+the\s+(?:very\s+)?latest|at\s+most)\s*,?\s*)?"
    r"(?:within|(?:no|not)\s+later\s+than|by|in|at\s+the\s+(?:very\s+)?latest)\s+$", re.I)


class _Clause(BaseModel):
    start: int
    end: int
    cid: int
    opener: str = ""


def _clauses(text: str, s0: int, s1: int, protected: list[tuple[int, int]]) -> list[_Clause]:
    """The clauses of ``text[s0:s1]`` in reading order; a boundary inside a protected span (a quantity such as
    "one hundred and twenty days", a term such as "article 6(1)") is ignored."""
    out: list[_Clause] = []
    cid, next_id, opener, pos = 0, 1, "", s0
    stack: list[tuple[int, str]] = []
    for m in _CLAUSE_BREAK.finditer(text, s0, s1):
        if any(a < m.end() and m.start() < b for a, b in protected):
            continue
        tok = m.group(0).strip().lower()
        if tok == ")" and not stack:
            continue
        if text[pos:m.start()].strip():
            out.append(_Clause(start=pos, end=m.start(), cid=cid, opener=opener))
            opener = ""
        pos = m.end()
        if tok == ")":
            cid, opener = stack.pop()
            continue
        if tok == "(":
            stack.append((cid, opener))
        cid, next_id = next_id, next_id + 1
        opener = f"{opener} {tok}".strip()
    if text[pos:s1].strip():
        out.append(_Clause(start=pos, end=s1, cid=cid, opener=opener))
    return out


def _clause_at(clauses: list[_Clause], pos: int) -> int:
    """Index (in ``clauses``) of the clause holding ``pos`` (the last one starting at or before it)."""
    i = bisect_right([c.start for c in clauses], pos) - 1
    return max(i, 0)


def _deadline_like(text: str, clause_start: int, m: Mention, q: Quantity, gap: int) -> bool:
    """A duration is paired with a term only when it stands in a deadline-like construction or right next to it."""
    if gap == 0:
        return True
    lo = max(clause_start, q.start - 60)
    if m.end <= q.start:
        lo = max(lo, m.end)
    return _DEADLINE_CUE.search(text, lo, q.start) is not None or lo == q.start == m.end


def pair_terms(text: str, patterns: dict[int, list[re.Pattern]], kinds: dict[int, str], quantities: list[Quantity]
               ) -> tuple[list[tuple[Mention, Quantity, bool]], dict[int, tuple[Quantity, str]]]:
    """The term occurrences of ``text`` paired with the quantity each states, sentence by sentence.

    ``patterns``: fact index → its term patterns (:func:`term_pattern`); ``kinds``: fact index → the kind of its
    value; ``quantities``: :func:`mad_guardrails.verifier.quantities.extract_quantities` of ``text``. Returns
    ``(pairs, qualitative)``: ``pairs`` are ``(mention, quantity, strong)`` — ``strong`` when the quantity stands in
    the mention's own clause (or a clause that continues its deadline), weak when only in another clause of the
    sentence; ``qualitative``: fact index → (the first qualitative duration such as "without undue delay", the term's
    words) for a duration fact whose term has no figure of its kind in the sentence.
    """
    words = [m.start() for m in re.finditer(r"\w+", text)]
    pairs: list[tuple[Mention, Quantity, bool]] = []
    qualitative_seen: dict[int, tuple[Quantity, str]] = {}

    for s0, s1 in sentences(text):
        by_span: dict[tuple[int, int], Mention] = {}
        for i, pats in patterns.items():
            for pat in pats:
                for x in pat.finditer(text, s0, s1):
                    mm = by_span.setdefault((x.start(), x.end()),
                                            Mention(facts=[], start=x.start(), end=x.end(), text=x.group(0)))
                    if i not in mm.facts:
                        mm.facts.append(i)
        # the most specific term wins: "notification" inside "incident notification" is not a mention of its own,
        # whether the longer term belongs to the same fact or to another one
        mentions = [m for m in by_span.values() if not any(
            o.start <= m.start and m.end <= o.end and (o.end - o.start) > (m.end - m.start) for o in by_span.values())]
        if not mentions:
            continue
        mentions.sort(key=lambda m: m.start)
        sent_q = [q for q in quantities if s0 <= q.start < s1]
        clauses = _clauses(text, s0, s1, [(q.start, q.end) for q in sent_q] +
                           [(m.start, m.end) for m in mentions])
        # "The early warning and the incident notification are both due within 24 hours": a clause that is only a
        # noun phrase naming a fact, followed by "and", shares the next clause's predicate
        for k in range(len(clauses) - 1):
            c, nxt = clauses[k], clauses[k + 1]
            if nxt.opener.split()[-1:] != ["and"] or c.cid == nxt.cid:
                continue
            inner = [m for m in mentions if c.start <= m.start and m.end <= c.end]
            rest, p = [], c.start
            for m in inner:
                rest.append(text[p:m.start])
                p = m.end
            rest.append(text[p:c.end])
            if inner and all(_DETERMINERS.fullmatch(r) for r in rest):
                old = nxt.cid
                for c2 in clauses:
                    if c2.cid == old:
                        c2.cid = c.cid
        m_clause = [_clause_at(clauses, m.start) for m in mentions]
        q_clause = {q.start: _clause_at(clauses, q.start) for q in sent_q}

        def compatible(m: Mention) -> list[Quantity]:
            kinds_ = {kinds[i] for i in m.facts}
            return [q for q in sent_q if q.kind in kinds_ and not q.qualitative]

        strong, weak = [], []
        for mi, m in enumerate(mentions):
            ci = m_clause[mi]
            cands = compatible(m)
            for q in cands:
                qi = q_clause[q.start]
                gap = _gap(text, words, (m.start, m.end), (q.start, q.end))
                before = q.end <= m.start
                if before and _anchors(text, q.end, m.start, q.kind):
                    continue  # "one month after the incident notification": the term is the reference point
                if clauses[qi].cid == clauses[ci].cid:
                    if q.kind == "duration" and not _deadline_like(text, clauses[ci].start, m, q, gap):
                        continue
                    strong.append((0, 0 if gap == 0 else 1, int(before), gap, mi, q.start, q))
                else:
                    weak.append((2, 0, int(before), gap, mi, q.start, q))
            if not any(s[4] == mi for s in strong):
                # "... without undue delay and in any event within 48 hours": the next clause continues the deadline
                nxt = ci + 1
                if nxt < len(clauses) and clauses[nxt].cid != clauses[ci].cid and not any(
                        clauses[nxt].start <= o.start < clauses[nxt].end for o in mentions):
                    first = next((q for q in sent_q if clauses[nxt].start <= q.start < clauses[nxt].end), None)
                    if first is not None and first in cands and _CONTINUATION.fullmatch(
                            text, clauses[nxt].start, first.start):
                        strong.append((1, 1, 0, _gap(text, words, (m.start, m.end), (first.start, first.end)),
                                       mi, first.start, first))
            if not cands and any(kinds[i] == "duration" for i in m.facts):
                qual = [q for q in sent_q if q.qualitative]
                if qual:
                    for i in m.facts:
                        qualitative_seen.setdefault(i, (qual[0], m.text))
        strong.sort(key=lambda p: p[:6])
        weak.sort(key=lambda p: p[:6])
        assigned: dict[int, tuple[Quantity, bool]] = {}
        used: set[int] = set()
        for p in strong:  # one quantity per term occurrence first ...
            mi, qs, q = p[4], p[5], p[6]
            if mi not in assigned and qs not in used:
                assigned[mi] = (q, True)
                used.add(qs)
        for p in strong:  # ... then occurrences left over share their nearest quantity in the same clause
            if p[4] not in assigned:
                assigned[p[4]] = (p[6], True)
        for p in sorted(weak, key=lambda p: (p[5] in used, *p[:6])):  # other clauses: may confirm, never contradict
            if p[4] not in assigned:
                assigned[p[4]] = (p[6], False)
        pairs.extend((mentions[mi], q, is_strong) for mi, (q, is_strong) in assigned.items())
    return pairs, qualitative_seen
