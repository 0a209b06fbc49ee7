"""Checkable differences between a claim and one clause sentence: the deterministic half of the claim check.

The entailment model reads meaning; these signals read what can be checked without a model, and the claim check
uses them both ways:

* a model's *contradiction* blocks only when it is confirmed by a difference of substance between the claim and
  the sentence about the same thing — another figure, a flipped negation, an obligation turned into an option (or a
  prohibition into a permission), another actor. Unconfirmed, the claim is not settled and the debate decides;
* a model's *entailment* stands only when no such difference exists; and a claim that restates a sentence almost
  word for word (most of its content words are the sentence's, no figure, negation, modality, actor or "only" of
  its own) is entailed whatever the model says.

    >>> s = ("In the case of a personal data breach, the controller shall without undue delay and, where feasible, "
    ...      "not later than 72 hours after having become aware of it, notify the personal data breach to the "
    ...      "supervisory authority.")
    >>> [d.kind for d in differences("The controller has 30 days to notify the supervisory authority.", s)]
    ['number']
    >>> [d.kind for d in differences("The processor must notify the supervisory authority within 72 hours.", s)]
    ['actor']
    >>> [d.kind for d in differences("Notifying the supervisory authority of a breach is optional for the controller.", s)]
    ['modal']
    >>> differences("The controller notifies the supervisory authority within 72 hours of becoming aware.", s)
    []
    >>> round(coverage("The controller shall notify the personal data breach to the supervisory authority.", s), 2)
    1.0
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from mad_guardrails.verifier.quantities import Quantity, compare, extract_quantities

DifferenceKind = Literal["number", "unstated_number", "negation", "modal", "actor", "scope"]
#: the kinds that confirm a contradiction (the others only keep a claim from counting as entailed)
CONFIRMING: frozenset[str] = frozenset({"number", "negation", "modal", "actor"})


class Difference(BaseModel):
    """One checkable way a claim differs from a clause sentence."""

    kind: DifferenceKind
    detail: str


_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
_STOP = frozenset("""a an the and or but of to in on at by for with from as is are was were be been being it its this
that these those which who whom whose what when where while if then than so such any all each every other another
their there they them he she his her we our you your i me my not no nor do does did done has have had having shall
must may might can could will would should into onto about above below over under up down out off also only just
very more most less least same own both either neither per via within upon after before until since because whether
however thus hence therefore where whereby herein thereof referred paragraph point points subparagraph article
articles annex recital regulation directive union eu act gdpr nis2 dora cra nist rmf csf ai-act etc""".split())
_CITATION = re.compile(r"\b(?:art(?:icle)?s?\.?\s*\d+[\w().]*|annex\s+[ivxlc]+|recital\s+\d+|\(\w{1,4}\))",
                       re.IGNORECASE)


def _stem(w: str) -> str:
    return w[:5] if len(w) > 5 else w


@lru_cache(maxsize=4096)
def _content(text: str) -> frozenset[str]:
    t = _CITATION.sub(" ", text.lower().replace("-", " "))
    return frozenset(_stem(w) for w in _WORD.findall(t) if w not in _STOP and not w.isdigit() and len(w) > 1)


def coverage(claim: str, sentence: str) -> float:
    """Share of the claim's content words (stemmed; citations and function words left out) found in the sentence."""
    c = _content(claim)
    return len(c & _content(sentence)) / len(c) if c else 0.0


# ------------------------------------------------------------------------------------------------ negation

_FIXED = re.compile(r"\b(?:without undue delay|without prejudice|not later than|no later than|not exceed\w*|"
                    r"not less than|no less than|not more than|no more than|none of the|whether or not|"
                    r"not only|if not|or not)\b", re.IGNORECASE)
_NEG = re.compile(r"\b(?:not|no|never|none|nor|neither|cannot|without|nothing|nobody|n['’]t|refus\w*|declin\w*|"
                  r"irrelevant|discourag\w*|ignor\w*|waiv\w*)\b|n['’]t\b",
                  re.IGNORECASE)


_CONDITION = re.compile(r"\b(?:where|if|unless|when|whenever|in case|in the event)\b[^,;:]*", re.IGNORECASE)


def negations(text: str) -> int:
    """Negations of the main statement (fixed phrases like "without undue delay" and conditions like "where ... is
    not made" left out)."""
    return len(_NEG.findall(_CONDITION.sub(" ", _FIXED.sub(" ", text))))


