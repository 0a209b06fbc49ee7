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
from mad_guardrails.verifier.claim_signals import QUALIFIER as _QUALIFIER
from mad_guardrails.verifier.quantities import extract_quantities

#: a sentence ends at . ! ? (not inside "Art. 5", "e.g.", "No. 3", decimals) or at a line break between items
_SENT_END = re.compile(r"(?<=[.!?])(?<!\b[A-Z]\.)(?<!\bArt\.)(?<!\bArts\.)(?<!\bart\.)(?<!\be\.g\.)(?<!\bi\.e\.)"
                       r"(?<!\bNo\.)(?<!\bcf\.)(?<!\bvs\.)(?<!\bpara\.)[\"')\]]*\s+(?=[A-Z0-9\"'(\[])"
                       r"|\n\s*(?:[-*•]|\d+[.)])?\s*")
_CLAUSE_CUT = re.compile(r";\s+|,?\s+\bso\s+(?=(?:please\s+)?(?:check|consult|confirm|ask|talk|speak|seek)\b)|"
                         r",?\s+\b(?:and then|and|but|whereas|while)\b\s+(?=\S)|,\s+(?:or|then)\b\s+(?=\S)")
#: a clause of its own has a verb: an auxiliary or modal, or a verb the regulations' obligations are stated with
#: auxiliaries and modals: the finite verbs a clause carries (a list item that shares its verb has none of them)
_AUXILIARY = (r"is|are|was|were|has|have|had|does|do|did|must|shall|should|may|might|can|could|cannot|will|would|"
              r"needs?|(?:is|are|was|were|has|have|had|does|do|did|must|should|could|would|need|ca|wo|sha)n['’]t")
#: a clause that opens with a pronoun and its contracted verb: "that's left to ...", "you're responsible for ..."
#: (only at the start: "..., as long as it's ..." inside a clause is no clause of its own; "the provider's" no verb)
_PRONOUN_VERB = re.compile(r"^\W*(?:(?:and|but|so|or)\s+)?(?:it|that|there|here|what|this|you|we|they|i|he|she|who)"
                           r"['’](?:s|re|ve|ll|d)\b", re.IGNORECASE)
_VERB = re.compile(rf"\b(?:{_AUXILIARY}|be|been|appl(?:y|ies)|requires?|prohibits?|bans?|allows?|permits?|"
                   r"notif(?:y|ies)|reports?|sends?|submits?|keeps?|covers?|includes?|gives?|takes?|faces?|means?|"
                   r"follows?|reach(?:es)?|costs?|lists?|sets?|starts?|ends?|informs?|describes?|defines?|"
                   r"classif(?:y|ies)|counts?|obliges?|exempts?|gets?|goes|go|makes?|treats?|uses?)\b",
                   re.IGNORECASE)

_MODAL = (r"\b(must|shall|should|may|may not|need(s)? to|ha(s|ve) to|required?|obliged|obligat\w*|prohibit\w*|"
          r"ban(ned|s)?|forbid\w*|allow\w*|permit\w*|exempt\w*|entitled|right to|responsib\w*|liable|fine[sd]?|"
          r"penalt\w*|notif\w*|report\w*|inform\w*|register\w*|assess\w*|document\w*|appl(y|ies)|covers?|"
          r"within|deadline|no later than|at least|at most|up to|days?|hours?|months?|years?|weeks?|"
          r"%|percent|eur|€|million)\b")
_ACTOR = (r"\b(controller|processor|provider|deployer|importer|distributor|manufacturer|entit(y|ies)|authorit(y|ies)|"
          r"csirt|regulator|supervisory|data subject|operator|member states?|commission|organi[sz]ation|"
          r"financial entit\w*|ict|high-risk|ai system|gpai|general-purpose|personal data|incident|breach|"
          r"article|art\.|annex|recital|gdpr|ai act|nis ?2|dora|cra|cyber resilience|nist|csf|rmf|600-1)\b")
