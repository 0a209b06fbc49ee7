"""Why a verdict was reached, said in terms of what was checked.

:func:`rationale` builds the verdict's rationale from the checks, not from what a model wrote:

* a **block** names each violated rule and provision, the sentence of the output it objects to and the verified
  quote of the clause;
* a **flag** names the specific doubt: why a decision was demoted (unverified quotes, an allow against the debate,
  a confidence under the mode's threshold ...), which agents argued what and on which clause, and which claims the
  clauses did not settle;
* an **allow** names its supporting quotes (the coordinator's verified evidence, or each claim's entailing clause).

The coordinator's own rationale is kept after that ("Coordinator: ...") only when it agrees with the decision; one
that contradicts it (``The output is consistent with the quoted provision`` under a flag) is set aside and said so.
Only verified quotes are ever printed in quotation marks.

    >>> contradicts("The output is consistent with the quoted provision.", "flag")
    True
    >>> contradicts("The output misstates the deadline of Article 23.", "block")
    False
    >>> contradicts("No violation: the output restates Article 23 correctly.", "allow")
    False
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from mad_guardrails.core.debate import Argument, Quote
from mad_guardrails.core.verdict import cite_quote, hide_unverified

_NEGATED_VIOLATION = re.compile(r"\b(no|not an?|without|does not|doesn't|did not|nothing)\s+(\w+\s+){0,2}?"
                                r"(violat\w*|contradict\w*|breach\w*|prohibit\w*)", re.I)
_VIOLATION = re.compile(r"\b(violat\w*|contradict\w*|breach\w*|prohibit\w*|non-?compliant|misstat\w*|incorrect|"
                        r"wrong|inaccurate|false|unlawful|illegal|infring\w*)\b", re.I)
_COMPLIANT = re.compile(r"\b(consistent with|complies|compliant|in line with|accurately|correctly|is accurate|"
                        r"is correct|agrees with|supported by|no violation|does not violate|not a violation|"
                        r"nothing (?:wrong|to flag)|should be allowed|is allowed)\b", re.I)
_DOUBT = re.compile(r"\b(unclear|uncertain|may|might|could|possibl\w*|not (?:enough|sure)|insufficient|ambiguous|"
                    r"cannot (?:tell|verify|confirm)|unverified|doubt\w*)\b", re.I)

MAX_QUOTE_CHARS = 180


def contradicts(text: str, decision: str) -> bool:
    """Whether a model-written rationale argues against ``decision`` (compliance under a block / flag that voices no
    doubt or violation; a violation under an allow)."""
    t = (text or "").strip()
    if not t:
        return False
    violation = bool(_VIOLATION.search(_NEGATED_VIOLATION.sub(" ", t)))
    compliant = bool(_COMPLIANT.search(t))
    if decision == "allow":
        return violation and not compliant
    if decision == "block":
        return compliant and not violation
    return compliant and not violation and not _DOUBT.search(t)  # a flag: compliance with no doubt voiced


def cite(q: Quote, ok: bool | None = None) -> str:
    """``[id] "text" ✓`` for a verified quote; an unverified one is never printed as a quotation."""
    return cite_quote(q, ok, MAX_QUOTE_CHARS)


def _clip(s: str, n: int = 140) -> str:
    s = " ".join((s or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def final_stances(transcript: Iterable[Argument]) -> dict[str, Argument]:
    """Each agent's last turn that did not fail."""
    out: dict[str, Argument] = {}
    for a in sorted(transcript, key=lambda a: a.round):
        if not a.error:
            out[a.role] = a
    return out


def debate_summary(transcript: list[Argument]) -> str:
    """``prosecutor (violation): "claim" [id] "quote" ✓; defender (...)`` for each agent's final turn."""
    parts = []
    for role, a in final_stances(transcript).items():
        claim = next((c for c in a.claims if c.text.strip()), None)
        s = f"{role} argued {a.stance}"
        if claim is not None:
            s += f' ("{_clip(claim.text)}"'
            q = next((q for q in claim.quotes if q.verified), None) or (claim.quotes[0] if claim.quotes else None)
            s += (f", citing {cite(q)})" if q is not None else ", no quote)")
        parts.append(s)
    failed = sorted({f"{a.role} r{a.round}" for a in transcript if a.error})
    if failed:
        parts.append("failed turns: " + ", ".join(failed))
    return "; ".join(parts)