# ------------------------------------------------------------------------------------------------ modality

_OBLIGE = re.compile(r"\b(?:shall|must|required?|requires|obliged|obligat\w*|ha(?:s|ve) to|needs? to|mandatory|"
                     r"is to|are to)\b", re.IGNORECASE)
_FORBID = re.compile(r"\b(?:prohibit\w*|ban(?:s|ned)?|forbid\w*|not (?:be )?(?:allowed|permitted)|shall not|"
                     r"must not|may not|cannot)\b", re.IGNORECASE)
_OPTION = re.compile(r"\b(?:optional|voluntar\w*|free to|may(?! not| be\b)|leaves? it to|irrelevant|refus\w*|decline\w*|waive\w*|ignor\w*|discourag\w*|up to (?:them|you|the \w+)|discretion\w*|may choose|"
                     r"need not|needn['’]t|no need|not (?:need|required|obliged|necessary|mandatory)|"
                     r"do(?:es)?n['’]t (?:need|have) to|do(?:es)? not (?:need|have) to|can (?:skip|ignore|wait)|"
                     r"is fine|are fine|(?:is|are) (?:allowed|permitted|legal|lawful|ok(?:ay)?)|"
                     r"(?:allows?|permits?)\b(?! only))", re.IGNORECASE)


def modality(text: str) -> set[str]:
    t = _FIXED.sub(" ", text)
    out = set()
    if _FORBID.search(t):
        out.add("forbid")
    if _OPTION.search(t):
        out.add("option")
    if _OBLIGE.search(_FORBID.sub(" ", t)) and "option" not in out:
        out.add("oblige")
    return out


# ------------------------------------------------------------------------------------------------ actors

_ACTORS: dict[str, str] = {
    "provider": r"providers?(?! of (?:ict|information|trust|managed|cloud|dns|online|public|electronic))",
    "deployer": r"deployers?|users? of (?:the |a )?(?:high-risk )?ai systems?",
    "importer": r"importers?", "distributor": r"distributors?", "manufacturer": r"manufacturers?",
    "controller": r"controllers?", "processor": r"processors?",
    "essential entity": r"essential entit(?:y|ies)", "important entity": r"important entit(?:y|ies)",
    "financial entity": r"financial entit(?:y|ies)|banks?|insurers?|investment firms?",
    "ict third-party service provider": r"ict third[- ]party service providers?",
    "notified body": r"notified bod(?:y|ies)", "data subject": r"data subjects?",
}
_ACTOR_RE = {k: re.compile(rf"\b(?:{v})\b", re.IGNORECASE) for k, v in _ACTORS.items()}


def _actors(text: str) -> set[str]:
    found = {k for k, r in _ACTOR_RE.items() if r.search(text)}
    if "ict third-party service provider" in found:
        found.discard("provider")
    return found


_SCOPE = re.compile(r"\b(?:only|solely|exclusively|just|merely)\b", re.IGNORECASE)
_SCOPE_OK = re.compile(r"\b(?:only|solely|exclusively|except|unless|limited to|merely|restricted to)\b", re.IGNORECASE)
#: a claim about "every employer" / "all AI systems" / "any company" (not "all of the following")
_WIDEN = re.compile(r"\b(?:every|all|any|each)\s+(?!of\b|the\s+following\b|such\b|those\b|these\b)[a-z]\w*", re.IGNORECASE)
_WIDEN_OK = re.compile(r"\b(?:every|all|any|each|whoever|whichever|irrespective|regardless|no)\b", re.IGNORECASE)


# ------------------------------------------------------------------------------------------------ the check

def _numbers(claim: list[Quantity], sentence: list[Quantity]) -> list[Difference]:
    """A figure of the claim that the sentence states otherwise — unless another figure of the same kind in the claim
    is the sentence's (a claim listing 24 and 72 hours is not contradicted by the 24-hour sentence)."""
    out = []
    figures = [q for q in claim if not q.qualitative and (q.value is not None or q.iso)]
    matched_kinds = {q.kind for q in figures for s in sentence
                     if s.kind == q.kind and not s.qualitative and compare(s, q)[0] is True}
    for q in figures:
        same_kind = [s for s in sentence if s.kind == q.kind and not s.qualitative]
        verdicts = [compare(s, q)[0] for s in same_kind]
        if any(v is True for v in verdicts):
            continue
        if any(v is False for v in verdicts) and q.kind not in matched_kinds:
            out.append(Difference(kind="number", detail=f"the claim says {q.text}; the clause says "
                                  + ", ".join(s.text for s, v in zip(same_kind, verdicts) if v is False)))
        else:
            out.append(Difference(kind="unstated_number", detail=f"the clause states no {q.kind} like {q.text}"))
    return out


