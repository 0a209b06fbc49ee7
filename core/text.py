"""Plain-text normalisation shared across layers: whitespace collapsed.

Other normalisers stay where their purpose differs (each says why):
:func:`mad_guardrails.verifier.normalize.fold` (NFKC, quotes and dashes folded: similarity of quotes) and
:func:`mad_guardrails.policies.screen.normalise_text` (word separators as spaces: keyword phrase matching).

>>> collapse_ws("  within\\n  24\\u00a0hours ")
'within 24 hours'
"""

from __future__ import annotations

import re

_WS = re.compile(r"\s+")


def collapse_ws(text: str) -> str:
    """Every run of whitespace (line wraps, indentation, non-breaking spaces) as one space; the ends stripped."""
    return _WS.sub(" ", text).strip()
