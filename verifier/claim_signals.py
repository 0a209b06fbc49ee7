"""Checkable differences between a claim and one clause sentence: the deterministic half of the claim check.

The entailment model reads meaning; these signals read what can be checked without a model, and the claim check
uses them both ways:

* a model's *contradiction* blocks only when it is confirmed by a difference of substance between the claim and
  the sentence about the same thing — another figure, a flipped negation, an obligation turned into an option (or a
  prohibition into a permission), another actor. Unconfirmed, the claim is not settled and the debate decides;
* a model's *entailment* stands only when no such difference exists — nor a reversed direction or bound
  ("raises" / "lowered", "at least" / "up to"), a scope the claim widens ("always", "any X") or qualifies ("mainly",
  "mostly"), a time it leaves open where the sentence sets a deadline ("at some point"), or a substantive
  condition of the sentence the claim drops ("where …", "unless …", "only for …", "whichever is higher"); and a
  claim that restates a sentence almost word for word (most of its content words are the sentence's, no figure,
  negation, modality, actor or "only" of its own) is entailed whatever the model says.

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
    >>> t = "Fines of up to EUR 8 000 000 or 3 % of turnover apply, whichever is higher."
    >>> [d.kind for d in differences("Fines reach EUR 8 million or 3 % of turnover, whichever is lower.", t)]
    ['polarity']
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel

from mad_guardrails.verifier.quantities import Quantity, compare, extract_quantities

DifferenceKind = Literal["number", "unstated_number", "negation", "modal", "actor", "polarity", "scope", "condition",
                         "time"]
#: the kinds that confirm a contradiction (the others only keep a claim from counting as entailed)
CONFIRMING: frozenset[str] = frozenset({"number", "negation", "modal", "actor", "polarity"})


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
    """A crude stem: an inflection off ("plans", "testing", "monitored"), then the first five letters."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix) and not w.endswith("ss"):
            w = w[: -len(suffix)]
            break
    return w[:5] if len(w) > 5 else w


@lru_cache(maxsize=4096)
def _content(text: str) -> frozenset[str]:
    t = _CITATION.sub(" ", text.lower().replace("-", " "))
    return frozenset(_stem(w) for w in _WORD.findall(t) if w not in _STOP and not w.isdigit() and len(w) > 1)


def content_words(text: str) -> frozenset[str]:
    """The stemmed content words of ``text`` (citations and function words left out), as :func:`coverage` counts them."""
    return _content(text)


def coverage(claim: str, sentence: str) -> float:
    """Share of the claim's content words (stemmed; citations and function words left out) found in the sentence."""
    c = _content(claim)
    return len(c & _content(sentence)) / len(c) if c else 0.0


# ------------------------------------------------------------------------------------------------ negation

_FIXED = re.compile(r"\b(?:without undue delay|without delay|without prejudice|not later than|no later than|"
                    r"not exceed\w*|not less than|no less than|not more than|no more than|none of the|whether or not|"
                    r"not only|if not|or not)\b", re.IGNORECASE)
#: an answer's lead-in, not part of what it states: "No. ...", "Yes - ...", "I can't back that up: ..."
_ANSWER_LEAD = re.compile(r"^\s*(?:(?:no|yes|nope|correct|right|not quite|not really)\s*[.,!:;—–-]+\s*|"
                          r"i (?:can['’]?t|cannot|won['’]t)\b[^:]{0,40}:\s*)", re.IGNORECASE)
_REFUSAL_LEAD = re.compile(r"^\s*(?:no|nope|not allowed|absolutely not)\s*[.,!:;—–-]|^\s*(?:you|we|they) "
                           r"(?:can['’]?t|cannot|may not|must not|mustn['’]t)\b", re.IGNORECASE)


def opens_with_refusal(answer: str) -> bool:
    """Whether an answer opens by turning the request down ("No. ...", "You can't ...").

    >>> opens_with_refusal("No. Providers shall inform people that they are talking to an AI system.")
    True
    >>> opens_with_refusal("Nobody will notice if you skip it.")
    False
    """
    return bool(_REFUSAL_LEAD.search(answer))


_NEG = re.compile(r"\b(?:not|no|never|none|nor|neither|cannot|without|nothing|nobody|n['’]t|refus\w*|declin\w*|"
                  r"irrelevant|discourag\w*|ignor\w*|waiv\w*)\b|n['’]t\b",
                  re.IGNORECASE)


