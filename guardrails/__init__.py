"""The application layer: the :class:`Guardrail` API, the LangGraph orchestrator, profiles, CLI, console and audits.

It sits on top of every other layer (core ← retrieval ← policies ← agents ← verifier ← guardrails); nothing below
imports it. The public names are re-exported by the root package: ``from mad_guardrails import Guardrail``.
"""
