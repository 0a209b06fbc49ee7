"""The guardrail's output: a versioned, JSON-round-trippable :class:`Verdict`.

    >>> v = Verdict(decision="flag", rationale="backend timed out", failure="timeout")
    >>> Verdict.model_validate_json(v.model_dump_json()).decision
    'flag'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.schema import Argument, Quote
from retrieval.units import Evidence

SCHEMA_VERSION = "1.0"

Decision = Literal["allow", "flag", "block"]
CheckStatus = Literal["pass", "fail", "skipped"]


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


class Usage(BaseModel):
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Verdict(BaseModel):
    schema_version: str = SCHEMA_VERSION
    decision: Decision
    path: Literal["fast_allow", "fast_block", "debate", "failure"] = "debate"
    violations: list[Violation] = Field(default_factory=list)
    rationale: str = ""
    confidence: float = Field(ge=0.0, le=1.0, default=0.5)
    abstention: str | None = Field(default=None, description="why the guardrail could not judge, e.g. no evidence")
    failure: str | None = Field(default=None, description="set when a stage failed and the verdict fails closed")
    verification: VerificationReport = Field(default_factory=VerificationReport)
    evidence: list[Evidence] = Field(default_factory=list)
    transcript: list[Argument] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage")
    usage: Usage = Field(default_factory=Usage)
    models: dict[str, str] = Field(default_factory=dict)
    config_hash: str = ""
    mode: Literal["strict", "balanced", "permissive"] = "balanced"
