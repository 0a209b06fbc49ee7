"""The verifier: deterministic checks of the coordinator's verdict before it is released.

Checks (each its own module and function, each returning a :class:`mad_guardrails.core.verdict.CheckResult`):

==================== ======================================================================================
``strict_verbatim``  each quote is an exact substring of the unit it cites (:mod:`.verbatim`)
``content_verbatim`` equal after normalising whitespace, quotes, dashes, hyphenation, case (:mod:`.normalize`)
``citation_validity``the cited id exists, was retrieved, and is the unit the quote comes from (:mod:`.citations`)
``number_consistency``the checked output's durations / dates / amounts against the key facts (:mod:`.numbers`)
``entailment``       an NLI model where one is configured, else skipped (:mod:`.entailment`)
==================== ======================================================================================

    >>> from mad_guardrails.core.debate import CoordinatorOutput, ProposedViolation, Quote
    >>> from mad_guardrails.core.units import Evidence
    >>> text = "(a) without undue delay and in any event within 24 hours of becoming aware of the incident"
    >>> v = Verifier(lookup={"nis2:art_23.4.a": text}.get, known=lambda i: i in ("nis2:art_23.4.a", "policy:r1"))
    >>> co = CoordinatorOutput(decision="block", violations=[ProposedViolation(
    ...     rule_id="r1", provisions=["nis2:art_23.4.a"], explanation="72 h is not 24 h",
    ...     quotes=[Quote(doc_id="nis2:art_23.4.a", text="in any event within 24 hours")])])
    >>> ev = [Evidence(unit_id="nis2:art_23.4.a", doc="nis2", text=text, rank=1, score=1.0)]
    >>> rep = v.verify(co, ev, "Send the early warning within 72 hours.", [])
    >>> [(c.name, c.status) for c in rep.checks]  # doctest: +NORMALIZE_WHITESPACE
    [('strict_verbatim', 'pass'), ('content_verbatim', 'pass'), ('citation_validity', 'pass'),
     ('number_consistency', 'skipped'), ('entailment', 'skipped')]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from mad_guardrails.core.debate import Argument, CoordinatorOutput, Quote
from mad_guardrails.core.units import Evidence, id_covers
from mad_guardrails.core.verdict import CheckResult, VerificationReport
from mad_guardrails.policies.schema import KeyFact
from mad_guardrails.verifier.citations import citation_validity, is_policy_id
from mad_guardrails.verifier.entailment import EntailmentChecker, items_from
from mad_guardrails.verifier.facts import FactCheck, FactFinding
from mad_guardrails.verifier.numbers import (
    NumberFinding,
    check_numbers,
    number_consistency,
    numbers_in_evidence_vs_output,
)
from mad_guardrails.verifier.verbatim import (
    MIN_QUOTE_WORDS,
    QuoteCheck,
    check_quote,
    check_quotes,
    clean_id,
    content_verbatim,
    dedupe_quotes,
    strict_verbatim,
)

__all__ = [
    "Verifier", "verify", "failures_for_repair", "strict_verbatim", "content_verbatim", "citation_validity",
    "number_consistency", "check_numbers", "numbers_in_evidence_vs_output", "NumberFinding", "EntailmentChecker",
    "QuoteCheck",
]

Lookup = Callable[[str], "str | None"]
Known = Callable[[str], bool]


class Verifier:
    """Runs every check over a coordinator output.

    ``lookup(unit_id) -> str | None``: full text of a unit (for ``policy:<rule_id>``, the rule's text as shown to
    the agents); ``known(unit_id) -> bool``: whether a unit / policy rule exists; ``nli_model``: NLI cross-encoder id
    or folder, None = entailment skipped.
    """

    def __init__(self, lookup: Lookup, known: Known, nli_model: str | None = None, *,
                 min_quote_words: int = MIN_QUOTE_WORDS, entailment: EntailmentChecker | None = None):
        self.lookup = lookup
        self.known = known
        self.min_quote_words = min_quote_words
        self.entailment = entailment or EntailmentChecker(nli_model)

    # -- single quotes (for the orchestrator: mark violations verified, fix cosmetic near-misses) ----------------
    def check_quote(self, quote: Quote) -> QuoteCheck:
        return check_quote(quote, self.lookup, min_words=self.min_quote_words)

    def quote_verified(self, quote: Quote) -> bool:
        """True when the quote passes strict or content verbatim against the unit it cites."""
        return self.check_quote(quote).content_ok

    def canonical_quote(self, quote: Quote) -> Quote | None:
        """The quote with its text replaced by the exact source text when it is content-equal (a cosmetic near-miss
        becomes strictly verbatim); None when it is not in the cited unit. Elided quotes are returned unchanged."""
        r = self.check_quote(quote)
        if not r.content_ok:
            return None
        if r.status == "content" and r.exact and not any(s in quote.text for s in ("...", "…")):
            return Quote(doc_id=clean_id(quote.doc_id), text=r.exact)
        return quote

    # -- the report -------------------------------------------------------------------------------------------
    def verify(self, coord_output: CoordinatorOutput, evidence: Sequence[Evidence], output_text: str,
               facts: FactCheck | Sequence[KeyFact], arguments: Iterable[Argument] = ()) -> VerificationReport:
        """Run all checks over the coordinator's evidence quotes and its violations' quotes (deduplicated).

        ``facts``: the check's :class:`~mad_guardrails.verifier.facts.FactCheck` (the orchestrator passes the one
        screening made, so the number check is run once per check), or bare key facts (checked here)."""
        co = coord_output
        quotes = dedupe_quotes([*co.evidence, *(q for v in co.violations for q in v.quotes)])
        results = check_quotes(quotes, self.lookup, min_words=self.min_quote_words)
        checks = [
            strict_verbatim(quotes, self.lookup, results=results),
            content_verbatim(quotes, self.lookup, results=results),
            self._citations(co, quotes, evidence),
            self._numbers(co, output_text, facts),
            self.entailment.check(items_from(co, arguments)),
        ]
        return VerificationReport(checks=checks)

    def _citations(self, co: CoordinatorOutput, quotes: list[Quote], evidence: Sequence[Evidence]) -> CheckResult:
        retrieved = {e.unit_id for e in evidence}
        texts: dict[str, str] = {}
        for e in evidence:
            texts[e.unit_id] = texts[e.unit_id] + "\n" + e.text if e.unit_id in texts else e.text
        res = citation_validity(quotes, retrieved, self.known, lookup=self.lookup, retrieved_texts=texts)
        extra = []
        for v in co.violations:
            rid = f"policy:{v.rule_id}" if not is_policy_id(v.rule_id) else clean_id(v.rule_id)
            if v.rule_id.startswith("clause:"):  # a clause the output contradicts, no pack rule: the clause must exist
                if not self.known(clean_id(v.rule_id.split(":", 1)[1])):
                    extra.append(f"[{v.rule_id}] violation names an unknown clause")
            elif not self.known(rid):
                extra.append(f"[{rid}] violation names an unknown policy rule")
            for p in v.provisions:
                if not self.known(clean_id(p)):
                    extra.append(f"[{clean_id(p)}] violation {v.rule_id} lists an unknown provision")
            if not v.quotes:
                extra.append(f"[{rid}] violation {v.rule_id} cites no quote: every violation needs a verbatim quote")
        if not extra:
            return res
        failures = [*res.failures, *extra]
        return res.model_copy(update={"status": "fail", "failures": failures,
                                      "detail": (res.detail + "; " if res.status != "skipped" else "")
                                      + f"{len(extra)} problem(s) with the violations' rules / provisions / quotes"})

    def _numbers(self, co: CoordinatorOutput, output_text: str, facts: FactCheck | Sequence[KeyFact]) -> CheckResult:
        """The output's figures against the key facts, judged against the decision: a contradiction must not be
        released as ``allow``; under ``flag`` / ``block`` it passes (and the detail says whether a violation cites
        the fact's provision)."""
        fc = facts if isinstance(facts, FactCheck) else FactCheck(
            facts=list(facts), findings=[FactFinding(**x.model_dump(exclude={"fact"}), fact=x.fact)
                                         for x in check_numbers(output_text, list(facts))
                                         if x.status != "not_mentioned"])
        if not fc.facts:
            return CheckResult(name="number_consistency", status="skipped", detail="no key facts to check")
        bad, good = fc.contradicted, fc.consistent
        mentioned = len(bad) + len(good)
        cited = [clean_id(p) for v in co.violations for p in (*v.provisions, *(q.doc_id for q in v.quotes))]

        def reported(x: NumberFinding) -> bool:
            return any(id_covers(p, x.fact.provision) or id_covers(x.fact.provision, p) for p in cited)

        detail = (f"{len(fc.facts)} key fact(s): {len(good)} consistent, {len(bad)} contradicted, "
                  f"{len(fc.facts) - mentioned} not mentioned")
        lines = [f"[{x.fact.provision}] {x.explanation}" for x in bad]
        if bad and co.decision == "allow":
            return CheckResult(name="number_consistency", status="fail", score=len(good) / mentioned,
                               failures=[f"{ln}; the verdict allows the output" for ln in lines], detail=detail)
        if bad:
            unrep = [x for x in bad if not reported(x)]
            detail += f"; decision {co.decision}" + (
                f"; not cited by a violation: {', '.join(x.fact.provision for x in unrep)}" if unrep else
                "; every contradiction is cited by a violation") + " | " + " | ".join(lines)
        return CheckResult(name="number_consistency", status="pass", score=(len(good) / mentioned) if mentioned
                           else None, detail=detail)


def verify(coord_output: CoordinatorOutput, evidence: Sequence[Evidence], output_text: str,
           facts: Sequence[KeyFact], arguments: Iterable[Argument] = (), *, lookup: Lookup, known: Known,
           nli_model: str | None = None) -> VerificationReport:
    """One-shot :meth:`Verifier.verify` (builds a Verifier; keep one around to reuse a loaded NLI model)."""
    return Verifier(lookup, known, nli_model).verify(coord_output, evidence, output_text, facts, arguments)


_ADVICE = {
    "strict_verbatim": "Copy every quote character for character from its [doc_id] block (same quotes, dashes, "
                       "spacing).",
    "content_verbatim": "Quote only text that appears in the cited unit, or drop the claim.",
    "citation_validity": "Cite each quote with the [doc_id] of the evidence block it comes from; cite only ids shown "
                         "in the evidence or policy rules; give every violation at least one quote.",
    "number_consistency": "The checked output contradicts a figure of the law: the verdict cannot be allow; cite "
                          "the provision in a violation.",
    "entailment": "Make each claim follow from the quotes cited for it.",
}


def failures_for_repair(report: VerificationReport, *, max_lines: int = 12) -> list[str]:
    """Concise feedback lines for a repair round: each failure of each failed check, then one line of advice per
    failed check. A strict-only failure (content passes) is a cosmetic near-miss and says so.

    >>> rep = VerificationReport(checks=[CheckResult(name="citation_validity", status="fail",
    ...       failures=['[nis2:art_23.4.a] quote belongs to [nis2:art_23.4.b], not [nis2:art_23.4.a]: "..."'])])
    >>> failures_for_repair(rep)[0]
    'citation_validity: [nis2:art_23.4.a] quote belongs to [nis2:art_23.4.b], not [nis2:art_23.4.a]: "..."'
    """
    failed = [c for c in report.checks if c.status == "fail"]
    content = report.get("content_verbatim")
    lines: list[str] = []
    for c in failed:
        for f in c.failures:
            if c.name == "strict_verbatim" and content is not None and f in content.failures:
                continue  # the content line says it already, with the closest span
            lines.append(f"{c.name}: {f}")
    lines = lines[:max_lines]
    if len(lines) == max_lines:
        total = sum(len(c.failures) for c in failed)
        if total > max_lines:
            lines.append(f"... and {total - max_lines} more")
    lines += [f"Fix: {_ADVICE.get(c.name, 'address the failures above')}" for c in failed
              if not (c.name == "strict_verbatim" and content is not None and content.status == "fail"
                      and len(c.failures) == len(content.failures))]
    return lines
