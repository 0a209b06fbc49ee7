"""Check each debater turn as it arrives: every quote is verified against the unit it cites (the verifier's strict /
content verbatim check) and marked ``verified`` True/False, so no surface shows unverified text as a quotation;
claims that carry nothing (a template placeholder such as ``<one sentence>``, a bare date, empty) are dropped.

    >>> from mad_guardrails.core.debate import Argument, Claim, Quote
    >>> class V:
    ...     def quote_verified(self, q): return q.text in "in any event within 24 hours"
    >>> a = Argument(role="prosecutor", round=1, stance="violation", claims=[
    ...     Claim(text="72 hours is wrong.", quotes=[Quote(doc_id="nis2:art_23.4.a", text="within 24 hours"),
    ...                                              Quote(doc_id="nis2:art_23.4.a", text="within 72 hours")]),
    ...     Claim(text="<one sentence>")])
    >>> b = check_turn(a, V())
    >>> [(q.text, q.verified) for q in b.quotes()], len(b.claims)
    ([('within 24 hours', True), ('within 72 hours', False)], 1)
"""

from __future__ import annotations

from typing import Any

from mad_guardrails.agents.parsing import is_placeholder
from mad_guardrails.core.debate import Argument, Quote


def verify_quote(q: Quote, verifier: Any) -> Quote:
    """``q`` marked with whether it passed (a verifier that crashes counts as not verified)."""
    try:
        ok = bool(verifier.quote_verified(q))
    except Exception:  # an unverifiable quote is not verified
        ok = False
    return q.model_copy(update={"verified": ok})


def check_turn(arg: Argument, verifier: Any) -> Argument:
    """The turn with placeholder / empty claims dropped and every quote marked verified or not."""
    claims = [c.model_copy(update={"quotes": [verify_quote(q, verifier) for q in c.quotes if q.text.strip()]})
              for c in arg.claims if not is_placeholder(c.text)]
    return arg.model_copy(update={"claims": claims})


def turn_counts(arg: Argument) -> tuple[int, int]:
    """(verified quotes, all quotes) of a turn."""
    qs = arg.quotes()
    return sum(1 for q in qs if q.verified), len(qs)
