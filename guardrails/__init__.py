"""mad-guardrails: a multi-agent-debate guardrail grounded in regulatory text.

    from guardrails import Guardrail
    g = Guardrail.from_config("offline")
    verdict = g.check("Under NIS2 you have 72 hours to send the early warning.")
    print(verdict.decision, verdict.explain())
"""

from guardrails.verdict import Verdict

__all__ = ["Guardrail", "Verdict"]


def __getattr__(name: str):  # lazy: importing the package must not load torch / langgraph
    if name == "Guardrail":
        from guardrails.guardrail import Guardrail

        return Guardrail
    raise AttributeError(name)
