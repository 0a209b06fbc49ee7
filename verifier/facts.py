"""The one key-fact check: the output's figures (deadlines, amounts, thresholds) against the key facts of the rules
that screening found, run once per check. Screening routes on its findings (a contradiction → fast block) and the
verifier judges the final decision against the same findings, so the two can never disagree about scope.

A fact is in scope when its rule was screened, the rule is enabled, and the fact is checkable against the text
(:meth:`KeyFact.in_scope`: where two acts state different values under one term, the text must name the act).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from mad_guardrails.policies.schema import KeyFact, Rule
from mad_guardrails.verifier.numbers import NumberFinding, check_numbers


class FactFinding(NumberFinding):
    """A :class:`NumberFinding` with the rule whose key fact it is."""

    rule_id: str = ""


class FactCheck(BaseModel):
    """The key facts in scope for one check and what the output says of each."""

    facts: list[KeyFact] = []
    findings: list[FactFinding] = []

    @property
    def contradicted(self) -> list[FactFinding]:
        return [f for f in self.findings if f.status == "contradicted"]

    @property
    def consistent(self) -> list[FactFinding]:
        return [f for f in self.findings if f.status == "consistent"]


def scoped_facts(rules: Iterable[Rule], scope_text: str) -> list[tuple[str, KeyFact]]:
    """``(rule_id, fact)`` for every key fact of the enabled ``rules`` that is in scope for ``scope_text``."""
    return [(r.id, f) for r in rules if r.enabled for f in r.key_facts if f.in_scope(scope_text)]


def check_facts(output: str, rules: Sequence[Rule], *, query: str | None = None) -> FactCheck:
    """Check the output against the in-scope key facts of ``rules`` (all facts at once: nearest-term pairing needs
    them together). Findings that the output does not mention are dropped.

    >>> r = Rule(id="nis2.ew", title="Early warning", kind="reporting_deadline", summary="24 h",
    ...          provisions=["nis2:art_23.4.a"], key_facts=[KeyFact(name="early warning", value=24, unit="hours",
    ...          provision="nis2:art_23.4.a", terms=["early warning"])])
    >>> [f.status for f in check_facts("Send the early warning within 72 hours.", [r]).findings]
    ['contradicted']
    """
    scope = "\n".join(x for x in (query, output) if x)
    pairs = scoped_facts(rules, scope)
    facts = [f for _, f in pairs]
    owner = {id(f): rid for rid, f in pairs}
    findings = [FactFinding(**fd.model_dump(exclude={"fact"}), fact=fd.fact, rule_id=owner.get(id(fd.fact), ""))
                for fd in (check_numbers(output, facts) if facts else []) if fd.status != "not_mentioned"]
    return FactCheck(facts=facts, findings=findings)
