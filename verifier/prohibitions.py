"""A claim that permits what a prohibition forbids: "the AI Act allows emotion recognition at work with consent".

The entailment model reads such a claim against the clause of a prohibited practice, but the clause is often a list
point cut from its lead-in ("the use of AI systems to infer emotions ... in the areas of workplace") and states no
prohibition of its own, so the model has nothing to contradict. The policy packs say which rules are prohibitions
and name the practice (``triggers``); a claim that names the practice and reads as a permission — with no negation
and no exception of its own ("except", "unless", "only where", "subject to") — contradicts the rule's provision::

    >>> from mad_guardrails.policies.schema import Rule
    >>> r = Rule(id="x.art5.emotion", title="No emotion recognition at work", summary="banned", kind="prohibition",
    ...          provisions=["eu-ai-act:art_5.1.f"], triggers=["emotion recognition"])
    >>> permits_prohibited("The AI Act allows emotion recognition at work if staff consent.", r)
    'emotion recognition'
    >>> permits_prohibited("Emotion recognition at work is allowed only where it serves medical reasons.", r) is None
    True
    >>> permits_prohibited("Emotion recognition at work is not allowed.", r) is None
    True
"""

from __future__ import annotations

import re

from mad_guardrails.policies.schema import Rule
from mad_guardrails.verifier.claim_signals import coverage, modality, negations

_EXCEPTION = re.compile(r"\b(?:except\w*|unless|exempt\w*|only (?:where|if|when|for|in)|subject to|strictly necessary|"
                        r"provided that|narrow\w*|limited (?:to|cases)|in (?:specific|exceptional) cases)\b",
                        re.IGNORECASE)


def permits_prohibited(claim: str, rule: Rule) -> str | None:
    """The rule trigger a permissive claim names, when ``rule`` is a prohibition; else None."""
    if rule.kind != "prohibition" or not rule.triggers:
        return None
    if modality(claim) != {"option"} or negations(claim) or _EXCEPTION.search(claim):
        return None
    return next((t for t in rule.triggers if re.search(rf"\b{re.escape(t)}", claim, re.IGNORECASE)), None)


def closest_sentence(claim: str, sentences: list[str]) -> str | None:
    """The sentence of a provision that shares most with the claim (the quote a block shows)."""
    return max(sentences, key=lambda s: coverage(claim, s), default=None)