#: words that put a text in the packs' domain: the acts and frameworks by name, their actors and the things they
#: regulate (narrower than ``_ACTOR``, which also counts "organisation", "incident" or "authority" as actors)
_DOMAIN = re.compile(
    r"\b(gdpr|general data protection|ai act|artificial intelligence act|nis ?2|dora|digital operational resilience|"
    r"cra|cyber resilience act|nist|csf|ai rmf|600-1|sp 1270|union law|regulation \(eu\)|directive \(eu\)|"
    r"article \d+|art\. ?\d+|annex [ivx]+|recital \d+|"
    r"controllers?|processors?|data subjects?|data protection officer|dpo|supervisory authorit\w+|"
    r"competent authorit\w+|market surveillance|notified bod\w+|csirts?|enisa|essential entit\w+|important entit\w+|"
    r"financial entit\w+|providers?|deployers?|importers?|distributors?|authori[sz]ed representative|"
    r"personal data|special categor\w+ of (personal )?data|data breach\w*|dpia|impact assessment|lawful basis|"
    r"legitimate interest|ai systems?|ai models?|general-purpose ai|gpai|high-risk|biometric\w*|emotion recognition|"
    r"social scoring|conformity assessment|ce marking|products? with digital elements|vulnerabilit\w+ handling|sbom|"
    r"ict[- ]\w+|incident (?:report\w*|notification)|significant incident|early warning|penetration test\w*|tlpt|"
    r"risk management (?:framework|system)|generative ai|trustworthy ai|cybersecurity)\b", re.IGNORECASE)


def names_regulation(text: str | None) -> bool:
    """Whether a text names an act or framework of the packs, one of their actors, or a thing they regulate.

    >>> names_regulation("Under NIS2 the early warning is due within 24 hours."), names_regulation(
    ...     "Internships: apply for internships in the film industry.")
    (True, False)
    """
    return bool(text and _DOMAIN.search(text))


#: how a referral opens once the clause before it is cut off ("..., so check with counsel"): never content of its own
_REFERRAL_LEAD = (r"(?:(?:so|but|and|then|please|always)\s+)?(?:(?:you|i)(?:'d| would| should| may| might| could)"
                  r"(?: want to)?\s+|(?:it'?s|it is) (?:best|worth|wise) to\s+|best to\s+|do\s+)?")
_NON_REGULATORY = re.compile(
    r"^\s*(hi|hello|hey|dear\b.*|thanks?( you)?|thank you|sure|of course|great question|good question|certainly|"
    r"absolutely|i hope (this|that) helps|hope this helps|let me know\b.*|feel free\b.*|happy to help\b.*|"
    r"glad to help\b.*)\W*$|"
    r"\b(i am|i'm) not a lawyer\b|\b(not|isn't|is not) legal advice\b|\bconsult (a|your|with)\b|"
    r"\bcheck with (a|your)\b|\btalk to (a|your)\b|\bspeak (to|with) (a|your)\b|\bseek (legal|professional)\b|"
    r"\bask (a|your) (lawyer|counsel|dpo|legal)\b|"
    rf"^\W*{_REFERRAL_LEAD}(check|consult|confirm|talk|speak|ask)( it| this| that)? (with|to) (a |an |your |legal )?"
    r"(lawyer|counsel|attorney|solicitor|legal (team|adviser|advisor|department)|dpo|data protection officer|"
    r"adviser|advisor)\b|"
    rf"^\W*{_REFERRAL_LEAD}check (the|your) (local|national) (figures|law|rules|requirements|transposition)\b",
    re.IGNORECASE)
_MODAL_RE = re.compile(_MODAL, re.IGNORECASE)
_ACTOR_RE = re.compile(_ACTOR, re.IGNORECASE)
_NUMBER_RE = re.compile(r"\d|\b(one|two|three|four|five|six|seven|ten|twelve|twenty|thirty|seventy)\b",
                        re.IGNORECASE)


_FIGURE = re.compile(r"(?<![A-Za-z])\d|\b(?:one|two|three|four|five|six|seven|ten|twelve|twenty|thirty|seventy)\b",
                     re.IGNORECASE)  # a figure, not the digit of a name such as "NIS2"


def _spans(text: str, pattern: re.Pattern, base: int = 0) -> list[tuple[int, int]]:
    out, pos = [], 0
    for m in pattern.finditer(text):
        out.append((base + pos, base + m.start()))
        pos = m.end()
    out.append((base + pos, base + len(text)))
    return out