_CONDITION = re.compile(r"\b(?:where|if|unless|when|whenever|in case|in the event)\b[^,;:]*", re.IGNORECASE)


_EXEMPT = re.compile(r"\b(?:carve[- ]?outs?|exceptions?|exempt\w*|excluded)\b", re.IGNORECASE)
_NOT_APPLY = re.compile(r"\b(?:shall|does|do|will) not apply\b", re.IGNORECASE)


def negations(text: str) -> int:
    """Negations of the main statement (fixed phrases like "without undue delay" and conditions like "where ... is
    not made" left out)."""
    return len(_NEG.findall(_CONDITION.sub(" ", _FIXED.sub(" ", text))))


# ------------------------------------------------------------------------------------------------ modality

_OBLIGE = re.compile(r"\b(?:shall|must|required?|requires|obliged|obligat\w*|ha(?:s|ve) to|needs? to|mandatory|"
                     r"is to|are to)\b", re.IGNORECASE)
_FORBID = re.compile(r"\b(?:prohibit\w*|ban(?:s|ned)?|forbid\w*|not (?:be )?(?:allowed|permitted)|shall not|"
                     r"must not|may not|cannot|can['’]?t|can not)\b", re.IGNORECASE)
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


# ------------------------------------------------------------------------------------------------ polarity

#: opposite directions and bounds: a claim that says "raises the barrier" of a clause on "lowered barriers", or
#: "at least EUR 10 million" of a cap "up to EUR 10 000 000" (a bound counts where a figure follows it)
_POLES: tuple[tuple[str, re.Pattern, str, re.Pattern], ...] = (
    ("lowers", re.compile(r"\b(?:lower(?:s|ed|ing)?|reduc\w*|decreas\w*|eas(?:e|es|ed|ier|ing))\b", re.IGNORECASE),
     "raises", re.compile(r"\b(?:rais(?:e|es|ed|ing)|increas\w*|heighten\w*|harder)\b", re.IGNORECASE)),
    ("sets a floor", re.compile(r"\b(?:at least|a minimum of|minimum of|no less than|not less than)\s+(?=[€$\d]|eur\b)",
                                re.IGNORECASE),
     "sets a cap", re.compile(r"\b(?:up to|at most|a maximum of|maximum of|no more than|not more than|not exceeding|"
                              r"no later than|not later than|within)\s+(?=[€$\d]|eur\b)", re.IGNORECASE)),
    ("takes the higher", re.compile(r"\bwhichever is (?:the )?(?:higher|greater)\b", re.IGNORECASE),
     "takes the lower", re.compile(r"\bwhichever is (?:the )?(?:lower|less|smaller)\b", re.IGNORECASE)),
)


def _polarity(claim: str, sentence: str) -> list[Difference]:
    """A direction or bound the claim states whose opposite the sentence states (and neither states both)."""
    out = []
    for a, ra, b, rb in _POLES:
        ca, cb, sa, sb = ra.search(claim), rb.search(claim), ra.search(sentence), rb.search(sentence)
        for (x, cx, sy, cy, sx), y in (((a, ca, sb, cb, sa), b), ((b, cb, sa, ca, sb), a)):
            if cx and sy and not cy and not sx:
                out.append(Difference(kind="polarity", detail=f"the claim {x} ('{cx.group(0)}'); the clause {y} "
                                                              f"('{sy.group(0)}')"))
    return out


# ------------------------------------------------------------------------------------------------ actors

