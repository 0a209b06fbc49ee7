"""Atomic claims of a checked output, each with its character span, so a verdict can point at the sentence it
objects to and every regulatory claim can be checked against the clauses on its own.

Sentences first; then a sentence is cut at ``;`` and at a coordinating ``and`` / ``but`` / ``or`` / ``while`` when
both sides carry their own obligation, deadline, amount, actor or permission. Claims that state no regulatory
content — greetings, thanks, hedges, advice to consult a lawyer, questions back to the user — are marked
``regulatory=False`` and never drive a decision::

    >>> cs = split_claims("Hi! Under NIS2 the early warning is due within 24 hours; the final report follows "
    ...                   "within one month. Please check with your lawyer.")
    >>> [(c.text, c.regulatory) for c in cs]  # doctest: +NORMALIZE_WHITESPACE
    [('Hi!', False), ('Under NIS2 the early warning is due within 24 hours', True),
     ('the final report follows within one month.', True), ('Please check with your lawyer.', False)]
    >>> text = "Hi! Under NIS2 the early warning is due within 24 hours"
    >>> c = cs[1]; text[c.start:c.end] == c.text
    True
"""

from __future__ import annotations

import re

from mad_guardrails.core.claims import OutputClaim

#: a sentence ends at . ! ? (not inside "Art. 5", "e.g.", "No. 3", decimals) or at a line break between items
_SENT_END = re.compile(r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\bArt\.)(?<!\bArts\.)(?<!\bart\.)(?<!\be\.g\.)(?<!\bi\.e\.)"
                       r"(?<!\bNo\.)(?<!\bcf\.)(?<!\bvs\.)(?<!\bpara\.)[\"')\]]*\s+(?=[A-Z0-9\"'(\[])"
                       r"|\n\s*(?:[-*•]|\d+[.)])?\s*")
_CLAUSE_CUT = re.compile(r";\s+|,?\s+\b(?:and then|and|but|whereas|while|or)\b\s+(?=\S)")

_MODAL = (r"\b(must|shall|should|may|may not|need(s)? to|ha(s|ve) to|required?|obliged|obligat\w*|prohibit\w*|"
          r"ban(ned|s)?|forbid\w*|allow\w*|permit\w*|exempt\w*|entitled|right to|responsib\w*|liable|fine[sd]?|"
          r"penalt\w*|notif\w*|report\w*|inform\w*|register\w*|assess\w*|document\w*|appl(y|ies)|covers?|"
          r"within|deadline|no later than|at least|at most|up to|days?|hours?|months?|years?|weeks?|"
          r"%|percent|eur|€|million)\b")
_ACTOR = (r"\b(controller|processor|provider|deployer|importer|distributor|manufacturer|entit(y|ies)|authorit(y|ies)|"
          r"csirt|regulator|supervisory|data subject|operator|member states?|commission|organi[sz]ation|"
          r"financial entit\w*|ict|high-risk|ai system|gpai|general-purpose|personal data|incident|breach|"
          r"article|art\.|annex|recital|gdpr|ai act|nis ?2|dora|cra|cyber resilience|nist|csf|rmf|600-1)\b")
_NON_REGULATORY = re.compile(
    r"^\s*(hi|hello|hey|dear\b.*|thanks?( you)?|thank you|sure|of course|great question|good question|certainly|"
    r"absolutely|i hope (this|that) helps|hope this helps|let me know\b.*|feel free\b.*|happy to help\b.*|"
    r"glad to help\b.*)\W*$|"
    r"\b(i am|i'm) not a lawyer\b|\b(not|isn't|is not) legal advice\b|\bconsult (a|your|with)\b|"
    r"\bcheck with (a|your)\b|\btalk to (a|your)\b|\bspeak (to|with) (a|your)\b|\bseek (legal|professional)\b|"
    r"\bask (a|your) (lawyer|counsel|dpo|legal)\b",
    re.IGNORECASE)
_MODAL_RE = re.compile(_MODAL, re.IGNORECASE)
_ACTOR_RE = re.compile(_ACTOR, re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d|\b(one|two|three|four|five|six|seven|ten|twelve|twenty|thirty|seventy)\b",
                        re.IGNORECASE)


def _spans(text: str, pattern: re.Pattern, base: int = 0) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append((base + pos, base + m.start()))
        pos = m.end()
    out.append((base + pos, base + len(text)))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _substantive(part: str) -> bool:
    """A clause that can stand as a claim of its own: a few words with an obligation, quantity or actor."""
    return len(part.split()) >= 3 and bool(_MODAL_RE.search(part) or _NUMBER_RE.search(part)
                                           or _ACTOR_RE.search(part))


def classify(text: str) -> tuple[bool, str]:
    """``(regulatory, reason)`` for one claim."""
    t = text.strip()
    if not t:
        return False, "empty"
    if _NON_REGULATORY.search(t):
        return False, "greeting, hedge or referral"
    if t.endswith("?") and not _MODAL_RE.search(t.rstrip("?")):
        return False, "a question"
    if len(t.split()) < 3:
        return False, "too short to state anything"
    if _MODAL_RE.search(t) or _ACTOR_RE.search(t) or _NUMBER_RE.search(t):
        return True, ""
    return False, "no obligation, deadline, amount, actor or permission"


def split_claims(text: str) -> list[OutputClaim]:
    """The output's claims in order (see the module docstring)."""
    pieces: list[tuple[int, int]] = []
    for s, e in _spans(text, _SENT_END):
        s, e = _trim(text, s, e)
        if s >= e:
            continue
        sentence = text[s:e]
        parts = [(a, b) for a, b in (_trim(text, a, b) for a, b in _spans(sentence, _CLAUSE_CUT, s)) if a < b]
        if len(parts) > 1 and all(_substantive(text[a:b]) for a, b in parts):
            pieces += parts
        else:
            pieces.append((s, e))
    claims = []
    for i, (s, e) in enumerate(pieces):
        reg, why = classify(text[s:e])
        claims.append(OutputClaim(index=i, text=text[s:e], start=s, end=e, regulatory=reg, reason=why))
    return claims