def rationale(*, decision: str, path: str, model_rationale: str, violations: list[Any], notes: list[str],
              claims: list[Any], transcript: list[Argument], evidence_quotes: list[Quote],
              quote_ok: Callable[[Quote], bool], abstention: str | None = None, confidence: float | None = None) -> str:
    """The verdict's rationale, built from the checks (see the module doc)."""
    notes = [hide_unverified(n) for n in notes]
    parts: list[str] = []
    verified_viols = [v for v in violations if v.verified]
    if decision == "block":
        n, k = len(violations), len(verified_viols)
        parts.append(f"Blocked: {n} violation(s)" + (" backed by verified quotes." if k == n else
                                                     f", {k} of them backed by verified quotes."))
        for v in verified_viols or violations:
            s = f"{v.rule_id}" + (f" ({v.title})" if v.title else "") + f" at {', '.join(v.provisions) or '?'}"
            if v.claim:
                s += f': the output says "{_clip(v.claim)}"'
            q = next((q for q in v.quotes if quote_ok(q)), None)
            if q is not None:
                s += f"; the clause says {cite(q, True)}"
            if v.explanation and v.explanation not in s:
                s += f" ({_clip(v.explanation, 200)})"
            parts.append(s + ".")
    elif decision == "flag":
        if notes:
            parts.append("Flagged for review: " + "; ".join(notes) + ".")
        else:
            parts.append("Flagged for review: the coordinator did not settle it"
                         + (f" (confidence {confidence:.2f})." if confidence is not None else "."))
        for v in violations:
            state = "verified" if v.verified else "NOT verified"
            q = next((q for q in v.quotes if quote_ok(q)), None)
            parts.append(f"Proposed violation {v.rule_id} at {', '.join(v.provisions) or '?'} (quotes {state})"
                         + (f": {cite(q, True)}" if q is not None else "") + ".")
        unsettled = [c for c in claims if c.label == "neutral" and c.claim.regulatory]
        contradicted = [c for c in claims if c.label == "contradicted"]
        for c in contradicted[:2]:
            parts.append(f'The clauses contradict "{_clip(c.claim.text)}"'
                         + (f": {cite(c.against, quote_ok(c.against))}" if c.against else "") + ".")
        if unsettled:
            parts.append("Not settled by the clauses: " + "; ".join(f'"{_clip(c.claim.text, 100)}"'
                                                                    for c in unsettled[:3]) + ".")
        if transcript:
            parts.append("Debate: " + debate_summary(transcript) + ".")
    else:  # allow
        if path == "fast_allow":
            parts.append(f"Allowed: {abstention or 'no relevant regulatory evidence and no policy rule triggered'}.")
        elif path == "verified_allow":
            sup = [c for c in claims if c.label == "entailed"]
            parts.append("Allowed: every regulatory claim is entailed by its clause: " + "; ".join(
                f'"{_clip(c.claim.text, 100)}" by {cite(c.support, quote_ok(c.support))}'
                for c in sup if c.support is not None) + ".")
        else:
            ok = [q for q in evidence_quotes if quote_ok(q)]
            parts.append("Allowed, supported by " + "; ".join(cite(q, True) for q in ok[:3]) + "."
                         if ok else "Allowed.")
            if transcript:
                parts.append("Debate: " + debate_summary(transcript) + ".")
        if notes:
            parts.append("Notes: " + "; ".join(notes) + ".")
    mr = " ".join((model_rationale or "").split())
    if mr and not mr.startswith("Fast path") and path != "verified_allow":  # the claims above are that path's reason
        if contradicts(mr, decision):
            parts.append(f"(The coordinator's rationale contradicted the {decision} and was set aside: "
                         f"{_clip(mr, 160)!r}.)")
        else:
            parts.append(f"Coordinator: {_clip(mr, 300)}")
    elif mr.startswith("Fast path") and decision == "flag":
        parts.append(mr)
    return " ".join(p for p in parts if p).strip()