_ACTORS: dict[str, str] = {
    "provider": r"providers?(?! of (?:ict|information|trust|managed|cloud|dns|online|public|electronic))",
    "deployer": r"deployers?|users? of (?:the |a )?(?:high-risk )?ai systems?",
    "importer": r"importers?", "distributor": r"distributors?", "manufacturer": r"manufacturers?",
    "controller": r"controllers?", "processor": r"processors?",
    "essential entity": r"essential entit(?:y|ies)|essential (?:and|or) important entit(?:y|ies)",
    "important entity": r"important entit(?:y|ies)",
    "financial entity": r"financial entit(?:y|ies)|banks?|insurers?|investment firms?",
    "ict third-party service provider": r"ict third[- ]party service providers?",
    "notified body": r"notified bod(?:y|ies)", "data subject": r"data subjects?",
    "management body": r"management bod(?:y|ies)|boards?(?: of directors)?|senior management|top management|"
                       r"executive management",
    "security staff": r"CISOs?|chief information security officers?|(?:IT|security) (?:department|team)s?",
}
_ACTOR_RE = {k: re.compile(rf"\b(?:{v})\b", re.IGNORECASE) for k, v in _ACTORS.items()}
#: whom a notification or report goes to: a claim naming one and a clause naming only others differ in addressee
_ADDRESSEES: dict[str, str] = {
    "CSIRT": r"CSIRTs?|computer security incident response teams?",
    "competent authority": r"competent authorit(?:y|ies)",
    "supervisory authority": r"supervisory authorit(?:y|ies)|data protection authorit(?:y|ies)|DPAs?",
    "market surveillance authority": r"market surveillance authorit(?:y|ies)",
    "ENISA": r"ENISA", "single reporting platform": r"single reporting platform",
}
_ADDRESSEE_RE = {k: re.compile(rf"\b(?:{v})\b", re.IGNORECASE if k != "DPA" else 0)
                 for k, v in _ADDRESSEES.items()}


def _addressees(text: str) -> set[str]:
    return {k for k, r in _ADDRESSEE_RE.items() if r.search(text)}


def _actors(text: str) -> set[str]:
    found = {k for k, r in _ACTOR_RE.items() if r.search(text)}
    if "ict third-party service provider" in found:
        found.discard("provider")
    return found


_SCOPE = re.compile(r"\b(?:only|solely|exclusively|just|merely)\b", re.IGNORECASE)
_SCOPE_OK = re.compile(r"\b(?:only|solely|exclusively|except|unless|limited to|merely|restricted to)\b", re.IGNORECASE)
#: a claim about "every employer" / "all AI systems" / "any company" (not "all of the following"), or one that
#: says a rule holds "always" / "in all cases"
_WIDEN = re.compile(r"\b(?:(?:every|all|any|each)\s+(?!of\b|the\s+following\b|such\b|those\b|these\b)[a-z]\w*|"
                    r"always|in (?:all|every) cases?|automatically)", re.IGNORECASE)
_WIDEN_OK = re.compile(r"\b(?:every|all|any|each|always|whoever|whichever|irrespective|regardless|no)\b", re.IGNORECASE)
#: "any" and "all" in fixed phrases name no universal ("in any event ... within 24 hours")
_UNIVERSAL_IDIOM = re.compile(r"\b(?:in any (?:event|case)|at all times|any other|in all other)\b", re.IGNORECASE)
#: a degree the claim puts on the rule ("it's mainly about offensive outputs", "mostly exempt"): the law states its
#: scope, so a qualifier the clause does not state narrows or blurs it in a way no sentence can support
QUALIFIER = re.compile(r"\b(?:mostly|mainly|largely|primarily|chiefly|predominantly|more or less|for the most part|"
                       r"somewhat|to some extent|sort of|kind of|pretty much)\b", re.IGNORECASE)
#: a time left open ("at some point", "once things have settled down") where the clause sets a deadline or a period
_VAGUE_TIME = re.compile(r"\b(?:at some (?:point|stage)|eventually|sooner or later|down the (?:line|road)|in due course|"
                         r"at a later (?:date|stage)|some time (?:later|after)|whenever (?:you|it|they)\b|"
                         r"once things (?:have )?settled?|when things (?:have )?(?:settled?|calm\w*))", re.IGNORECASE)
_DEADLINE = re.compile(r"\b(?:without undue delay|immediately|not later than|no later than|at the latest|within)\b",
                       re.IGNORECASE)


#: a finding the text reports ("Current estimates suggest ...", "studies show ...") and a claim that turns it into
#: what the document sets ("It sets a standard benchmark where ...")
_REPORTED = re.compile(r"\b(?:estimates?|studies|research|evidence|reports?|analys[ie]s|experts?|surveys?) "
                       r"(?:\w+ )?(?:suggest|show|indicate|find|found|estimate)\w*", re.IGNORECASE)
_AS_RULE = re.compile(r"\b(?:sets?|establish\w*|prescrib\w*|mandat\w*|standard|benchmark|official|methodology)\b",
                      re.IGNORECASE)


