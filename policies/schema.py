"""Schema of a policy pack (YAML in ``policies/packs/``) and of one rule.

    >>> r = Rule(id="nis2.incident.early_warning", title="Early warning within 24 hours", kind="reporting_deadline",
    ...          summary="Essential and important entities send an early warning within 24 hours.",
    ...          provisions=["nis2:art_23.4.a"], severity="high", default_action="block",
    ...          binds=["essential entity", "important entity"],
    ...          key_facts=[KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a")])
    >>> r.key_facts[0].as_text()
    'early warning deadline: 24 hours'
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RuleKind = Literal["prohibition", "obligation", "transparency", "reporting_deadline", "framework_practice", "risk"]
Severity = Literal["low", "medium", "high", "critical"]


class KeyFact(BaseModel):
    """A fact the verifier can check mechanically (deadline, threshold, count)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: float | int | str
    unit: str | None = Field(default=None, description="hours, days, months, percent, EUR, count ...")
    provision: str = Field(description="unit id that states the fact")
    quote: str | None = Field(default=None, description="verbatim words of the provision that state it")
    terms: list[str] = Field(
        default_factory=list,
        description="phrases that name the fact in an output (e.g. 'early warning'); a number of the same unit near "
        "one of them is compared with value",
    )

    def as_text(self) -> str:
        v = int(self.value) if isinstance(self.value, float) and self.value.is_integer() else self.value
        return f"{self.name}: {v}{' ' + self.unit if self.unit else ''}"


class RuleExample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    label: Literal["violates", "respects"]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    summary: str
    kind: RuleKind
    provisions: list[str] = Field(min_length=1, description="unit ids, down to the point where it exists")
    severity: Severity = "medium"
    default_action: Literal["block", "flag"] = "flag"
    binds: list[str] = Field(default_factory=list)
    applies_from: date | None = None
    key_facts: list[KeyFact] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list, description="keywords / phrases that make the rule a candidate")
    examples: list[RuleExample] = Field(default_factory=list)
    enabled: bool = True


class PolicyPack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    act: str = Field(description="doc id of the act, e.g. 'eu-ai-act'")
    version: str = "1"
    description: str = ""
    rules: list[Rule]
