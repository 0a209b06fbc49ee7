"""Numbers, durations and dates of an output checked against the key facts of the law (:func:`check_numbers`).

What counts as a quantity, and how units compare, is :mod:`mad_guardrails.verifier.quantities`; which quantity a
term states, :mod:`mad_guardrails.verifier.pairing`.

**Comparison with a fact.** A fact (:class:`mad_guardrails.policies.schema.KeyFact`) is *mentioned* when one of its
``terms`` occurs in a sentence of the output together with a quantity of the fact's dimension, paired with it by
clause, order, construction and anchors (:func:`mad_guardrails.verifier.pairing.pair_terms`). Where several facts
match the same words (NIS2 and CRA "final report"), the quantity confirms the fact whose value it equals and is not
held against the others.

The paired value must equal the fact: a statement of what the law requires must match it exactly (an output saying
the GDPR deadline is 48 hours misstates a 72-hour maximum, even though 48 is less). **When unsure, no verdict**: a
quantity found only in *another* clause can confirm a fact (``consistent``) but never contradict it (the finding is
then ``not_mentioned`` and its explanation says why) — a missed contradiction goes to the debate, a false one would
fast-block a correct answer. A qualitative phrase alone ("without undue delay") is not a figure: the fact is then
*not mentioned*, with the phrase in the explanation.

    >>> f = KeyFact(name="early warning deadline", value=24, unit="hours", provision="nis2:art_23.4.a",
    ...             terms=["early warning"])
    >>> [x.status for x in check_numbers("Send the early warning within seventy-two hours.", [f])]
    ['contradicted']
    >>> check_numbers("Send the early warning within seventy-two hours.", [f])[0].explanation
    "output says seventy-two hours (= 72 hours) for 'early warning'; nis2:art_23.4.a says 24 hours"
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.verdict import CheckResult
from mad_guardrails.policies.schema import KeyFact
from mad_guardrails.verifier.pairing import Mention, pair_terms, sentences, term_pattern
from mad_guardrails.verifier.quantities import Quantity, compare, extract_quantities, fact_quantity

# --------------------------------------------------------------------------------------------- findings


class NumberFinding(BaseModel):
    """How the output treats one key fact."""

    fact: KeyFact
    status: Literal["consistent", "contradicted", "not_mentioned"]
    term: str | None = Field(default=None, description="the fact's term as it occurs in the output")
    output_span: str | None = Field(default=None, description="the output's words from the term to the quantity")
    output_value: str | None = None
    expected_value: str = ""
    start: int | None = Field(default=None, description="character offsets of output_span in the output")
    end: int | None = None
    explanation: str = ""


def _fact_terms(fact: KeyFact) -> list[str]:
    return [t for t in (fact.terms or [fact.name]) if t.strip()]


def check_numbers(output_text: str, facts: list[KeyFact]) -> list[NumberFinding]:
    """One :class:`NumberFinding` per fact, in the order given (see the module docstring for the rules).

    >>> fs = [KeyFact(name="early warning", value=24, unit="hours", provision="nis2:art_23.4.a",
    ...               terms=["early warning"]),
    ...       KeyFact(name="incident notification", value=72, unit="hours", provision="nis2:art_23.4.b",
    ...               terms=["incident notification", "full notification"])]
    >>> [x.status for x in check_numbers("An early warning within 24 hours and a full notification within "
    ...                                  "72 hours.", fs)]
    ['consistent', 'consistent']
    >>> [x.status for x in check_numbers("The incident notification is due within 72 hours, and the final report "
    ...                                  "one month later; the early warning goes out without undue delay.", fs)]
    ['not_mentioned', 'consistent']
    """
    parsed: list[Quantity | None] = []
    errors: dict[int, str] = {}
    for i, f in enumerate(facts):
        try:
            parsed.append(fact_quantity(f))
        except ValueError as e:
            parsed.append(None)
            errors[i] = str(e)
    quantities = extract_quantities(output_text)
    # per fact: (status, mention, quantity, note); status "uncertain" = paired across clauses with another value,
    # "ambiguous" = the term is shared with another fact whose value the quantity matches (neither blocks)
    per_fact: dict[int, list[tuple[str, Mention, Quantity, str]]] = {i: [] for i in range(len(facts))}
    patterns = {i: [term_pattern(t) for t in _fact_terms(f)] for i, f in enumerate(facts) if parsed[i] is not None}
    kinds = {i: parsed[i].kind for i in patterns}
    pairs, qualitative_seen = pair_terms(output_text, patterns, kinds, quantities)
    for m, q, is_strong in pairs:
        results = {i: compare(parsed[i], q) for i in m.facts}
        shared_ok = len(m.facts) > 1 and any(r[0] is True for r in results.values())
        for i, (ok, note) in results.items():
            if ok is None:
                continue
            if ok:
                status = "consistent"
                if not is_strong:
                    note = "; ".join(x for x in (note, "stated in another clause") if x)
            elif shared_ok:
                status = "ambiguous"
            elif is_strong:
                status = "contradicted"
            else:
                status = "uncertain"
            per_fact[i].append((status, m, q, note))

    out: list[NumberFinding] = []
    for i, f in enumerate(facts):
        exp = parsed[i]
        if exp is None:
            out.append(NumberFinding(fact=f, status="not_mentioned", explanation=f"cannot check: {errors[i]}"))
            continue
        rows = per_fact[i]
        decided = [r for r in rows if r[0] in ("contradicted", "consistent")]
        if not decided:
            qual = qualitative_seen.get(i)
            if rows:
                status, m, q, _ = rows[0]
                why = ("the term is shared with another key fact whose value it matches" if status == "ambiguous"
                       else "it stands in another clause, so the pairing is unsure")
                expl = (f"output says {q.display(exp)} near {m.text!r}, not compared ({why}); {f.provision} says "
                        f"{exp.text}")
            elif qual:
                expl = (f"output says {qual[0].text!r} for {qual[1]!r} but gives no figure; {f.provision} says "
                        f"{exp.text}")
            else:
                expl = f"output does not state {f.name!r} with a figure"
            out.append(NumberFinding(fact=f, status="not_mentioned", expected_value=exp.text, explanation=expl))
            continue
        status, m, q, note = next((r for r in decided if r[0] == "contradicted"), decided[0])
        a, b = min(m.start, q.start), max(m.end, q.end)
        expl = f"output says {q.display(exp)} for {m.text!r}; {f.provision} says {exp.text}"
        if note:
            expl += f" ({note})"
        out.append(NumberFinding(fact=f, status=status, term=m.text, output_span=output_text[a:b],
                                 output_value=q.display(exp), expected_value=exp.text, start=a, end=b,
                                 explanation=expl))
    return out


def tally_numbers(output_text: str, facts: list[KeyFact]):
    """``(findings, contradicted, consistent, mentioned)`` of the output's figures against ``facts``."""
    found = check_numbers(output_text, facts)
    bad = [x for x in found if x.status == "contradicted"]
    good = [x for x in found if x.status == "consistent"]
    return found, bad, good, len(bad) + len(good)