_ROLE = re.compile(r"(?:providers?|deployers?|controllers?|processors?|importers?|distributors?|manufacturers?|"
                   r"essential|important|users?|developers?|operators?|entit(?:y|ies)|authorit(?:y|ies)|csirts?|enisa)",
                   re.IGNORECASE)
_LAST_WORD = re.compile(r"([\w-]+)\W*$")
_FIRST_WORD = re.compile(r"^\W*([\w-]+)")


def _clause_cuts(sentence: str, base: int) -> list[tuple[int, int]]:
    """The sentence's pieces between clause cuts (:data:`_CLAUSE_CUT`), leaving whole what sits inside brackets
    ("(microenterprises and entities under Article 16 are excluded)") and two roles joined by "and" / "or"
    ("providers and deployers alike": one noun phrase, whatever follows it)."""
    depth, inside = 0, [False] * (len(sentence) + 1)
    for i, ch in enumerate(sentence):
        depth += ch in "(["
        depth -= ch in ")]" and depth > 0
        inside[i] = depth > 0
    out, pos = [], 0
    for m in _CLAUSE_CUT.finditer(sentence):
        before, after = _LAST_WORD.search(sentence[:m.start()]), _FIRST_WORD.match(sentence[m.end():])
        if inside[m.start()] or (before and after and re.fullmatch(r"(?:and|or)", m.group(0).strip(" ,"), re.I)
                                 and _ROLE.fullmatch(before.group(1)) and _ROLE.fullmatch(after.group(1))):
            continue
        out.append((base + pos, base + m.start()))
        pos = m.end()
    out.append((base + pos, base + len(sentence)))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _substantive(part: str) -> bool:
    """A clause that can stand as a claim of its own: a verb and a few words with an obligation, quantity or actor
    ("an essential or important entity" is one noun phrase, not two claims) — or a figure whose verb is shared with
    the clause before ("... within 24 hours and the notification within 72 hours")."""
    lead = _LEAD_PHRASE.match(part).group(0)  # its verb must come before a dash or colon: "number of requests — a
    return len(part.split()) >= 4 and bool(_VERB.search(lead) or _PRONOUN_VERB.match(part)  # surge may qualify" is
                                           or _FIGURE.search(part)) and bool(  # the noun phrase before's tail
        _MODAL_RE.search(part) or _NUMBER_RE.search(part) or _ACTOR_RE.search(part))


_LEAD_PHRASE = re.compile(r"(?:[^:]{0,30}:\s*)?[^:;—–(]*")  # past a short lead-in ("In principle yes: ...")


