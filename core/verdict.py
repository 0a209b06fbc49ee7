"""The guardrail's output: a versioned, JSON-round-trippable :class:`Verdict`.

    >>> v = Verdict(decision="flag", rationale="backend timed out", failure="timeout")
    >>> Verdict.model_validate_json(v.model_dump_json()).decision
    'flag'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from mad_guardrails.core.debate import Argument, Quote
from mad_guardrails.core.claims import ClaimCheck
from mad_guardrails.core.failures import FailureKind, failure_kind, turn_fault_kind
from mad_guardrails.core.errors import InputError
from mad_guardrails.core.injection import InjectionSpan
from mad_guardrails.core.units import Evidence

SCHEMA_VERSION = "1.1"  # 1.1: claims, verified_allow path, violation claim + span

Decision = Literal["allow", "flag", "block"]
CheckStatus = Literal["pass", "fail", "skipped"]
#: How the verdict was reached (the graph's terminal paths).
Path = Literal["fast_allow", "verified_allow", "fast_block", "debate", "failure"]
#: The check modes, the one list every surface validates against (modes move thresholds, never code paths).
Mode = Literal["strict", "balanced", "permissive"]
MODES: tuple[str, ...] = ("strict", "balanced", "permissive")


def check_mode(mode: str, *, where: str | None = None) -> str:
    """``mode`` if it is one of :data:`MODES`, else an :class:`InputError` that lists them.

    >>> check_mode("strict")
    'strict'
    """
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}", where=where, fix=f"use one of {', '.join(MODES)}")
    return mode


def cite_quote(q: Quote, ok: bool | None = None, max_chars: int = 180) -> str:
    """A quote for people: ``[id] "text" ✓`` when it verified; an unverified or unchecked one is never printed as a
    quotation.

    >>> cite_quote(Quote(doc_id="nis2:art_23.4.a", text="within 24 hours", verified=True))
    '[nis2:art_23.4.a] "within 24 hours" ✓'
    >>> cite_quote(Quote(doc_id="gdpr:art_5.1.e", text="invented", verified=False))
    '[gdpr:art_5.1.e] ✗ (not found in the clause)'
    """
    ok = q.verified if ok is None else ok
    if ok:
        text = q.text if len(q.text) <= max_chars else q.text[: max_chars - 1] + "…"
        return f'[{q.doc_id}] "{text}" ✓'
    return f"[{q.doc_id}] " + ("✗ (not found in the clause)" if ok is False else "(quote not checked)")


def hide_unverified(note: str) -> str:
    """A verifier failure / note with the text of failed quotes taken out: only verified text is ever shown in
    quotation marks.

    >>> hide_unverified('[gdpr:art_5] not in the cited unit (closest 0.42): "invented text" vs "real text"')
    '[gdpr:art_5] not in the cited unit'
    """
    import re

    note = re.sub(r'\s*\(closest [\d.]+\):\s*"[^"]*"\s*vs\s*"[^"]*"', "", note)
    return re.sub(r'"[^"]*"', "(text not shown)", note)


def transcript_lines(transcript: list[Argument], indent: str = "   ") -> list[str]:
    """The debate, one line per claim: round, agent, stance, claim, each quote ✓/✗ (:func:`cite_quote`)."""
    out = []
    for a in sorted(transcript, key=lambda a: (a.round, a.role)):
        head = f"{indent}r{a.round} {a.role} [{a.stance} {a.confidence:.2f}]"
        if a.error:
            out.append(f"{head} failed: {a.error[:100]}")
        elif not a.claims:
            out.append(f"{head} (no claim)")
        for c in [] if a.error else a.claims:
            qs = "; ".join(cite_quote(q) for q in c.quotes)
            out.append(f"{head} {c.text}" + (f" — {qs}" if qs else " — no quote"))
    return out


class CheckResult(BaseModel):
    """One verifier check (strict verbatim, content verbatim, citation validity, numbers, entailment)."""

    name: str
    status: CheckStatus
    score: float | None = Field(default=None, description="share of items that passed, when the check counts items")
    failures: list[str] = Field(default_factory=list, description="human-readable reasons, one per failed item")
    detail: str = ""


class VerificationReport(BaseModel):
    checks: list[CheckResult] = Field(default_factory=list)
    repaired: bool = Field(default=False, description="a repair round ran because a check failed")

    @property
    def passed(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def get(self, name: str) -> CheckResult | None:
        return next((c for c in self.checks if c.name == name), None)


class Violation(BaseModel):
    rule_id: str
    title: str = ""
    provisions: list[str] = Field(default_factory=list)
    severity: Literal["low", "medium", "high", "critical"] = "medium"
    explanation: str = ""
    quotes: list[Quote] = Field(default_factory=list)
    verified: bool = Field(default=False, description="every quote passed strict or content verbatim")
    claim: str | None = Field(default=None, description="the sentence of the output this violation objects to")
    span: tuple[int, int] | None = Field(default=None, description="its character span in the output")


class Usage(BaseModel):
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Verdict(BaseModel):
    schema_version: str = SCHEMA_VERSION
    decision: Decision
    path: Path = "debate"
    violations: list[Violation] = Field(default_factory=list)
    rationale: str = ""
    confidence: float = Field(ge=0.0, le=1.0, default=0.5)
    abstention: str | None = Field(default=None, description="why the guardrail could not judge, e.g. no evidence")
    failure: str | None = Field(default=None, description="set when a stage failed and the verdict fails closed")
    failure_kind: FailureKind | None = Field(
        default=None, description="infra (connection, timeout, HTTP error, crash: a retry may help) or output (the "
        "model's answer was unusable), for a failure or for failed debate turns; None when nothing failed "
        "(core/failures.py)")
    verification: VerificationReport = Field(default_factory=VerificationReport)
    evidence: list[Evidence] = Field(default_factory=list)
    claims: list[ClaimCheck] = Field(default_factory=list, description="each claim of the output vs the clauses")
    transcript: list[Argument] = Field(default_factory=list)
    injection: list[InjectionSpan] = Field(default_factory=list, description="spans of the output that address the "
                                           "judges (verifier/injection.py): removed from what the agents saw; an "
                                           "output with one is never allowed")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    usage: Usage = Field(default_factory=Usage)
    models: dict[str, str] = Field(default_factory=dict)
    config_hash: str = ""
    mode: Mode = "balanced"
    # audit trail (guardrails/trail.py stamps them; defaults keep older verdicts readable)
    item_id: str | None = Field(default=None, description="the caller's id of the checked item (check_many, audits)")
    input_hash: str = Field(default="", description="sha256 of the checked output + query, 16 hex")
    created: str = Field(default="", description="when the verdict was made, ISO 8601 UTC")
    version: str = Field(default="", description="mad-guardrails package version that made it")
    index_hash: str = Field(default="", description="hash of the retrieval index it searched")
    trace_id: str = Field(default="", description="the OpenTelemetry trace id of the check, or a random id")
    request_id: str = Field(default="", description="the service request that asked for it (x-request-id; the "
                                                    "access log's request_id), '' outside the service")

    @model_validator(mode="after")
    def _classify_failure(self) -> Verdict:
        """Derive ``failure_kind`` from ``failure`` / the failed turns when it was not given (old verdicts too)."""
        if self.failure_kind is None:
            self.failure_kind = failure_kind(self.failure) or turn_fault_kind(a.error for a in self.transcript)
        return self

    @classmethod
    def failed(cls, reason: str, *, action: Literal["flag", "block"] = "flag", **fields) -> Verdict:
        """The fail-closed verdict (the only place one is built): ``action`` (``flag`` unless the config says
        ``block``), path ``failure``, confidence 0 and the reason in ``failure`` and the rationale.

        >>> Verdict.failed("timeout: the check took longer than 5 s").decision
        'flag'
        """
        return cls(decision=action, path="failure", failure=reason, confidence=0.0,
                   rationale=f"Failed closed: {reason}", **fields)

    # -- rendering for people ------------------------------------------------------------------------------
    def claims_summary(self) -> str:
        """The claim check in one line, the head of the per-claim lines in ``explain()`` and the console."""
        n = {k: sum(1 for c in self.claims if c.label == k) for k in ("entailed", "contradicted", "neutral")}
        return (f"Claims (the claim check: {n['entailed']} entailed, {n['contradicted']} contradicted, "
                f"{n['neutral']} not settled):")

    def explain(self, *, evidence: bool = False) -> str:
        """A plain-text (Markdown) explanation: decision, why, each violation with its verified quotes, the
        verifier's checks, and how the verdict was reached.

        >>> print(Verdict(decision="allow", path="fast_allow", rationale="Nothing relevant.").explain())
        ... # doctest: +ELLIPSIS
        **ALLOW** (confidence 0.50, path fast_allow, mode balanced)
        ...
        """
        lines = [f"**{self.decision.upper()}** (confidence {self.confidence:.2f}, path {self.path}, mode {self.mode})"]
        if self.failure:
            lines.append(f"Failed closed ({self.failure_kind or 'infra'} fault): {self.failure}")
        if self.abstention:
            lines.append(f"Abstention: {self.abstention}")
        if self.rationale:
            lines.append(f"Why: {self.rationale}")
        for i, v in enumerate(self.violations, 1):
            lines.append(f"{i}. [{v.severity}] {v.rule_id}{' — ' + v.title if v.title else ''} "
                         f"({', '.join(v.provisions)}){'' if v.verified else ' — quotes NOT verified'}")
            if v.claim:
                where = f" (characters {v.span[0]}–{v.span[1]})" if v.span else ""
                lines.append(f'   objects to: "{v.claim}"{where}')
            if v.explanation:
                lines.append(f"   {v.explanation}")
            for q in v.quotes:
                lines.append("   " + cite_quote(q, q.verified if q.verified is not None else v.verified))
        if self.injection:
            lines.append(f"Injection: {len(self.injection)} span(s) of the output address the reviewers "
                         "(removed from what the agents saw; never allowed):")
            lines += [f"   {s.describe()}" for s in self.injection]
        if self.claims:
            lines.append(self.claims_summary())
            lines += [f"   {c.line()}" for c in self.claims]
        if self.transcript:
            lines.append("Transcript:")
            lines += transcript_lines(self.transcript)
        if self.verification.checks:
            lines.append("Verifier: " + "; ".join(
                f"{c.name} {c.status}" + (f" ({c.score:.2f})" if c.score is not None else "")
                + (f" [{c.detail}]" if c.name == "number_consistency" and c.detail else "")  # key facts, not claims
                for c in self.verification.checks) + (" (after one repair round)" if self.verification.repaired else ""))
            for c in self.verification.checks:
                for f in c.failures[:3]:
                    lines.append(f"   {c.name}: {hide_unverified(f)}")
        if evidence and self.evidence:
            lines.append("Evidence:")
            lines += [f"   {e.rank}. [{e.unit_id}] {e.heading} (relevance "  # the console's scale
                      f"{e.relevance if e.relevance is not None else e.score:.2f})" for e in self.evidence]
        t = self.timings.get("total")
        lines.append(f"LLM calls {self.usage.llm_calls}, tokens {self.usage.prompt_tokens}+{self.usage.completion_tokens}"
                     + (f", {t:.2f} s" if t is not None else ""))
        return "\n".join(lines)