def number_consistency(output_text: str, facts: list[KeyFact]) -> CheckResult:
    """Fails when the output contradicts any fact; score = consistent / mentioned."""
    if not facts:
        return CheckResult(name="number_consistency", status="skipped", detail="no key facts to check")
    found, bad, good, mentioned = tally_numbers(output_text, facts)
    return CheckResult(
        name="number_consistency", status="fail" if bad else "pass",
        score=(len(good) / mentioned) if mentioned else None,
        failures=[f"[{x.fact.provision}] {x.explanation}" for x in bad],
        detail=f"{len(facts)} key fact(s): {len(good)} consistent, {len(bad)} contradicted, "
               f"{len(facts) - mentioned} not mentioned")


# --------------------------------------------------------------------------------------------- evidence (advisory)

_STOP = set("""a an and any are as at be been being by can for from has have if in into is it its may must no not of on
or shall should such that the their them then there these they this those to under upon was were which while who will
with within without would""".split())
_SEGMENT = re.compile(r"(?<=[.;:!?])\s+|\n+")


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z\-]{2,}", text.lower()) if w not in _STOP}


def numbers_in_evidence_vs_output(output_text: str, evidence_texts: dict[str, str], *,
                                  min_overlap: float = 0.6) -> list[NumberFinding]:
    """Advisory, fact-free comparison: each output sentence stating a duration / date / amount / percentage is
    matched, by the content words around it (up to 12 words before and 8 after, not crossing another quantity of its
    kind), with the evidence segment (sentence, clause or list point) sharing most of them; when that
    segment states a quantity of the same kind and none equals the output's, the finding is ``contradicted``.

    ``evidence_texts``: unit id → text. Findings carry a synthetic :class:`KeyFact` (name ``figure in <id>``,
    provision = the unit id, quote = the segment). Word overlap is a heuristic: use it to inform the debate, not to
    block on its own (key facts of policy rules are the deterministic path).

    >>> ev = {"nis2:art_23.4.a": "(a) without undue delay and in any event within 24 hours of becoming aware of "
    ...                          "the significant incident, an early warning;"}
    >>> [f.status for f in numbers_in_evidence_vs_output(
    ...     "An early warning is due within 72 hours of becoming aware of a significant incident.", ev)]
    ['contradicted']
    """
    segments: list[tuple[str, str, set[str], list[Quantity]]] = []
    for uid, text in evidence_texts.items():
        for seg in _SEGMENT.split(text):
            qs = [q for q in extract_quantities(seg) if not q.qualitative and q.kind != "count"]
            if qs:
                segments.append((uid, seg.strip(), _content_words(seg), qs))
    out: list[NumberFinding] = []
    for s0, s1 in sentences(output_text):
        sent = output_text[s0:s1]
        oqs = [q for q in extract_quantities(sent) if not q.qualitative and q.kind != "count"]
        if not oqs:
            continue
        for i, q in enumerate(oqs):
            lo = max([o.end for o in oqs[:i] if o.kind == q.kind], default=0)
            hi = min([o.start for o in oqs[i + 1:] if o.kind == q.kind], default=len(sent))
            before = re.findall(r"\S+", sent[lo:q.start])[-12:]
            after = re.findall(r"\S+", sent[q.end:hi])[:8]
            words = _content_words(" ".join(before + after))
            if len(words) < 3:
                continue
            scored = [(len(words & w) / len(words), uid, seg, [e for e in eqs if e.kind == q.kind])
                      for uid, seg, w, eqs in segments]
            scored = [x for x in scored if x[3] and x[0] >= min_overlap]
            if not scored:
                continue
            overlap, uid, seg, eqs = max(scored, key=lambda x: x[0])
            results = [compare(e, q) for e in eqs]
            if any(r[0] is None for r in results) and not any(r[0] is True for r in results):
                continue
            ok = any(r[0] is True for r in results)
            e = eqs[0]
            fact = KeyFact(name=f"figure in {uid}", value=e.value if e.kind != "date" else (e.iso or ""),
                           unit={"duration": (e.raw_unit or e.unit), "date": "date", "percent": "percent",
                                 "money": e.unit}.get(e.kind), provision=uid, quote=seg[:300])
            expl = (f"output says {q.display(e)}; {uid} says {', '.join(x.text for x in eqs)} in a passage sharing "
                    f"{overlap:.0%} of the words around it: \"{seg[:160]}\"")
            out.append(NumberFinding(fact=fact, status="consistent" if ok else "contradicted", output_span=sent.strip(),
                                     output_value=q.display(e), expected_value=", ".join(x.text for x in eqs),
                                     start=s0 + q.start, end=s0 + q.end, explanation=expl))
    return out
