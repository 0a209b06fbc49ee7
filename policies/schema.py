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

RuleKind = Literal[
    "prohibition",
    "obligation",
    "transparency",
    "reporting_deadline",
    "framework_practice",
    "risk",
    "classification",  # scope / classification rules (e.g. AI Act Art. 6 + Annex III high-risk)
    "timeline",  # application dates of an act (e.g. AI Act Art. 113)
]
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
    requires_any: list[str] = Field(
        default_factory=list,
        description="check the fact only when the output also mentions one of these (case-insensitive), e.g. the "
        "act's names where two acts state different values under the same term (NIS2 final report: one month; "
        "CRA final report on a vulnerability: 14 days); empty = always in scope",
    )

    checkable: bool = Field(
        default=True,
        description="False = informative only: number checkers skip it (a fact whose figure is too easily confused "
        "with others in an output); it still appears in the rule text and its quote is still validated",
    )

    def in_scope(self, text: str) -> bool:
        """True when this fact may be checked against ``text``: it is checkable and, when ``requires_any`` is set,
        ``text`` mentions one of those names.

        >>> KeyFact(name="final report", value=1, unit="months", provision="nis2:art_23.4.d", terms=["final report"],
        ...         requires_any=["NIS2"]).in_scope("CRA: final report within 14 days")
        False
        """
        if not self.checkable:
            return False
        low = text.lower()
        return not self.requires_any or any(a.lower() in low for a in self.requires_any)

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
    pack: str | None = Field(default=None, description="id of the pack the rule came from (set by the loader)")
    act: str | None = Field(default=None, description="doc id of the act (set by the loader from the pack)")


class PolicyPack(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    act: str = Field(description="doc id of the act, e.g. 'eu-ai-act'")
    version: str = "1"
    description: str = ""
    source: str = Field(default="", description="the official text the provisions point into (CELEX / DOI / URL)")
    aliases: list[str] = Field(
        default_factory=list,
        description="names of the act as outputs write them ('NIS2', 'Directive (EU) 2022/2555'); screening boosts "
        "the pack's rules when one is mentioned",
    )
    unverifiable_offline: bool = Field(
        default=False,
        description="True when the act's text is not in the corpus, so provision ids and quotes cannot be checked "
        "(validate reports them as unverifiable, not as errors)",
    )
    unverifiable_reason: str = ""
    disable: list[str] = Field(
        default_factory=list,
        description="rule ids (or pack ids / id prefixes) from earlier sources that this pack switches off",
    )
    rules: list[Rule] = Field(default_factory=list)
