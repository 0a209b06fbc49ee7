"""The debate console's record of a session: one :class:`RunRecord` per check (its timeline of events as shown, its
verdict), written by ``:save`` as JSON (:func:`transcript`) and Markdown (:func:`transcript_markdown`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from mad_guardrails.core.verdict import Verdict, cite_quote


class RunRecord(BaseModel):
    """One check in the console session (what :save writes)."""

    started: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    output: str
    query: str | None = None
    mode: str = "balanced"
    policies: list[str] | None = None
    interjections: list[str] = Field(default_factory=list)
    timeline: list[dict[str, Any]] = Field(default_factory=list, description="events in order, as shown")
    verdict: dict[str, Any] | None = None
    error: str | None = None
    seconds: float | None = None


def transcript(guardrail, runs: list[RunRecord]) -> dict[str, Any]:
    """The session as JSON: the guardrail's profile, config hash and models, and every run."""
    cfg = guardrail.config
    return {"tool": "mad-guardrails console", "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": cfg.profile, "config_hash": cfg.hash(),
            "models": dict(getattr(guardrail.components, "models", {}) or {}),
            "runs": [r.model_dump(mode="json") for r in runs]}


def transcript_markdown(runs: list[RunRecord]) -> str:
    """The session as Markdown: each run's output, interjections, rounds and verdict."""
    L = ["# Debate console transcript", ""]
    for i, r in enumerate(runs, 1):
        L += [f"## Run {i} — mode {r.mode}, policies {', '.join(r.policies) if r.policies else 'all'}", ""]
        if r.query:
            L += [f"**Question:** {r.query}", ""]
        L += ["**Output:**", "", *[f"> {ln}" for ln in r.output.splitlines()], ""]
        for ev in r.timeline:
            if ev["event"] == "interjection":
                L.append(f"- *interjection before round {ev['before_round']}:* {ev['text']}")
        v = Verdict.model_validate(r.verdict) if r.verdict else None
        if v is not None:
            rounds = sorted({a.round for a in v.transcript})
            for rd in rounds:
                L += ["", f"### Round {rd}", ""]
                for a in (a for a in v.transcript if a.round == rd):
                    L.append(f"- **{a.role}** — {a.stance} (confidence {a.confidence:.2f})"
                             + (f" — turn failed: {a.error}" if a.error else ""))
                    for cl in a.claims:
                        L.append(f"  - {cl.text}")
                        L += [f"    - {cite_quote(q)}" for q in cl.quotes]  # ✓ verified; ✗ never quoted
            L += ["", "### Verdict", "", v.explain(evidence=True), ""]
        else:
            L += ["", f"*No verdict: {r.error or 'unknown'}*", ""]
    return "\n".join(L) + "\n"
