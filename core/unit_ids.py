"""Provision identifiers as people write them in text — ``Article 23``, ``art. 5``, ``Annex III``, ``recital 12``,
``GV.OC-01``, ``GOVERN 1.1``, ``GV-1.1-001``, ``art_5.1.c`` — found two ways:

* :func:`names_identifier` (retrieval): *does* a query name a provision? Loose on purpose: a yes only shifts the
  hybrid weights towards lexical matching, so a false yes costs little (any ``XX.YY`` pair, any case, plural
  ``articles``, ``recital``, local ids such as ``art_5.1.c``).
* :func:`find_refs` (policy screening): *which* provisions, as local ids (``art_23``, ``anx_iii``, ``GV.SC-04``,
  ``MEASURE-2.11``). Strict: each id boosts the rules citing it, so only well-formed ids of the known frameworks
  count (CSF function prefixes, case-sensitive NIST ids, Roman annex numbers up to XIII).
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: NIST CSF 2.0 function prefixes (``GV.OC-01``)
CSF_FUNCTIONS = "GV|ID|PR|DE|RS|RC"
#: NIST AI RMF functions (``GOVERN 1.1``)
RMF_FUNCTIONS = "GOVERN|MAP|MEASURE|MANAGE"
#: NIST AI 600-1 suggested-action prefixes (``MG-3.2-005``)
AI600_PREFIXES = "GV|MP|MS|MG"
#: prefixes of the local ids of EU acts (``art_5.1.c``, ``rct_12``, ``anx_iii``)
EU_LOCAL_PREFIXES = "art|rct|anx"

_ROMAN = r"(?:xiii|xii|xi|x|ix|viii|vii|vi|v|iv|iii|ii|i)"

_IDENTIFIER = re.compile(
    rf"\b(?:art(?:icle)?s?\.?\s*\d+|annex\s+[ivxlc]+\b|recital\s*\(?\d+|(?:{EU_LOCAL_PREFIXES})_[0-9a-z]+"
    rf"|[A-Z]{{2}}\.[A-Z]{{2}}(?:-\d{{2}})?|[A-Z]{{2}}-\d+\.\d+-\d{{3}}|(?:{RMF_FUNCTIONS})[ -]\d)",
    re.IGNORECASE,
)

_REF_PATTERNS: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\b(?:article|art\.?)\s*(\d{1,3})\b", re.IGNORECASE), lambda m: f"art_{m.group(1)}"),
    (re.compile(rf"\bannex\s+({_ROMAN})\b", re.IGNORECASE), lambda m: f"anx_{m.group(1).lower()}"),
    (re.compile(rf"\b({CSF_FUNCTIONS})\.([A-Z]{{2}})(?:-(\d{{2}}))?\b"),
     lambda m: f"{m.group(1)}.{m.group(2)}" + (f"-{m.group(3)}" if m.group(3) else "")),
    (re.compile(rf"\b({RMF_FUNCTIONS})\s+(\d{{1,2}})(?:\.(\d{{1,2}}))?\b", re.IGNORECASE),
     lambda m: f"{m.group(1).upper()}-{m.group(2)}" + (f".{m.group(3)}" if m.group(3) else "")),
    (re.compile(rf"\b({AI600_PREFIXES})-(\d{{1,2}}\.\d{{1,2}})-(\d{{3}})\b"), lambda m: m.group(0)),
]


def names_identifier(query: str) -> bool:
    """Does the query name a provision by its identifier?

    >>> names_identifier("What does Article 23 NIS2 require?"), names_identifier("PR.AA-05"), names_identifier("hi")
    (True, True, False)
    """
    return bool(_IDENTIFIER.search(query))


def find_refs(text: str) -> set[str]:
    """Local provision ids referred to explicitly in ``text`` (article numbers, annexes, NIST ids).

    >>> sorted(find_refs("Under Article 23(4) NIS2 and Annex III, see also GV.SC-04 and MEASURE 2.11"))
    ['GV.SC-04', 'MEASURE-2.11', 'anx_iii', 'art_23']
    """
    out: set[str] = set()
    for pat, fmt in _REF_PATTERNS:
        for m in pat.finditer(text):
            out.add(fmt(m))
    return out