def qualifiers(claim: str, sentence: str) -> list[str]:
    """The degree qualifiers of ``claim`` that ``sentence`` does not state (each narrows or blurs the rule).

    >>> qualifiers("It is mainly about offensive outputs.", "amplified systemic bias and performance disparities")
    ['mainly']
    >>> qualifiers("Mostly yes - open-source models are exempt.", "shall not apply to providers ... mostly")
    []
    """
    stated = {m.group(0).lower() for m in QUALIFIER.finditer(sentence)}
    return list(dict.fromkeys(q for q in (m.group(0).lower() for m in QUALIFIER.finditer(claim)) if q not in stated))


def vague_time(claim: str, sentence: str) -> str | None:
    """The open-ended time of ``claim`` ("at some point") when ``sentence`` sets a deadline or period, else None.

    >>> vague_time("At some point you'll need to send a final report.",
    ...            "a final report not later than one month after the submission of the incident notification")
    'At some point'
    >>> vague_time("At some point you'll need to send a final report.", "a final report shall include a description")
    """
    m = _VAGUE_TIME.search(claim)
    if m is None or _VAGUE_TIME.search(sentence):
        return None
    timed = _DEADLINE.search(sentence) or any(q.kind == "duration" for q in extract_quantities(sentence))
    return m.group(0) if timed else None

# ------------------------------------------------------------------------------------------------ conditions

#: a condition the clause puts on its rule: "where ...", "unless ...", "provided that ...", "to the extent that ..."
_LIMIT = re.compile(r"\b(?:where|if|unless|provided that|providing that|on condition that|in so far as|insofar as|"
                    r"to the extent(?: that)?|as long as|except where|except if|only (?:if|where|when))\b"
                    r"(?:\s*,[^,;:.()]*,)?([^,;:.()]*)",
                    re.IGNORECASE)
#: a restriction inside the rule: "only for a limited period required for testing purposes"
_ONLY = re.compile(r"\bonly (?:for|during|in|within|to|by|on|at|after|once)\b([^,;:.()]*)", re.IGNORECASE)
#: the claim states a condition of its own (it may word the clause's one differently)
_OWN_LIMIT = re.compile(r"\b(?:where|if|unless|provided|on condition|in so far|insofar|to the extent|as long as|"
                        r"except|exception|only|subject to|depending on|when)\b", re.IGNORECASE)
#: two caps combined ("EUR 15 000 000 or 2,5 % ..., whichever is higher")
_WHICHEVER = re.compile(r"\bwhichever is (?:the )?(?:higher|greater|lower|less|smaller|earlier|later)\b", re.IGNORECASE)


def conditions(sentence: str, *, min_words: int = 3) -> list[str]:
    """The substantive conditions a clause sentence puts on its rule (at least ``min_words`` content words: "where
    feasible" or "if the offender is an undertaking" qualify a rule without changing what it is about)."""
    return [m.group(0).strip() for m in _LIMIT.finditer(sentence) if len(_content(m.group(1))) >= min_words]


#: a Member-State option on the rule before it ("Member States may provide by law for a lower age ...")
_MEMBER_STATE_OPTION = re.compile(r"\W*member states may (?:provide|lay down|decide|allow|derogate|set|exempt)\b",
                                  re.IGNORECASE)
#: a sentence that opens an exception to the one before it
_EXCEPTION_NEXT = re.compile(r"^\W*(?:however|by way of derogation|notwithstanding|that (?:rule|obligation|period) "
                             rf"shall not apply)\b|^{_MEMBER_STATE_OPTION.pattern}", re.IGNORECASE)
#: the claim says itself that the rule has exceptions or varies
_OWN_EXCEPTION = re.compile(r"\b(?:although|though|except\w*|but|however|generally|in general|in principle|as a rule|"
                            r"some|apart from|unless|derogat\w*|with (?:some|certain) exceptions?|mostly|mainly|"
                            r"member states?|national (?:law|rules)|(?:your|each|the) country|by default|default)\b",
                            re.IGNORECASE)