def states_figures(claim: str, sentence: str) -> bool:
    """Whether every figure of the claim is stated by the sentence (the claim has at least one)."""
    qs = [q for q in extract_quantities(claim) if not q.qualitative and (q.value is not None or q.iso)]
    return bool(qs) and not _numbers(qs, extract_quantities(sentence))


def differences(claim: str, sentence: str) -> list[Difference]:
    """The checkable differences between ``claim`` and ``sentence`` (see the module docstring)."""
    out = _numbers(extract_quantities(claim), extract_quantities(sentence))
    if negations(claim) % 2 != negations(sentence) % 2:
        out.append(Difference(kind="negation", detail="one of them is negated and the other is not"))
    mc, ms = modality(claim), modality(sentence)
    if ("option" in mc and not (mc & {"oblige", "forbid"}) and ms & {"oblige", "forbid"} and "option" not in ms) \
            or ("forbid" in mc and "option" in ms and "forbid" not in ms):
        out.append(Difference(kind="modal", detail=f"the claim reads {'/'.join(sorted(mc))}; the clause "
                                                   f"{'/'.join(sorted(ms)) or 'states no modality'}"))
    ac, as_ = _actors(claim), _actors(sentence)
    if ac and as_ and not ac & as_:
        out.append(Difference(kind="actor", detail=f"the claim names {', '.join(sorted(ac))}; the clause "
                                                   f"{', '.join(sorted(as_))}"))
    if _SCOPE.search(claim) and not _SCOPE_OK.search(sentence):
        out.append(Difference(kind="scope", detail="the claim narrows the scope ('only'); the clause does not"))
    if _WIDEN.search(claim) and not _WIDEN_OK.search(sentence):
        out.append(Difference(kind="scope", detail=f"the claim widens the scope ('{_WIDEN.search(claim).group(0)}"
                                                   "...'); the clause names no such universal"))
    return out


#: how much of the claim a sentence must share before a difference of each kind counts as a contradiction
_CONFIRM_COVERAGE = {"number": 0.3, "actor": 0.3, "modal": 0.4, "negation": 0.5}


def confirms_contradiction(claim: str, sentence: str) -> list[Difference]:
    """The differences that make a model's contradiction checkable: of a confirming kind, between a claim and a
    sentence about the same thing (enough shared content words for the kind), and for a flipped negation or
    modality a sentence that states a norm itself (a list item cut from its lead-in does not). Empty: unconfirmed."""
    cov = coverage(claim, sentence)
    normative = bool(modality(sentence))
    return [d for d in differences(claim, sentence) if d.kind in CONFIRMING and cov >= _CONFIRM_COVERAGE[d.kind]
            and (normative or d.kind not in ("negation", "modal"))]


def restates(claim: str, sentence: str, *, min_coverage: float = 0.85, min_words: int = 4) -> bool:
    """Whether the claim restates the sentence almost word for word, adding no figure, negation, modality, actor or
    scope of its own."""
    return (len(_content(claim)) >= min_words and coverage(claim, sentence) >= min_coverage
            and not differences(claim, sentence))


def restates_clause(claim: str, clause: str, *, min_coverage: float = 0.85, min_words: int = 4) -> bool:
    """Whether a claim without figures restates a whole clause (several sentences) almost word for word: its content
    words are the clause's, and it adds no negation, no optional reading, no modality and no actor the clause lacks.
    Claims with figures are left to :func:`restates` (one sentence), so two deadlines of a clause cannot be swapped."""
    if len(_content(claim)) < min_words or coverage(claim, clause) < min_coverage or extract_quantities(claim):
        return False
    mc, ms = modality(claim), modality(clause)
    if negations(claim) or "option" in mc or not mc <= ms or _SCOPE.search(claim):
        return False
    return _actors(claim) <= _actors(clause)
