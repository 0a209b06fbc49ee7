"""mad-guardrails: a multi-agent-debate guardrail grounded in regulatory text.

One import root for the distribution; the card's folders are its sub-packages (``mad_guardrails.retrieval`` is the
repository's ``retrieval/`` and so on, mapped by ``package-dir`` in ``pyproject.toml``). Layers import one way::

    core ← retrieval ← policies ← agents ← verifier ← guardrails (the app) ← evals

The public API::

    from mad_guardrails import Guardrail
    with Guardrail.from_config("offline") as g:
        verdict = g.check("Under NIS2 you have 72 hours to send the early warning.")
        print(verdict.decision, verdict.explain())

Importing the package loads nothing heavy (no torch, no LangGraph): ``Guardrail`` and ``Verdict`` load on first use.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("mad-guardrails")
except _metadata.PackageNotFoundError:  # a bare checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["Guardrail", "Verdict", "__version__"]


def __getattr__(name: str):
    if name == "Guardrail":
        from mad_guardrails.guardrails.guardrail import Guardrail

        return Guardrail
    if name == "Verdict":
        from mad_guardrails.core.verdict import Verdict

        return Verdict
    raise AttributeError(f"module 'mad_guardrails' has no attribute {name!r}")