def _merge_fragments(text: str, parts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut points are kept only between substantive clauses: a fragment joins the clause before it (the first one
    the clause after it), so "an essential or important entity" stays one noun phrase — except a noun phrase that
    opens a contrast ("..., but the other steps and the rest still apply"): it is the subject of the clause after it
    ("..., but only where strictly necessary" still qualifies the clause before)."""
    out: list[tuple[int, int]] = []
    pending: tuple[int, int] | None = None
    for a, b in parts:
        contrast = (bool(out) and pending is None and bool(_CONTRAST.search(text[out[-1][1]:a]))
                    and bool(_NOUN_PHRASE.match(text[a:b])))  # "but only where ..." qualifies the clause before
        if _NON_REGULATORY.search(text[a:b]):  # a referral stands alone: it never hides a clause, nor joins one
            if out and pending is None and _NON_REGULATORY.search(text[slice(*out[-1])]):
                out[-1] = (out[-1][0], b)  # "I'm not a lawyer, so please consult ...": one hedge
            else:
                out += [pending, (a, b)] if pending is not None else [(a, b)]
            pending = None
            continue
        if pending is not None:
            a, pending = pending[0], None
        if _substantive(text[a:b]):
            out.append((a, b))
        elif out and not contrast:
            out[-1] = (out[-1][0], b)
        else:
            pending = (a, b)
    if pending is not None:
        if out and out[-1][1] <= pending[0]:  # a trailing fragment: it closes the clause before it
            out[-1] = (out[-1][0], pending[1])
        else:
            out = [(pending[0], out[0][1])] + out[1:] if out else [pending]
    return out


_CONTRAST = re.compile(r"\b(?:but|whereas|while)\b", re.IGNORECASE)
_NOUN_PHRASE = re.compile(r"(?:the|a|an|its|their|your|our|other|all|any|most|some|each|every)\b", re.IGNORECASE)


_DETERMINER = re.compile(r"\b(?:a|an|the)\b", re.IGNORECASE)


def _stem(first: str) -> str:
    """The part of a sentence's first clause that later verb-less list items share: up to the noun phrase that holds
    its first figure ("X sends the CSIRT an early warning within 24 hours" → "X sends the CSIRT "), or up to its
    verb; "" when the clause has no verb."""
    verb = _VERB.search(first)
    if not verb:
        return ""
    fig = _FIGURE.search(first, verb.end())
    dets = [m.start() for m in _DETERMINER.finditer(first, verb.end(), fig.start())] if fig else []
    return first[: dets[-1] if dets else verb.end()].rstrip() + " "


_LIST_ITEM = re.compile(r"^\W*(?:and\s+|or\s+)?"
                        r"(?:a|an|the|within|by|no later than|at the latest|at least|at most|up to)\b", re.IGNORECASE)
_FINITE = re.compile(rf"\b(?:{_AUXILIARY})\b|\b[a-z]{{3,}}(?<!ss)s\s+(?:the|a|an|that|this|these|those|any|all|its|"
                     r"their|your|our|it|them|no|every|each)\b", re.IGNORECASE)  # or a verb before its object


def _contexts(text: str, pieces: list[tuple[int, int]]) -> list[str]:
    """For each piece of one sentence: the stem of the sentence's first piece + the piece, when the piece is a list
    item that shares that verb ("..., an incident notification within 72 hours": a noun phrase or a deadline, no
    finite verb of its own); "" otherwise."""
    stem = _stem(text[pieces[0][0]:pieces[0][1]]) if pieces else ""

    def head(a: int, b: int) -> str:  # up to its first figure: "... 14 days after a measure is available" is an item
        fig = _FIGURE.search(text, a, b)
        return text[a:fig.start() if fig else b]

    return ["" if i == 0 or not stem or _FINITE.search(head(a, b)) or _PRONOUN_VERB.match(text[a:b])
            or not _LIST_ITEM.search(text[a:b])
            or _CONTRAST.search(text[pieces[i - 1][1]:a])  # "..., but the rest still apply": a clause of its own
            else stem + re.sub(r"^\W*(?:and|or)\s+", "", text[a:b].lstrip(",;: "), flags=re.IGNORECASE)
            for i, (a, b) in enumerate(pieces)]


#: the reasons a sentence is not a regulatory claim that still leave content unread by the claim check (a greeting, a
#: hedge, a referral or a question back is not content; a sentence with no obligation, figure or actor may be)
_TOO_SHORT = "too short to state anything"
_NO_CONTENT = "no obligation, deadline, amount, actor or permission"
_VERDICT_REASON = "a verdict on the question; the claims with it state the rule"
UNREAD_REASONS = (_NO_CONTENT, _TOO_SHORT, _VERDICT_REASON)


#: an answer's verdict given with a degree ("Mostly not.", "More or less.", "Largely, yes."): it answers the
#: question about the law with a qualification no clause states, so it is a claim the check must read
_HEDGED_VERDICT = re.compile(r"\W*(?:mostly|mainly|largely|partly|partially|in part|more or less|somewhat|sort of|"
                             r"kind of|pretty much|not entirely|not fully)(?:\W+(?:yes|no|not|right|true|correct|"
                             r"so|fine|ok|okay))?\W*", re.IGNORECASE)


def hedged_verdict(text: str) -> bool:
    """Whether ``text`` is only an answer's verdict given with a degree ("Mostly not.", "More or less.")."""
    return bool(_HEDGED_VERDICT.fullmatch(text.strip()))


#: an answer's short verdict on the question, its subject a pronoun: "They do apply.", "It does cover suppliers.",
#: "So NIS2 applies to you.", "That's not what DORA says." -- like "Yes." / "No.", it means what the question makes it
#: mean, and the claims after it state the rule
_VERDICT = re.compile(r"\W*(?:(?:yes|no|so|and|but)\W+)?(?:so|it|they|this|that|these|those|you|we|he|she)\b"
                      r"[^.!?;:]*[.!]?\s*", re.IGNORECASE)
_VERDICT_WORDS = 5
#: a verdict with no verb: a verdict word, then a phrase that opens with a negation, article or preposition ("Likely
#: not the patients.", "Probably not for small firms.") -- never "Yes run the exploit."
_VERBLESS_VERDICT = re.compile(r"\W*(?:likely|unlikely|probably|possibly|maybe|perhaps|not|no|yes|generally|usually|"
                               r"partly|both|neither)\s+(?:not\s+)?(?:the|a|an|for|in|under|to|if|unless|with|from|on|"
                               r"at|by|only|your|their|its)\b[^,;:.!?]*[.!]?\s*", re.IGNORECASE)
#: a verdict that limits or widens ("That's only for government.") states a scope: a claim to read
_SCOPE_WORD = re.compile(r"\b(?:only|just|all|every|any|never|always|none|nothing)\b", re.IGNORECASE)
_APPLY = re.compile(r"\b(?:appl(?:y|ies)|covers?)\b", re.IGNORECASE)  # the verbs of a verdict on scope
_ACTS = re.compile(r"\b(?:gdpr|ai act|nis ?2|dora|cra|nist|csf|rmf|the act|the regulation|the directive)\b",
                   re.IGNORECASE)


def short_verdict(text: str) -> bool:
    """Whether ``text`` is only an answer's verdict on the question: its subject a pronoun, or no verb at all ("Likely
    not the patients."), and no figure, actor, duty or scope of its own.

    >>> [short_verdict(t) for t in ("They do apply.", "It does cover suppliers.", "Likely not the patients.")]
    [True, True, True]
    >>> short_verdict("They must report within 24 hours."), short_verdict("Providers do apply it.")
    (False, False)
    """
    t = text.strip()
    return (len(t.split()) <= _VERDICT_WORDS and bool(_VERDICT.fullmatch(t) or _VERBLESS_VERDICT.fullmatch(t))
            and not _FIGURE.search(t)
            and not names_regulation(_ACTS.sub(" ", t)) and not _MODAL_RE.search(_APPLY.sub(" ", t))
            and not _SCOPE_WORD.search(t))


#: what the law leaves to the reader ("it leaves the restoration method largely to you")
_DISCRETION = re.compile(r"\b(?:leaves?|left|up to|to you|your (?:call|choice|discretion)|discretion|flexib\w*|"
                         r"free to|optional|voluntary)\b", re.IGNORECASE)


def classify(text: str) -> tuple[bool, str]:
    """``(regulatory, reason)`` for one claim.

    >>> classify("Mostly not.")
    (True, '')
    >>> classify("Sure!")
    (False, 'greeting, hedge or referral')
    """
    t = text.strip()
    if not t:
        return False, "empty"
    if hedged_verdict(t):
        return True, ""
    if _NON_REGULATORY.search(t):
        return False, "greeting, hedge or referral"
    if t.endswith("?") and not _MODAL_RE.search(t.rstrip("?")):
        return False, "a question"
    if len(t.split()) < 3:
        return False, _TOO_SHORT
    if short_verdict(t):
        return False, _VERDICT_REASON
    if _MODAL_RE.search(t) or _ACTOR_RE.search(t) or extract_quantities(t):  # a figure, not any digit ("kill -9")
        return True, ""
    if _QUALIFIER.search(t) and _DISCRETION.search(t):  # "it leaves the method largely to you": a degree on the law
        return True, ""
    return False, _NO_CONTENT


def split_claims(text: str) -> list[OutputClaim]:
    """The output's claims in order (see the module docstring)."""
    pieces: list[tuple[int, int]] = []
    contexts: list[str] = []
    for s, e in _spans(text, _SENT_END):
        s, e = _trim(text, s, e)
        if s >= e:
            continue
        sentence = text[s:e]
        parts = [(a, b) for a, b in (_trim(text, a, b) for a, b in _clause_cuts(sentence, s)) if a < b]
        merged = _merge_fragments(text, parts) if len(parts) > 1 else [(s, e)]
        pieces += merged
        contexts += _contexts(text, merged)
    claims = []
    for i, ((s, e), ctx) in enumerate(zip(pieces, contexts)):
        reg, why = classify(ctx or text[s:e])
        claims.append(OutputClaim(index=i, text=text[s:e], start=s, end=e, regulatory=reg, reason=why, context=ctx))
    return claims
