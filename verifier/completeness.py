"""Completeness: when the question asks for a list, what the clause lists that the answer leaves out.

A pairwise reading of (clause sentence, claim) sees that every item an answer names is in the clause, never that
the clause names more: "what has to go into a breach notification?" answered with two of GDPR Art. 33(3)'s four
points is entailed sentence by sentence and still misleading. So when the question asks for an enumeration (what
information / which options / what must go into ...), a claim's supporting clause that is itself a list — lettered
points "(a) … (b) …", or a series "mitigating, transferring, avoiding, or accepting" in its supporting sentence —
is read item by item against the whole answer. An answer that names only some of three or more items, and does not
say it gives examples ("for example", "such as", "among others"), leaves the claim not settled: the debate (or a
reviewer) decides, never a block::

    >>> clause = ("3. The notification referred to in paragraph 1 shall at least:\\n"
    ...           "- (a) describe the nature of the personal data breach;\\n"
    ...           "- (b) communicate the name and contact details of the data protection officer;\\n"
    ...           "- (c) describe the likely consequences of the personal data breach;\\n"
    ...           "- (d) describe the measures taken or proposed to be taken by the controller.")
    >>> q = "What information has to go into a breach notification?"
    >>> left_out(q, "Describe the nature of the breach and the measures you took.", clause, "")
    ['communicate the name and contact details of the data protection officer', 'describe the likely consequences of the personal data breach']
    >>> left_out(q, "For example, describe the nature of the breach.", clause, "")
    []
    >>> left_out("Do we have to notify the authority?", "Yes, describing the nature of the breach.", clause, "")
    []
    >>> left_out("What risk response options does the AI RMF recognise?", "Mitigating the risk or avoiding it.",
    ...          "", "Risk response options can include mitigating, transferring, avoiding, or accepting.")
    ['transferring', 'accepting']
"""

from __future__ import annotations

import re
from collections import Counter

from mad_guardrails.verifier.claim_signals import content_words

#: a question that asks for the members of a list
_ENUMERATION = re.compile(
    r"\b(?:what|which)\b[^?.]{0,80}?\b(?:information|details|items|elements|options|steps|measures|requirements|"
    r"obligations|conditions|criteria|outcomes|functions|categories|rights|grounds|responses|things|contents|"
    r"points|duties|tasks|factors|risks|exceptions|exemptions|kinds|types)\b"
    r"|\b(?:list|enumerate|name all)\b"
    r"|\bwhat (?:has|have|needs?|must|should) to (?:go|be) (?:in|into|included|covered|contained)\b"
    r"|\bwhat (?:goes|must go|should go|has to go) in(?:to)?\b"
    r"|\bwhat (?:must|should|does|do) (?:it|they|the \w+) (?:contain|include|cover)\b", re.IGNORECASE)
#: the answer says it gives examples or a selection, not the whole list
_SELECTION = re.compile(r"\b(?:for example|for instance|such as|e\.g\.|among (?:others|other things|them|which)|"
                        r"some of|a few|to name|the main (?:ones|items|points)|key (?:ones|items|points)|"
                        r"and (?:so on|more|others)|etc)\b", re.IGNORECASE)
#: a lettered or numbered point of a clause: "- (a) describe the nature of ...;"
_POINT = re.compile(r"^\s*-?\s*\((?:[a-z]|[ivx]+|\d+)\)\s*(.+?)\s*(?:;\s*(?:and|or)?|[.,:])?\s*$", re.MULTILINE)
#: a series of three or more short items in a sentence: "mitigating, transferring, avoiding, or accepting"
_ITEM = r"[A-Za-z][\w-]*(?: [\w-]+){0,3}"
_LEAD = re.compile(r"\b(?:include|includes|including|are|is|namely|as|of|cover|covers)\b\s*", re.IGNORECASE)
_SERIES = re.compile(rf"(?<![\w-])({_ITEM}(?:, {_ITEM}){{1,}},? (?:and|or) {_ITEM})(?=[.;:)]|$)")


def asks_for_list(question: str | None) -> bool:
    """Whether ``question`` asks for the members of a list ("what information has to go into ...")."""
    return bool(question and _ENUMERATION.search(question))


def list_items(clause: str, sentence: str = "") -> list[str]:
    """The items the clause lists: its lettered points (three or more), else the series of the supporting
    ``sentence`` (three or more items of at most four words each)."""
    points = [p.strip() for p in _POINT.findall(clause) if len(p.split()) >= 2]
    if len(points) >= 3:
        return points
    for m in _SERIES.finditer(sentence):
        items = [re.sub(r"^(?:and|or) ", "", x.strip()) for x in re.split(r",\s*|\s+(?:and|or)\s+", m.group(1))]
        items = [x for x in items if x]
        if items:  # the first item starts after the verb that opens the list: "options can include mitigating"
            items[0] = _LEAD.split(items[0])[-1].strip()
        if len(items) >= 3:
            return items
    return []


def _distinct(items: list[str]) -> list[frozenset[str]]:
    """Each item's content words (of a list of three or more) that fewer than half of the items share ("describe",
    "breach" say nothing of which point an answer names); all of an item's words when every one is shared."""
    words = [content_words(x) for x in items]
    common = Counter(w for ws in words for w in ws)
    out = []
    for ws in words:
        own = frozenset(w for w in ws if common[w] * 2 < len(items))
        out.append(own or ws)
    return out


def left_out(question: str | None, answer: str, clause: str, sentence: str) -> list[str]:
    """The items of the clause's list the answer does not name, when the question asks for the list and the answer
    does not present a selection; [] otherwise (or when the answer names them all). An item counts as named when the
    answer holds one of its distinctive words (one in five, for an item of many)."""
    if not asks_for_list(question) or _SELECTION.search(answer):
        return []
    items = list_items(clause, sentence)
    if len(items) < 3:
        return []
    said = content_words(answer)
    missing = [x for x, own in zip(items, _distinct(items)) if len(own & said) < max(1, round(len(own) / 5))]
    return missing if len(missing) < len(items) else []  # an answer naming none of them is not about this list
