"""Claim by claim: is each regulatory claim of the output entailed, contradicted, or not settled by the clauses?

For every claim (:mod:`~mad_guardrails.verifier.claims`) the caller retrieves the clauses that may decide it; here
each clause is cut into sentences (verbatim substrings, so a sentence quoted as support verifies strictly) and every
(sentence, claim) pair is scored by an entailment model (the project's domain cross-encoder offline, a hub NLI
model on the gpu profile). A claim's result is its best entailing and its best contradicting sentence::

    >>> class Model:  # scores by shared words, for the example only
    ...     def predict(self, pairs):
    ...         return [{"entailed": 0.9 if "24 hours" in h and "24 hours" in p else 0.05,
    ...                  "contradicted": 0.9 if "72 hours" in h and "24 hours" in p else 0.05, "neutral": 0.05}
    ...                 for p, h in pairs]
    >>> ev = [Evidence(unit_id="nis2:art_23.4.a", doc="nis2", rank=1, score=1.0,
    ...                text="(a) without undue delay and in any event within 24 hours of becoming aware, an early warning")]
    >>> from mad_guardrails.verifier.claims import split_claims
    >>> [c] = split_claims("The early warning is due within 72 hours.")
    >>> r = check_claims([c], [ev], Model())[0]
    >>> r.label, r.against.doc_id
    ('contradicted', 'nis2:art_23.4.a')

Thresholds (``entail_threshold``, ``contradict_threshold``) come from the model's calibration on its dev split,
shifted by the check's mode; a claim that clears neither is ``neutral`` (not settled: the debate decides).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from mad_guardrails.agents.grammar import sentences
from mad_guardrails.core.claims import ClaimCheck, ClaimLabel, OutputClaim
from mad_guardrails.core.debate import Quote
from mad_guardrails.core.units import Evidence
from mad_guardrails.verifier.act_names import named_acts, of_named_act
from mad_guardrails.verifier.claim_signals import (
    added_conditions,
    confirms_contradiction,
    coverage,
    differences,
    exception_follows,
    restates,
    restates_clause,
    states_figures,
    without_answer_lead,
)
from mad_guardrails.verifier.claims import hedged_verdict
from mad_guardrails.verifier.completeness import left_out
from mad_guardrails.verifier.references import cited_units


class EntailmentModel(Protocol):
    """(premise, hypothesis) pairs → probabilities of ``entailed`` / ``contradicted`` / ``neutral``."""

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]: ...


def windows(sentence: str, *, max_words: int = 60, overlap: int = 20) -> list[str]:
    """A long sentence as overlapping spans of at most ``max_words`` words (verbatim substrings), so the figure at the
    end of a 90-word sentence ("..., and, in any event, not later than 15 days after ...") is still read.

    >>> [len(w.split()) for w in windows(" ".join(f"w{i}" for i in range(100)), max_words=60, overlap=20)]
    [60, 60]
    """
    words = list(re.finditer(r"\S+", sentence))
    if len(words) <= max_words:
        return [sentence]
    out, start = [], 0
    while True:
        end = min(start + max_words, len(words))
        out.append(sentence[words[start].start():words[end - 1].end()].rstrip(",;: "))
        if end == len(words):
            return out
        start = max(end - overlap, len(words) - max_words) if end + max_words - overlap > len(words) else end - overlap


def claim_premises(evidence: Sequence[Evidence], *, units: int = 3, per_unit: int = 6,
                   max_words: int = 60) -> list[tuple[str, str]]:
    """``(unit_id, sentence)`` of the best ``units`` regulation units, at most ``per_unit`` sentences each (a
    sentence longer than ``max_words`` read as overlapping windows, each counted)."""
    out: list[tuple[str, str]] = []
    for e in [e for e in evidence if e.source == "regulation"][:units]:
        sents = sentences(e.text, max_words=10_000) or ([e.text.strip()] if e.text.strip() else [])
        out += [(e.unit_id, w) for s in sents for w in windows(s, max_words=max_words)][:per_unit]
    return out


def scope_acts(output: str, question: str | None = None) -> set[str]:
    """The acts a case is about when a claim names none: those the output names, else those the question names
    ("after we report a big incident under nis2, is there more paperwork?" answered without naming NIS2 is read
    against NIS2, not DORA's look-alike final report).

    >>> sorted(scope_acts("You send a final report later.", "after a big incident under nis2, what then?"))
    ['nis2']
    >>> sorted(scope_acts("Under DORA, yes.", "does NIS2 apply to banks?"))
    ['dora']
    """
    return named_acts(output) or (named_acts(question) if question else set())


def claim_evidence(retriever, claims: Sequence[OutputClaim], query: str | None, k: int, *,
                   scope_text: str = "", scope: set[str] | None = None) -> list[list[Evidence]]:
    """Each claim's own evidence: the retriever's top ``k`` for the question and the claim together, searched within
    the acts the claim names (else those of :func:`scope_acts`: the output's, else the question's), claims of the
    same acts in one batch. A claim that cites a provision the index holds ("Article 33(1) GDPR", "PR.PS-05") gets
    that provision's best paragraphs first (at most ``k - 1``), then the rest of its search. ``scope``: those acts
    when the caller has them already (the graph passes the same set to :func:`check_claims`)."""
    scope = scope_acts(scope_text, query) if scope is None else scope
    acts = [tuple(sorted(named_acts(cl.stated) or scope)) for cl in claims]
    held = getattr(retriever, "has_units", None)  # a retriever that cannot say which units it holds: no citations
    cited = [tuple(held(cited_units(cl.stated, scope_text=scope_text))) if held else () for cl in claims]

    def search(idx: list[int], **where) -> list:
        return retriever.search_many(["\n".join(x for x in (query, claims[i].stated) if x) for i in idx], k, **where)

    out: list[list[Evidence]] = [[] for _ in claims]
    for docs, idx in _by_key(acts).items():
        for i, r in zip(idx, search(idx, docs=list(docs) or None)):
            out[i] = list(r.evidence)
    for units, idx in _by_key(cited).items():
        for i, r in zip(idx, search(idx, under=list(units)) if units else ()):
            first = list(r.evidence)[: max(1, k - 1)]
            have = {e.unit_id for e in first}
            out[i] = first + [e for e in out[i] if e.unit_id not in have]
    return out


_PARAGRAPH = re.compile(r"^([^:]+:art_[^.]+)\.")
_DEROGATES = re.compile(r"\b(?:notwithstanding|by way of derogation from)\s+paragraphs?\s+(\d+)", re.IGNORECASE)


def derogated_paragraphs(unit_id: str, text: str) -> list[str]:
    """The paragraphs of the same article that a paragraph makes an exception to ("Notwithstanding paragraph 2",
    "By way of derogation from paragraph 1").

    >>> derogated_paragraphs("eu-ai-act:art_73.4", "4. Notwithstanding paragraph 2 of this Article, in the event of")
    ['eu-ai-act:art_73.2']
    >>> derogated_paragraphs("nis2:art_23.4.a", "without undue delay and in any event within 24 hours")
    []
    """
    m = _PARAGRAPH.match(unit_id)
    return [f"{m.group(1)}.{n}" for n in dict.fromkeys(_DEROGATES.findall(text))] if m else []


def _by_key(keys: Sequence[tuple]) -> dict[tuple, list[int]]:
    """Positions grouped by key, so that claims searched alike go to the retriever in one batch."""
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups


def check_claims(claims: Sequence[OutputClaim], evidence: Sequence[Sequence[Evidence]], model: EntailmentModel, *,
                 entail_threshold: float = 0.5, contradict_threshold: float = 0.5, units: int = 3,
                 per_unit: int = 6, lookup: Callable[[str], str | None] | None = None,
                 question: str = "", scope: set[str] | None = None, answer: str = "") -> list[ClaimCheck]:
    """Score each claim against the sentences of its own evidence (``evidence[i]`` belongs to ``claims[i]``), in one
    batch, and settle it with the checkable signals of :mod:`~mad_guardrails.verifier.claim_signals`:

    * ``contradicted`` — the model's best contradiction clears ``contradict_threshold``, beats every entailment, no
      sentence reads as support (P(entailed) < 0.5), and a checked difference (figure, negation, modality, actor) between the claim and
      that sentence confirms it;
    * ``entailed`` — a sentence (or, for a claim without figures, a whole clause) restates the claim almost word for
      word, or the model's best entailment clears
      ``entail_threshold`` and no checked difference separates claim and sentence;
    * ``neutral`` otherwise (not settled: the debate decides); ``note`` says why a model's label was not taken.

    ``lookup`` (unit id → text, e.g. ``Retriever.lookup``) lets a changed figure be read against the general rule
    when the contradicting paragraph is an exception to it: AI Act Art. 73(4) ("Notwithstanding paragraph 2, in the
    event of the death of a person ... 10 days") does not contradict a claim that states paragraph 2's 15 days. A
    figure taken from a paragraph that is no exception (Art. 99(4)'s fine claimed for 99(5)'s offence) still does.
    ``question`` (the query the output answers) supplies the subject an answer's short claim leaves out when a
    contradiction is confirmed (:func:`~mad_guardrails.verifier.claim_signals.confirms_contradiction`). ``scope``
    (:func:`scope_acts`) is the acts a claim that names none is settled by (every act when empty). When the question
    asks for a list, an entailed claim whose clause lists items the ``answer`` (the whole output; its claims joined
    when empty) does not name is not settled (:mod:`~mad_guardrails.verifier.completeness`).
    """
    def general_rule(unit_id: str) -> list[str]:
        if lookup is None:
            return []
        general = derogated_paragraphs(unit_id, lookup(unit_id) or "")
        return [x for u in general for x in sentences(lookup(u) or "", max_words=10_000)]

    # an answer's qualified verdict ("Mostly not.") means what the question makes it mean: no sentence settles it
    hedged = [hedged_verdict(c.text) for c in claims]
    premises = [[] if h else claim_premises(ev, units=units, per_unit=per_unit) for h, ev in zip(hedged, evidence)]
    # the model reads what the claim states, without an answer's "No." / "Not quite:" lead-in
    pairs = [(s, without_answer_lead(c.stated)) for c, prem in zip(claims, premises) for _, s in prem]
    probs = model.predict(pairs) if pairs else []
    every_sentence = [s for prem in premises for _, s in prem]  # all clauses retrieved for this output
    whole = answer or " ".join(x.text for x in claims)  # what the answer names, for a list the question asks for
    out, i = [], 0
    for c, h, prem, ev in zip(claims, hedged, premises, evidence):
        acts = named_acts(c.stated) or set(scope or ())  # a claim about the GDPR is settled by GDPR clauses only
        scored = [x for x in zip(prem, probs[i:i + len(prem)]) if of_named_act(x[0][0], acts)]
        i += len(prem)
        clauses = {e.unit_id: e.text for e in ev if e.source == "regulation"}
        restated = [u for u in list(clauses)[:units] if of_named_act(u, acts)
                    and any(restates_clause(t, clauses[u]) for t in c.readings)]
        check = settle(c, scored, entail_threshold, contradict_threshold, restated, clauses, every_sentence,
                       general_rule, question=question)
        if check.label == "entailed" and check.support is not None and (
                missing := left_out(question, whole, clauses.get(check.support.doc_id, ""), check.support.text)):
            check = check.model_copy(update={"label": "neutral", "basis": "", "note": (
                f"the question asks for the list and the clause lists more than the answer names: it leaves out "
                + "; ".join(f"'{m}'" for m in missing[:3]) + (" ..." if len(missing) > 3 else ""))})
        if h:
            check = check.model_copy(update={"note": "the answer qualifies its verdict; no clause states such a "
                                                     "limit"})
        elif prem and not scored:
            check = check.model_copy(update={"note": f"no clause of {', '.join(sorted(acts))} (the act the claim "
                                                     "or the case names) was retrieved for it"})
        out.append(check)
    return out


def _text_after(clauses: Mapping[str, str], at: tuple[str, str]) -> str | None:
    """What the clause says right after the sentence ``at`` (its next 600 characters), if the clause is known."""
    text = clauses.get(at[0], "")
    i = text.find(at[1])
    return text[i + len(at[1]):i + len(at[1]) + 600] if i >= 0 else None


def settle(c: OutputClaim, scored: list, entail_threshold: float, contradict_threshold: float,
           restated_units: Sequence[str] = (), clauses: Mapping[str, str] | None = None,
           other_sentences: Sequence[str] = (),
           general_rule: Callable[[str], Sequence[str]] | None = None, *, question: str = "") -> ClaimCheck:
    """One claim's label from its scored sentences ``[((unit_id, sentence), probabilities), ...]`` (the rules of
    :func:`check_claims`; ``restated_units`` are clauses the claim restates as a whole; ``clauses`` the clause texts
    by unit id, to see whether a clause goes on with an exception; ``other_sentences`` the sentences retrieved for the
    output's other claims, which may state the claim's figures too; ``general_rule`` the sentences of the paragraphs
    a clause makes an exception to)."""
    clauses = clauses or {}
    best_e = max(scored, key=lambda x: x[1]["entailed"], default=None)
    best_c = max(scored, key=lambda x: x[1]["contradicted"], default=None)
    pe = best_e[1]["entailed"] if best_e else 0.0
    pc = best_c[1]["contradicted"] if best_c else 0.0
    restated = next(((u, s) for (u, s), _ in scored if any(restates(t, s) for t in c.readings)), None)
    if restated is None and restated_units:  # the clause as a whole: quote its sentence closest to the claim
        restated = max(((u, s) for (u, s), _ in scored if u == restated_units[0]),
                       key=lambda us: coverage(c.stated, us[1]), default=None)
    label: ClaimLabel = "neutral"
    basis, note, support = "", "", best_e[0] if best_e else None
    if pc >= contradict_threshold and pc > pe and pe < 0.5 and restated is None:
        confirmed = confirms_contradiction(c.stated, best_c[0][1], best_c[0][0], question=question)
        if confirmed and any(d.kind == "number" for d in confirmed) and any(
                states_figures(c.stated, s) for s in [*(s for (_, s), _ in scored), *other_sentences,
                                                      *(general_rule(best_c[0][0]) if general_rule else ())]):
            # another clause retrieved for this output, or the general rule the clause derogates from, states them
            confirmed = [d for d in confirmed if d.kind != "number"]
        if confirmed:
            label, basis = "contradicted", "model + " + ", ".join(sorted({d.kind for d in confirmed}))
        else:
            note = (f"the model reads a contradiction (p={pc:.2f}) but no figure, negation, modality or actor "
                    "differs from that sentence: not settled")
    elif restated is not None and exception_follows(c.stated, _text_after(clauses, restated)):
        note = "the claim restates a sentence the clause goes on to make an exception to; the claim names none"
    elif restated is not None:
        label, basis, support = "entailed", "restatement", restated
    elif pe >= entail_threshold:
        diffs = differences(c.stated, best_e[0][1])
        if diffs:
            note = "the model reads support but " + "; ".join(d.detail for d in diffs)
        elif added := added_conditions(c.stated, clauses.get(best_e[0][0], best_e[0][1])):  # anywhere in the clause
            note = f"the model reads support but the claim adds a condition the clause does not state: '{added[0]}'"
        elif exception_follows(c.stated, _text_after(clauses, best_e[0])):
            note = "the model reads support but the clause goes on to make an exception the claim does not name"
        else:
            label, basis = "entailed", "model"
    return ClaimCheck(
        claim=c, label=label, entailed=round(pe, 4), contradicted=round(pc, 4), pairs=len(scored),
        basis=basis, note=note,
        support=Quote(doc_id=support[0], text=support[1]) if support else None,
        against=Quote(doc_id=best_c[0][0], text=best_c[0][1]) if best_c else None)
