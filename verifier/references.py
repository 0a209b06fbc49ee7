"""The provisions a claim cites by number, as unit ids, so its evidence can be read from them first.

Assistants' answers often say where a rule is: "Under Article 33(1) GDPR ...", "(Art. 5(1)(f) AI Act)", "Recital 47",
"Annex III", "PR.PS-05", "MANAGE 3.2". Retrieval may rank another paragraph above the one cited; reading the cited
provision first lets the claim be checked against what it says it restates. An EU reference resolves only when the
claim (or, failing that, the whole output) names exactly one EU act; the NIST identifiers name their framework
themselves. Whether the cited provision supports the claim is still the entailment check's to say: a wrong citation
gives no support, and the claim is left to the debate.

>>> cited_units("Under Article 33(1) GDPR, notify within 72 hours.")
['gdpr:art_33.1']
>>> cited_units("Art. 5(1)(f) bans emotion recognition at work.", scope_text="The EU AI Act says so.")
['eu-ai-act:art_5.1.f']
>>> cited_units("Article 23 requires an early warning.", scope_text="Both NIS2 and DORA apply.")   # which act?
[]
>>> cited_units("Its Platform Security outcomes (PR.PS-05) and MANAGE 3.2 say so; see Recital 47 of the GDPR.")
['nist-csf-2.0:PR.PS-05', 'nist-ai-rmf:MANAGE-3.2', 'gdpr:rct_47']
"""

from __future__ import annotations

import re

from mad_guardrails.verifier.act_names import named_acts

_EU_ACTS = ("eu-ai-act", "gdpr", "nis2", "dora", "cra")
_ARTICLE = re.compile(r"\bArt(?:icle)?s?\.?\s*(\d{1,3}[a-z]?)((?:\s?\(\s*[0-9a-z]{1,5}\s*\))*)", re.IGNORECASE)
_RECITAL = re.compile(r"\bRecitals?\s+(\d{1,3})\b", re.IGNORECASE)
_ANNEX = re.compile(r"\bAnnex\s+([IVX]{1,5})\b")
_CSF = re.compile(r"\b(GV|ID|PR|DE|RS|RC)\.([A-Z]{2})(?:-(\d{2}))?\b")
_RMF = re.compile(r"\b(GOVERN|MAP|MEASURE|MANAGE)[ -](\d{1,2})(?:\.(\d{1,2}))?\b")


def _eu_doc(text: str, scope_text: str) -> str | None:
    for t in (text, scope_text):
        eu = [a for a in named_acts(t) if a in _EU_ACTS] if t else []
        if len(eu) == 1:
            return eu[0]
        if eu:
            return None
    return None


def cited_units(text: str, *, scope_text: str = "") -> list[str]:
    """Unit ids of the provisions ``text`` cites, in order of first mention, without repeats."""
    found: list[tuple[int, str]] = []
    doc = _eu_doc(text, scope_text)
    if doc:
        for m in _ARTICLE.finditer(text):
            parts = re.findall(r"\(\s*([0-9a-z]{1,5})\s*\)", m.group(2), re.IGNORECASE)
            found.append((m.start(), f"{doc}:art_{m.group(1).lower()}" + "".join(f".{p.lower()}" for p in parts)))
        found += [(m.start(), f"{doc}:rct_{m.group(1)}") for m in _RECITAL.finditer(text)]
        found += [(m.start(), f"{doc}:anx_{m.group(1).lower()}") for m in _ANNEX.finditer(text)]
    for m in _CSF.finditer(text):
        found.append((m.start(), f"nist-csf-2.0:{m.group(1)}.{m.group(2)}" + (f"-{m.group(3)}" if m.group(3) else "")))
    for m in _RMF.finditer(text):
        found.append((m.start(), f"nist-ai-rmf:{m.group(1)}-{m.group(2)}" + (f".{m.group(3)}" if m.group(3) else "")))
    out: list[str] = []
    for _, uid in sorted(found):
        if uid not in out:
            out.append(uid)
    return out