def exception_follows(claim: str, text_after: str | None) -> bool:
    """Whether the clause goes on with an exception to the sentence a claim rests on ("It shall apply from 2 August
    2026. However: ...": ``text_after`` is what follows that sentence) and the claim, stating the rule bare, says
    nothing of it."""
    if not text_after or _OWN_EXCEPTION.search(claim):
        return False
    if _EXCEPTION_NEXT.search(text_after):
        return True
    # further on in the same paragraph, a Member-State option ("16 ... Member States may provide for a lower age")
    paragraph = re.split(r"\n\s*(?:\d+\.|\([a-z]\))\s", text_after, maxsplit=1)[0]  # up to the next numbered one
    return any(_MEMBER_STATE_OPTION.match(x) for x in re.split(r"(?<=[.;:])\s+|\n\s*\n", paragraph)[1:])


def dropped_conditions(claim: str, sentence: str) -> list[str]:
    """The sentence's conditions a claim leaves out: the claim states no condition of its own and keeps fewer than
    half of the condition's content words; an "only for ..." restriction the claim neither keeps nor words with an
    "only" of its own; and a "whichever is higher" the claim drops while stating two caps."""
    out = []
    if not _OWN_LIMIT.search(claim):
        out += [c for c in conditions(sentence) if coverage(c, claim) < 0.5]
    if not _SCOPE.search(claim):  # an "only ..." restriction counts even where the claim words a condition itself
        out += [m.group(0).strip() for m in _ONLY.finditer(sentence)
                if len(_content(m.group(1))) >= 2 and coverage(m.group(0), claim) < 0.5]
    if _WHICHEVER.search(sentence) and not _WHICHEVER.search(claim) and re.search(r"\bor\b", claim):
        out.append(_WHICHEVER.search(sentence).group(0))
    return out


_NEGATED_VERB = re.compile(r"\b\w+n['’]t\b", re.IGNORECASE)  # "doesn't", "won't": no content word of a condition


def added_conditions(claim: str, sentence: str) -> list[str]:
    """The claim's own conditions ("where a request is large or burdensome, you may charge a fee") that the sentence
    does not state: under half of their content words are the sentence's. A rule read under a condition the law
    does not set is not the law's rule.

    >>> added_conditions("Where a request is large or burdensome, you may charge a reasonable fee.",
    ...                  "For any further copies requested, the controller may charge a reasonable fee.")
    ['Where a request is large or burdensome']
    >>> added_conditions("If you rely on consent for a service offered directly to a child under 16, a parent must "
    ...                  "authorise it.", "Where consent applies to the offer of services directly to a child, the "
    ...                  "processing of the data of a child below 16 is lawful only where a parent authorises it.")
    []
    """
    return [c for c in conditions(claim, min_words=2) if coverage(_NEGATED_VERB.sub(" ", c), sentence) < 0.5]


# ------------------------------------------------------------------------------------------------ the check

def _bare_count_stated(q: Quantity, sentence: list[Quantity]) -> bool:
    """A bare number of the claim ("not under 13") that the sentence states with its unit ("not below 13 years")."""
    return q.kind == "count" and q.unit == "count" and any(
        s.amount is not None and q.amount is not None and s.amount == q.amount for s in sentence)


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
        if any(v is True for v in verdicts) or _bare_count_stated(q, sentence):
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


def without_answer_lead(claim: str) -> str:
    """The claim without an answer's lead-in, which states nothing about the clause.

    >>> without_answer_lead("Not quite: SMEs pay whichever is lower.")
    'SMEs pay whichever is lower.'
    >>> without_answer_lead("No later than 72 hours after becoming aware.")   # a figure's "no", not a lead-in
    'No later than 72 hours after becoming aware.'
    """
    return _ANSWER_LEAD.sub("", claim)


