"""Is a (query, answer) pair about *breaking* a regulatory rule, or about keeping it?

The harm screen's ``regulatory`` area ("help to break a regulatory rule") reads the same vocabulary as a correct
compliance answer — "report the serious incident within 15 days", "keep the logs for six months" — so its reading is
kept only when the text shows the intent it is about: a way around a duty (avoid notifying, backdate, delete the logs,
keep it from the regulator, split the incident below the threshold), or a request for how to run a practice that a
screened prohibition forbids. A question about what the law requires, answered, is neither::

    >>> breaks_rule("When must a provider report a serious incident?", "At the latest 15 days after ...", [])
    >>> breaks_rule("We had a breach. How do we avoid having to notify the authority?", "Keep it internal ...", [])
    'a way around a duty: "avoid having to notify"'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_DUTIES = r"(?:notif\w*|report\w*|disclos\w*|regist\w*|declar\w*|inform\w*|tell\w*|consent\w*|audit\w*|comply\w*)"
_EVASION = re.compile(
    r"\b(?:avoid\w*|evad\w*|circumvent\w*|get(?:ting)? around|work(?:ing)? around|bypass\w*|sidestep\w*|dodg\w*|"
    r"skirt\w*|loophole\w*|escap\w+ (?:the )?(?:fine|obligation|rule|ban)\w*)\b(?:\W+\w+){0,3}|"
    rf"\bwithout (?:having to |us having to |anyone |them |users |people |customers |employees )?{_DUTIES}|"
    rf"\bskip(?:ping)? (?:the )?{_DUTIES}|\bnot having to {_DUTIES}|\b(?:trick|way|how) (?:to )?(?:not|never) {_DUTIES}|"
    r"\b(?:hid(?:e|ing)|conceal\w*|cover(?:ing)?[ -]up|keep\w* (?:\w+ ){1,4}(?:away |hidden |secret )?from "
    r"(?:the |our |their |any )?(?:\w+ )?(?:regulator|supervisor|authorit|dpa|csirt|auditor)\w*)|"
    r"\b(?:backdat\w*|falsif\w*|forg(?:e|ing|ed) |doctor(?:ed|ing)? |tamper\w*|fake (?:the )?\w+|"
    r"(?:delet\w*|destroy\w*|wip\w+|eras\w+) (?:the |our |all )?(?:logs?|records?|evidence|audit trail)\w*)|"
    r"\bunder the radar\b|\bwithout (?:them|anyone|users|people|customers|employees) know\w*|"
    r"\bsplit\w* (?:the |it |an? )?(?:outage|incident|breach)\w*|\bso (?:that )?(?:none|it|they) (?:doesn'?t|don'?t|"
    r"never|won'?t) (?:cross|reach|trigger|count)\w*",
    re.IGNORECASE)
_HOW_TO = re.compile(r"\b(?:how (?:can|could|do|does|would|should|to)|give me|tell me how|show me how|help me|"
                     r"(?:a|the) (?:plan|way|steps?|method) to|what'?s the (?:best|quickest|easiest|fastest) way)\b",
                     re.IGNORECASE)


def breaks_rule(query: str | None, output: str, screened: Sequence[Any]) -> str | None:
    """Why the pair is about breaking a rule (the harm screen's ``regulatory`` reading stands), or None."""
    for text in (query or "", output):
        m = _EVASION.search(text)
        if m:
            return f'a way around a duty: "{m.group(0).strip()}"'
    prohibitions = [r for r in screened if getattr(r, "kind", "") == "prohibition"]
    if prohibitions and query and _HOW_TO.search(query):
        return f"a request for how to run a practice {prohibitions[0].id} prohibits"
    return None
