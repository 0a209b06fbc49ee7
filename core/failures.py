"""What kind of fault made a check fail closed: ``infra`` (the machinery broke — a retry may help) or ``output``
(the model answered, but not usably — asking again at temperature 0 gives the same answer).

``infra`` covers connection errors, timeouts (one request, or the whole-check deadline), HTTP errors of the LLM
server (5xx, 429, a wrong model name ...) and crashes of a stage (retrieval, screening, the verifier ...). A verifier
"no" is not a fault at all: it is a judgement, and the verdict carries it in its checks, not in ``failure``.

The reasons are the strings the graph and the agents already write (``"BackendError (<reason>): ..."``,
``"timeout: ..."``, ``"retrieval failed: ..."``), so verdicts stored before the field existed classify the same way.

    >>> failure_kind("coordinator gave no usable answer: BackendError (http_500): HTTP 500 for model 'm'")
    'infra'
    >>> failure_kind("coordinator gave no usable answer: unparseable: no ANSWER line")
    'output'
    >>> failure_kind("timeout: the check took longer than 5 s"), failure_kind(None)
    ('infra', None)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

#: infra: connection / timeout / HTTP error / crash; output: the model's answer could not be used
FailureKind = Literal["infra", "output"]

_BACKEND = re.compile(r"BackendError \((?P<reason>[a-z_0-9]+)\)")
_OUTPUT = re.compile(r"(^|: )(unparseable|prompt)\b")


def failure_kind(reason: str | None) -> FailureKind | None:
    """The kind of a failure reason (``None`` for no failure)."""
    if not reason:
        return None
    m = _BACKEND.search(reason)
    if m:
        return "output" if m.group("reason") == "unparseable" else "infra"
    if _OUTPUT.search(reason):
        return "output"
    return "infra"  # timeouts, stage crashes, anything the guardrail caught on its way to failing closed


def turn_fault_kind(errors: Iterable[str | None]) -> FailureKind | None:
    """The worst kind among failed debate turns' errors: ``infra`` if any turn hit an infrastructure fault."""
    kinds = {failure_kind(e) for e in errors if e}
    return "infra" if "infra" in kinds else ("output" if "output" in kinds else None)
