"""Which acts a claim names, so that only their clauses can support or contradict it.

"The maximum GDPR fine is EUR 10 million or 2 % of turnover" is about the GDPR: a NIS2 clause on NIS2's own fines
neither confirms nor refutes it, however close the words. A claim that names no act is checked against every clause
retrieved for it (the claims issue's per-claim evidence); one that names several is checked against each of them.
NIST's AI RMF and its Generative AI Profile (AI 600-1) are read as one family, and "NIST" alone names every NIST
document.

>>> sorted(named_acts("The maximum GDPR fine is EUR 10 million or 2 % of annual turnover"))
['gdpr']
>>> sorted(named_acts("Under NIS 2 and DORA, banks report major ICT-related incidents"))
['dora', 'nis2']
>>> named_acts("You must notify within 72 hours."), named_acts("after we report a big incident under nis2")
(set(), {'nis2'})
>>> of_named_act("nis2:art_34.4", {"gdpr"}), of_named_act("gdpr:art_83.5", {"gdpr"})
(False, True)
>>> of_named_act("nist-ai-rmf:MANAGE-3.2", named_acts("the Generative AI Profile (AI 600-1) says"))
True
"""

from __future__ import annotations

import re

#: doc id → how texts name it (abbreviation, title words, official number)
_NAMES: dict[str, str] = {
    "eu-ai-act": r"\bAI Act\b|\bArtificial Intelligence Act\b|2024/1689",
    "gdpr": r"\bGDPR\b|\bGeneral Data Protection Regulation\b|2016/679",
    "nis2": r"\bNIS ?2\b|2022/2555",
    "dora": r"\bDORA\b|\bDigital Operational Resilience\b|2022/2554",
    "cra": r"\bCRA\b|\bCyber Resilience Act\b|2024/2847",
    "nist-csf-2.0": r"\bCSF\b|\bCybersecurity Framework\b",
    "nist-ai-rmf": r"\bAI RMF\b|\bAI Risk Management Framework\b|\bAI 100-1\b",
    "nist-ai-600-1": r"\b600-1\b|\bGenerative AI Profile\b|\bGAI Profile\b",
    "nist-sp-1270": r"\bSP 1270\b|\bNIST 1270\b",
}
#: names safe to read in any case ("under nis2", "gdpr fines"); "dora" / "cra" in lower case may be other words
_ANY_CASE = ("nist", "gdpr", "nis2")
_PATTERNS = {doc: re.compile(p, re.IGNORECASE if doc.startswith(_ANY_CASE) else 0) for doc, p in _NAMES.items()}
_NIST = re.compile(r"\bNIST\b")
#: documents read as one: a claim naming one may be checked against the other
_FAMILIES = ({"nist-ai-rmf", "nist-ai-600-1"},)


def named_acts(text: str) -> set[str]:
    """Doc ids of the acts ``text`` names (empty when it names none)."""
    out = {doc for doc, p in _PATTERNS.items() if p.search(text)}
    for fam in _FAMILIES:
        if out & fam:
            out |= fam
    if not any(d.startswith("nist") for d in out) and _NIST.search(text):
        out |= {d for d in _NAMES if d.startswith("nist")}
    return out


def of_named_act(unit_id: str, acts: set[str]) -> bool:
    """Whether the unit (``doc:unit``) belongs to one of ``acts``; every unit does when ``acts`` is empty."""
    return not acts or unit_id.split(":", 1)[0] in acts