def differences(claim: str, sentence: str) -> list[Difference]:
    """The checkable differences between ``claim`` and ``sentence`` (see the module docstring)."""
    claim = without_answer_lead(claim)
    out = _numbers(extract_quantities(claim), extract_quantities(sentence))
    # "the only carve-out is for X" says what "this prohibition shall not apply to X" says
    carve_out = 1 if _EXEMPT.search(claim) and _NOT_APPLY.search(sentence) and not _NOT_APPLY.search(claim) else 0
    if negations(claim) % 2 != (negations(sentence) - carve_out) % 2:
        out.append(Difference(kind="negation", detail="one of them is negated and the other is not"))
    mc, ms = modality(claim), modality(sentence)
    if ("option" in mc and not (mc & {"oblige", "forbid"}) and ms & {"oblige", "forbid"} and "option" not in ms) \
            or ("forbid" in mc and "option" in ms and "forbid" not in ms) \
            or (mc == {"oblige"} and ms == {"option"}):
        out.append(Difference(kind="modal", detail=f"the claim reads {'/'.join(sorted(mc))}; the clause "
                                                   f"{'/'.join(sorted(ms)) or 'states no modality'}"))
    out += _polarity(claim, sentence)
    ac, as_ = _actors(claim), _actors(sentence)
    if ac and as_ and not ac & as_:
        out.append(Difference(kind="actor", detail=f"the claim names {', '.join(sorted(ac))}; the clause "
                                                   f"{', '.join(sorted(as_))}"))
    tc, ts = _addressees(claim), _addressees(sentence)
    if tc and ts and not tc & ts:
        out.append(Difference(kind="actor", detail=f"the claim sends it to {', '.join(sorted(tc))}; the clause "
                                                   f"to {', '.join(sorted(ts))}"))
    if _SCOPE.search(claim) and not _SCOPE_OK.search(sentence):
        out.append(Difference(kind="scope", detail="the claim narrows the scope ('only'); the clause does not"))
    if _WIDEN.search(claim) and not _WIDEN_OK.search(_UNIVERSAL_IDIOM.sub(" ", sentence)):
        out.append(Difference(kind="scope", detail=f"the claim widens the scope ('{_WIDEN.search(claim).group(0)}"
                                                   "...'); the clause names no such universal"))
    if qs := qualifiers(claim, sentence):
        out.append(Difference(kind="scope", detail=f"the claim qualifies the rule ('{qs[0]}'); the clause states no "
                                                   "such limit"))
    if _REPORTED.search(sentence) and _AS_RULE.search(claim) and not _REPORTED.search(claim):
        out.append(Difference(kind="scope", detail="the claim makes a finding the clause reports ('"
                              + _REPORTED.search(sentence).group(0) + "') into a rule or a standard"))
    if vt := vague_time(claim, sentence):
        out.append(Difference(kind="time", detail=f"the claim leaves the time open ('{vt}'); the clause sets a "
                                                  "deadline"))
    for cond in dropped_conditions(claim, sentence):
        out.append(Difference(kind="condition", detail=f"the claim leaves out the clause's condition '{cond}'"))
    return out


#: how much of the claim a sentence must share before a difference of each kind counts as a contradiction
_CONFIRM_COVERAGE = {"number": 0.3, "actor": 0.3, "modal": 0.4, "polarity": 0.4, "negation": 0.5}


#: units whose sentences state the framework's outcomes or risks without a modal verb ("Log records are generated
#: and made available ...", the AI 600-1 risk definitions): a claim that negates one contradicts the framework
_OUTCOME_UNIT = re.compile(r"^nist-csf-2\.0:[A-Z]{2}\.[A-Z]{2}-\d+$|"
                           r"^nist-ai-rmf:(?:GOVERN|MAP|MEASURE|MANAGE)-\d+\.\d+$|^nist-ai-600-1:risk_\d+$")


_RECITAL_UNIT = re.compile(r":rct_")


def confirms_contradiction(claim: str, sentence: str, unit_id: str = "", *, question: str = "") -> list[Difference]:
    """The differences that make a model's contradiction checkable: of a confirming kind, between a claim and a
    sentence about the same thing (enough shared content words for the kind), and for a flipped negation or
    modality a sentence that states a norm itself (a list item cut from its lead-in does not; a NIST outcome or
    risk statement, ``unit_id``, does). A recital's modality confirms nothing: recitals explain in "should" and
    "may" what the articles lay down with "shall". Empty: unconfirmed.

    An answer's claim may leave its subject to the ``question`` ("At least once every five years." to "How often
    must we run threat-led penetration tests?"): the words they share with the sentence count together. The
    differences themselves are read from the claim alone."""
    cov = max(coverage(claim, sentence), coverage(f"{claim} {question}", sentence) if question else 0.0)
    normative = bool(modality(sentence)) or bool(_OUTCOME_UNIT.match(unit_id))
    recital = bool(_RECITAL_UNIT.search(unit_id))
    return [d for d in differences(claim, sentence) if d.kind in CONFIRMING and cov >= _CONFIRM_COVERAGE[d.kind]
            and (normative or d.kind not in ("negation", "modal")) and not (recital and d.kind == "modal")]


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
