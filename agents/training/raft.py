"""RAFT examples for the coordinator: case + oracle units + K distractors (oracle dropped in a share of examples), with
targets in the quote-first EVIDENCE/ANSWER contract self-distilled from a teacher and kept by the verifier (seed §2).

Three steps, each resumable on its own:

1. :func:`build_items` — for each :class:`~mad_guardrails.agents.training.cases.CoordCase` the evidence the coordinator is shown:
   its oracle units plus ``k_distractors`` other units (half from the same act — near misses — half from other acts,
   never a part or parent of an oracle unit), shuffled; in a share ``p_drop_oracle`` of the items the oracle units are
   left out (replaced by more distractors), so the model also learns what to do when retrieval missed;
2. :func:`sample_candidates` — best-of-N answers from a teacher :class:`~mad_guardrails.agents.backends.base.LLMBackend` (the
   served base model itself for self-distillation), appended to a JSONL file as they arrive (a re-run skips the
   answers already there);
3. :func:`select_examples` — every candidate scored by the project's verifier (:func:`score_answer`: strict verbatim,
   citation validity, number consistency) and a composite score; only candidates that pass the hard filters are kept,
   the top ``top_k`` per item, re-rendered canonically (:func:`render_contract`) as the training target.

The prompt is exactly what :class:`mad_guardrails.agents.coordinator.Coordinator` sends (``prompts/coordinator.j2`` via
:func:`mad_guardrails.agents.prompting.coordinator_messages`), so the adapter is trained on the contract it is served under.

    >>> from mad_guardrails.core.debate import CoordinatorOutput, Quote
    >>> out = CoordinatorOutput(evidence=[Quote(doc_id="gdpr:art_33.1", text="not later than 72 hours after")],
    ...                         decision="allow", rationale="Matches Article 33.", confidence=0.8)
    >>> print(render_contract(out))
    EVIDENCE:
    [gdpr:art_33.1] "not later than 72 hours after"
    ANSWER:
    decision: allow
    violations: none
    rationale: Matches Article 33.
    confidence: 0.8
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field

from mad_guardrails.agents.backends.base import LLMBackend
from mad_guardrails.agents.grammar import sentences
from mad_guardrails.agents.parsing import ParseError, parse_coordinator
from mad_guardrails.agents.prompting import DEFAULT_EVIDENCE_CHARS, coordinator_messages, evidence_view
from mad_guardrails.agents.training.cases import CoordCase
from mad_guardrails.agents.training.rouge import best_rouge_l
from mad_guardrails.core.debate import (
    Case,
    CoordinatorOutput,
    Decision,
    ProposedViolation,
    Quote,
    clean_id,
    dedupe_quotes,
)
from mad_guardrails.core.records import append_models, read_models
from mad_guardrails.core.text import collapse_ws
from mad_guardrails.core.units import Evidence, Unit, id_covers
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)


class AnswerVerifier(Protocol):
    """What scoring needs of a verifier (the app passes :class:`mad_guardrails.verifier.Verifier`; training code
    takes it as an argument and never imports the layer above)."""

    def verify(self, out: CoordinatorOutput, evidence: Sequence[Evidence], output: str, facts: Sequence,
               transcript: Sequence | None = None): ...

#: unit kinds that make good distractors (self-contained passages, not whole long articles)
DISTRACTOR_KINDS = ("paragraph", "point", "framework_element", "recital", "section")
_REFUSAL_RE = re.compile(r"\b(no|not enough|insufficient|without)\s+(relevant\s+)?(evidence|information|documents?)\b|"
                         r"\bcannot (be )?(determine|decide|verif)", re.IGNORECASE)


class RaftConfig(BaseModel):
    k_distractors: int = Field(default=3, ge=0, description="distractor units per item")
    p_drop_oracle: float = Field(default=0.2, ge=0.0, le=1.0, description="share of items without their oracle")
    extra_rules: int = Field(default=1, ge=0, description="unrelated rules of the same act shown beside the gold ones")
    evidence_chars: int = Field(default=DEFAULT_EVIDENCE_CHARS, ge=100, description="per evidence block in the prompt")
    min_chars: int = Field(default=80, description="distractors shorter than this are not used")
    max_chars: int = Field(default=1200, description="distractors longer than this are not used")
    seed: int = 0


class RaftItem(BaseModel):
    """What the coordinator is shown for one case (and what a grounded answer should rest on)."""

    id: str
    case: Case
    rule_ids: list[str] = Field(description="rules shown in the prompt: the case's own first, then unrelated ones")
    gold_rules: list[str] = Field(default_factory=list)
    evidence: list[Evidence]
    oracle_ids: list[str] = Field(description="the case's oracle units (shown only when oracle_present)")
    oracle_present: bool
    expected: Decision | None = None
    gold: list[str] = Field(default_factory=list, description="reference texts for ROUGE-L: the oracle units' text")


class AnswerScore(BaseModel):
    """How one answer fares against the verifier and the item (shared by the filter and the evaluation)."""

    parsed: bool
    error: str | None = None
    n_quotes: int = 0
    strict: float | None = Field(default=None, description="share of quotes strictly verbatim (None: no quotes)")
    content: float | None = None
    citation: float | None = None
    numbers_ok: bool = True
    oracle_share: float | None = Field(default=None, description="share of quotes citing an oracle unit")
    rouge_l: float = Field(default=0.0, description="ROUGE-L F of the quotes against the best gold text")
    decision: Decision | None = None
    decision_ok: float | None = Field(default=None, description="1 exact, 0.5 flag vs block, 0 wrong, None unknown")
    refusal: bool = Field(default=False, description="no usable quote: unparseable, empty EVIDENCE or 'no evidence'")
    composite: float = 0.0
    keep: bool = False
    reason: str = ""


class RaftExample(BaseModel):
    """One training example: the prompt messages and the canonical target answer."""

    id: str
    item_id: str
    messages: list[dict]
    target: str
    score: AnswerScore
    oracle_present: bool
    source: str = Field(default="self", description="self (a teacher candidate kept by the verifier) or extractive")


# ---------------------------------------------------------------------------------------------------- 1. contexts
def _evidence(u: Unit, rank: int) -> Evidence:
    return Evidence(unit_id=u.id, doc=u.doc, heading=u.heading, text=u.text, rank=rank, score=round(1 - rank / 100, 2))


class DistractorPool:
    """Candidate distractor units by act, from a corpus (``units``: any iterable of :class:`Unit`)."""

    def __init__(self, units: Iterable[Unit], cfg: RaftConfig):
        self.by_doc: dict[str, list[Unit]] = defaultdict(list)
        for u in units:
            if u.kind in DISTRACTOR_KINDS and cfg.min_chars <= len(u.text.strip()) <= cfg.max_chars:
                self.by_doc[u.doc].append(u)
        self.docs = sorted(self.by_doc)

    def sample(self, rng: random.Random, oracle: Sequence[str], k: int, exclude: set[str]) -> list[Unit]:
        """``k`` units: ceil(k/2) from the oracle's act (near misses), the rest from other acts."""
        if k <= 0:
            return []

        def ok(u: Unit) -> bool:
            return u.id not in exclude and not any(id_covers(o, u.id) or id_covers(u.id, o) or
                                                   _same_article(o, u.id) for o in oracle)

        home = oracle[0].split(":", 1)[0] if oracle else None
        out: list[Unit] = []
        n_home = (k + 1) // 2 if home in self.by_doc else 0
        if n_home:
            pool = self.by_doc[home]
            for u in rng.sample(pool, min(len(pool), 4 * k)):
                if len(out) == n_home:
                    break
                if ok(u) and u.id not in {x.id for x in out}:
                    out.append(u)
        others = [d for d in self.docs if d != home] or self.docs
        tries = 0
        while len(out) < k and tries < 50 * k:
            tries += 1
            u = rng.choice(self.by_doc[rng.choice(others)])
            if ok(u) and u.id not in {x.id for x in out}:
                out.append(u)
        return out


def _same_article(a: str, b: str) -> bool:
    """Both ids in the same EU article / annex (``nis2:art_23.4.a`` and ``nis2:art_23.2``)."""
    da, _, la = a.partition(":")
    db, _, lb = b.partition(":")
    return da == db and la.split(".")[0] == lb.split(".")[0] and la.split(".")[0].startswith(("art_", "anx_"))


def build_items(cases: Sequence[CoordCase], units: Callable[[str], Unit | None], pool: DistractorPool,
                rules: Callable[[str], Rule | None], all_rules: Sequence[Rule], cfg: RaftConfig) -> list[RaftItem]:
    """RAFT contexts for ``cases`` (deterministic for ``cfg.seed``): exactly ``round(p_drop_oracle · n)`` items,
    chosen at random, have their oracle dropped; those get ``len(oracle)`` more distractors instead."""
    rng = random.Random(cfg.seed)
    n_drop = round(cfg.p_drop_oracle * len(cases))
    drop = set(rng.sample(range(len(cases)), n_drop)) if n_drop else set()
    by_act: dict[str, list[Rule]] = defaultdict(list)
    for r in all_rules:
        by_act[r.act or r.id.split(".")[0]].append(r)
    items: list[RaftItem] = []
    for i, c in enumerate(cases):
        oracle_units = [u for u in (units(o) for o in c.oracle) if u is not None]
        if not oracle_units:
            log.warning("case %s: none of its oracle units %s is in the corpus; skipped", c.id, c.oracle)
            continue
        present = i not in drop
        k = cfg.k_distractors + (0 if present else len(oracle_units))
        distractors = pool.sample(rng, [u.id for u in oracle_units], k, exclude=set())
        shown = (oracle_units if present else []) + distractors
        rng.shuffle(shown)
        gold_rules = [r for r in (rules(x) for x in c.rules) if r is not None]
        acts = {r.act for r in gold_rules} or {oracle_units[0].doc}
        spare = [r for a in sorted(x for x in acts if x) for r in by_act.get(a, []) if r.id not in c.rules]
        extra = rng.sample(spare, min(cfg.extra_rules, len(spare))) if spare else []
        gold = [e["text"] for e in evidence_view([_evidence(u, 1) for u in oracle_units], cfg.evidence_chars)]
        items.append(RaftItem(
            id=c.id, case=c.case, rule_ids=[r.id for r in gold_rules] + [r.id for r in extra],
            gold_rules=[r.id for r in gold_rules], evidence=[_evidence(u, n) for n, u in enumerate(shown, 1)],
            oracle_ids=[u.id for u in oracle_units], oracle_present=present, expected=c.expected, gold=gold))
    return items


def item_messages(item: RaftItem, rules: Callable[[str], Rule | None], *,
                  evidence_chars: int = DEFAULT_EVIDENCE_CHARS) -> list[dict]:
    """The coordinator's prompt for ``item`` (no debate transcript), as :class:`mad_guardrails.agents.coordinator.Coordinator`
    renders it."""
    shown = [r for r in (rules(x) for x in item.rule_ids) if r is not None]
    return coordinator_messages(item.case, item.evidence, shown, [], None, evidence_chars=evidence_chars)


def demo_answer(item: RaftItem, unit_text: Callable[[str], str | None], rules: Callable[[str], Rule | None],
                max_words: int = 24) -> str:
    """A rule-built, verifier-valid answer to ``item`` in the contract (for a teacher demonstration): one verbatim
    quote — the opening words of its first oracle unit, without the paragraph number — and its labelled decision."""
    oid = item.oracle_ids[0]
    text = unit_text(oid) or ""
    words = re.sub(r"^\s*(\(?[0-9a-z]{1,4}[.)]|\d+\.)\s+", "", text.strip()).split()
    quote = " ".join(words[:max_words]).rstrip(",;:")
    decision = item.expected or "flag"
    rule = rules(item.gold_rules[0]) if item.gold_rules else None
    viol = []
    if decision != "allow" and rule is not None:
        viol = [ProposedViolation(rule_id=rule.id, provisions=[oid], severity=rule.severity,
                                  explanation="The output contradicts the quoted provision.")]
    rationale = ("The output agrees with the quoted provision." if decision == "allow" else
                 "The output is at odds with the quoted provision.")
    return render_contract(CoordinatorOutput(evidence=[Quote(doc_id=oid, text=quote)], decision=decision,
                                             violations=viol, rationale=rationale, confidence=0.7))


def with_demo(messages: list[dict], demo_messages: list[dict], demo: str) -> list[dict]:
    """A teacher prompt: the real system message, one worked example (the demo case and its answer), then the real
    case. The student is trained on the plain prompt (context distillation: it learns the demonstrated format)."""
    return [messages[0], demo_messages[-1], {"role": "assistant", "content": demo}, messages[-1]]


def pick_demos(items: Sequence[RaftItem], k: int = 5) -> list[RaftItem]:
    """The ``k`` oracle-present items with the shortest prompts (good short demonstrations)."""
    ok = [it for it in items if it.oracle_present and it.gold_rules]
    return sorted(ok, key=lambda it: (sum(len(e.text) for e in it.evidence) + len(it.case.output), it.id))[:k]


_WORD_RE = re.compile(r"\w+")
_STOP = frozenset("the a an and or of to in for on by with is are be shall may must that this which as at from it its "
                  "any all not no under where when their they such other".split())


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOP and len(w) > 2}


def best_sentence(text: str, against: str, *, max_words: int = 40, min_words: int = 4) -> str | None:
    """The sentence of ``text`` (see :func:`sentences`) sharing the most content words with ``against`` (the first
    on a tie), or None when ``text`` has none."""
    target = _content_words(against)
    best: tuple[int, str] | None = None
    for sent in sentences(text, max_words=max_words, min_words=min_words):
        overlap = len(target & _content_words(sent))
        if best is None or overlap > best[0]:
            best = (overlap, sent)
    return best[1] if best else None


def extractive_answer(item: RaftItem, rules: Callable[[str], Rule | None], *, max_quotes: int = 2,
                      evidence_chars: int = DEFAULT_EVIDENCE_CHARS) -> str | None:
    """A rule-built answer in the contract (the *extractive teacher*, for items the self-teacher gave nothing
    usable): the sentence of each shown oracle unit closest to the checked output, verbatim, and the labelled decision
    (a violation of the case's rule when it is flag/block). Without the oracle: the closest sentence of the evidence
    shown and ``flag`` (the supporting provision is missing). None when nothing quotable is shown."""
    shown = {e.unit_id: e.text[:evidence_chars] for e in item.evidence}
    probe = " ".join(x for x in (item.case.output, item.case.query or "") if x)
    rule = rules(item.gold_rules[0]) if item.gold_rules else None
    if rule is not None:
        probe += " " + rule.title
    units = [o for o in item.oracle_ids if o in shown] if item.oracle_present else []
    if not units:
        ranked = sorted(shown, key=lambda u: -len(_content_words(shown[u]) & _content_words(probe)))
        units = ranked[:1]
    quotes = [Quote(doc_id=u, text=q) for u in units[:max_quotes] if (q := best_sentence(shown[u], probe))]
    if not quotes:
        return None
    if not item.oracle_present:
        out = CoordinatorOutput(evidence=quotes, decision="flag", confidence=0.3,
                                rationale="The documents shown do not contain the provision this case turns on, so "
                                          "the output cannot be confirmed; a human should check it.")
        return render_contract(out)
    decision = item.expected or "flag"
    title = rule.title.rstrip(".") if rule is not None else "the quoted provision"
    viol = []
    if decision != "allow" and rule is not None:
        viol = [ProposedViolation(rule_id=rule.id, provisions=[q.doc_id for q in quotes], severity=rule.severity,
                                  explanation=f"The output is at odds with: {title}.")]
    rationale = (f"The output is consistent with the quoted provision ({title})." if decision == "allow" else
                 f"The output conflicts with the quoted provision ({title}).")
    return render_contract(CoordinatorOutput(evidence=quotes, decision=decision, violations=viol,
                                             rationale=rationale, confidence=0.7))


# ------------------------------------------------------------------------------------------------- 2. candidates
class Candidate(BaseModel):
    item_id: str
    i: int = Field(description="index of the sample (0..N-1) for its item")
    text: str
    seed: int | None = None
    finish_reason: str | None = None
    error: str | None = None


def read_candidates(path: Path) -> list[Candidate]:
    return read_models(path, Candidate, tolerant=True)  # a line cut by a crash: that sample is simply redone


async def sample_candidates(items: Sequence[RaftItem], messages: Callable[[RaftItem], list[dict]],
                            backend: LLMBackend, model: str, out: Path, *, n: int = 4, temperature: float = 0.8,
                            max_tokens: int = 320, seed: int = 0, concurrency: int = 4, start: int = 0,
                            grammar: Callable[[RaftItem], str] | None = None,
                            progress: bool = True) -> list[Candidate]:
    """``n`` sampled answers per item from ``backend`` (indices ``start``..``start+n-1``, seeds ``seed·1000 + i``),
    appended to ``out`` as they come; samples already in ``out`` are not asked again (resume). Backend errors are
    recorded, not raised. ``grammar``: each answer constrained to ``grammar(item)`` (see
    :mod:`mad_guardrails.agents.grammar`)."""
    from mad_guardrails.core.progress import make_progress

    done = {(c.item_id, c.i) for c in read_candidates(out) if c.error is None}
    todo = [(it, [i for i in range(start, start + n) if (it.id, i) not in done]) for it in items]
    todo = [(it, idx) for it, idx in todo if idx]
    out.parent.mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(max(1, concurrency))
    with make_progress(disable=not progress) as bar:
        task = bar.add_task(f"teacher best-of-{n}", total=sum(len(idx) for _, idx in todo))

        async def one(it: RaftItem, i: int) -> None:
            sd = seed * 1000 + i
            async with sem:
                try:
                    r = await backend.chat(messages(it), model=model, temperature=temperature,
                                           max_tokens=max_tokens, seed=sd,
                                           grammar=grammar(it) if grammar is not None else None)
                    c = Candidate(item_id=it.id, i=i, text=r.text, seed=sd, finish_reason=r.finish_reason)
                except Exception as e:  # noqa: BLE001 - a failed sample is recorded and retried on the next run
                    c = Candidate(item_id=it.id, i=i, text="", seed=sd, error=f"{type(e).__name__}: {e}")
            append_models([c], out)
            bar.advance(task)

        async def item(it: RaftItem, idx: list[int]) -> None:
            # the first sample alone, then the others together: a server with prefix caching computes the
            # (long) prompt once per item instead of once per sample
            await one(it, idx[0])
            await asyncio.gather(*(one(it, i) for i in idx[1:]))

        await asyncio.gather(*(item(it, idx) for it, idx in todo))
    return read_candidates(out)


# ---------------------------------------------------------------------------------------------------- 3. scoring
def _decision_agreement(decision: str, expected: str | None) -> float | None:
    if expected is None:
        return None
    if decision == expected:
        return 1.0
    return 0.5 if {decision, expected} == {"flag", "block"} else 0.0


def score_answer(item: RaftItem, text: str | None, verifier: AnswerVerifier,
                 rules: Callable[[str], Rule | None] | None = None, *, require_decision: bool = False) -> AnswerScore:
    """Score one answer to ``item`` with the verifier: strict / content verbatim and citation validity of every quote
    (EVIDENCE and violations), number consistency against the shown rules' key facts, share of quotes on oracle units,
    ROUGE-L against the gold texts, decision agreement, refusal; the hard filters and the composite score."""
    try:
        out = parse_coordinator(text)
    except ParseError as e:
        return AnswerScore(parsed=False, error=str(e), refusal=True, reason="unparseable")
    quotes = dedupe_quotes([*out.evidence, *(q for v in out.violations for q in v.quotes)])
    facts = [f for r in (rules(x) for x in item.rule_ids) if r is not None for f in r.key_facts] if rules else []
    report = verifier.verify(out, item.evidence, item.case.output, facts)
    strict, content, cites, numbers = (report.get(n) for n in ("strict_verbatim", "content_verbatim",
                                                                "citation_validity", "number_consistency"))
    nq = len(quotes)
    oracle_share = (sum(1 for q in quotes if any(id_covers(o, clean_id(q.doc_id)) or id_covers(clean_id(q.doc_id), o)
                                                 for o in item.oracle_ids)) / nq) if nq else None
    rl = best_rouge_l(" ".join(q.text for q in out.evidence), item.gold).f if item.gold else 0.0
    explicit_refusal = bool(_REFUSAL_RE.search(out.rationale or "")) and not out.evidence
    s = AnswerScore(
        parsed=True, n_quotes=nq,
        strict=strict.score if strict and nq else None, content=content.score if content and nq else None,
        citation=_citation_share(cites, nq), numbers_ok=numbers is None or numbers.status != "fail",
        oracle_share=oracle_share, rouge_l=rl, decision=out.decision,
        decision_ok=_decision_agreement(out.decision, item.expected), refusal=nq == 0 or explicit_refusal)
    s.keep, s.reason = _hard_filter(item, s, require_decision)
    s.composite = _composite(item, s)
    return s


def _citation_share(cites, nq: int) -> float | None:
    """Share of valid citations, counting each violation-level problem (unknown rule or provision, a violation
    without a quote) as one more failed citation. None when the answer quotes nothing."""
    if not nq or cites is None:
        return None
    if cites.status != "fail":
        return 1.0 if cites.score is None else cites.score
    quote_fail = round(nq * (1 - (cites.score if cites.score is not None else 1.0)))
    extra = max(0, len(cites.failures) - quote_fail)
    return (nq - quote_fail) / (nq + extra)


def _hard_filter(item: RaftItem, s: AnswerScore, require_decision: bool = False) -> tuple[bool, str]:
    if not s.parsed:
        return False, "unparseable"
    if item.oracle_present and s.n_quotes == 0:
        return False, "no quote although the oracle is shown"
    if s.n_quotes and (s.strict or 0.0) < 1.0:
        return False, f"strict verbatim {s.strict:.2f} < 1"
    if s.n_quotes and (s.citation or 0.0) < 1.0:
        return False, f"citation validity {s.citation:.2f} < 1"
    if not s.numbers_ok:
        return False, "allows an output that contradicts a key fact"
    if item.oracle_present and not s.oracle_share:
        return False, "quotes no oracle unit"
    if not item.oracle_present and s.decision == "allow":
        return False, "allows without the supporting provision"
    if require_decision and item.oracle_present and item.expected is not None and s.decision != item.expected:
        return False, "decision differs from the case's label"
    return True, "ok"


def _composite(item: RaftItem, s: AnswerScore) -> float:
    """Weighted score in [0, 1]: grounding (strict, citation) first, then quoting the oracle, then the decision."""
    if not s.parsed:
        return 0.0
    strict = s.strict if s.strict is not None else (0.0 if item.oracle_present else 1.0)
    cites = s.citation if s.citation is not None else (0.0 if item.oracle_present else 1.0)
    oracle = (s.oracle_share or 0.0) if item.oracle_present else (1.0 if s.decision == "flag" else 0.5)
    decision = s.decision_ok if s.decision_ok is not None else 0.5
    return round(0.3 * strict + 0.25 * cites + 0.2 * oracle + 0.15 * decision + 0.1 * min(1.0, s.rouge_l / 0.6), 4)


def render_contract(out: CoordinatorOutput) -> str:
    """A parsed answer written back in the exact format of ``prompts/coordinator.j2`` (the training target)."""
    lines = ["EVIDENCE:"]
    lines += [f'[{clean_id(q.doc_id)}] "{q.text.strip()}"' for q in out.evidence] or ["none"]
    lines += ["ANSWER:", f"decision: {out.decision}"]
    if out.violations:
        lines.append("violations:")
        for v in out.violations:
            expl = collapse_ws(v.explanation)
            lines.append(f"- rule: {v.rule_id} | provisions: {', '.join(clean_id(p) for p in v.provisions)} | "
                         f"severity: {v.severity} | explanation: {expl}")
    else:
        lines.append("violations: none")
    lines.append(f"rationale: {' '.join(out.rationale.split()) or '-'}")
    lines.append(f"confidence: {round(out.confidence, 2):g}")
    return "\n".join(lines)


class SelectionStats(BaseModel):
    items: int
    candidates: int
    parsed: int
    kept_candidates: int = Field(description="candidates that passed the hard filters")
    items_with_kept: int
    examples: int
    reasons: dict[str, int] = Field(default_factory=dict, description="why candidates were rejected")
    extractive_items: int = Field(default=0, description="items given the extractive teacher's answer instead")
    by_source: dict[str, int] = Field(default_factory=dict)


def select_examples(items: Sequence[RaftItem], candidates: Iterable[Candidate], verifier: AnswerVerifier,
                    messages: Callable[[RaftItem], list[dict]], *, rules: Callable[[str], Rule | None] | None = None,
                    top_k: int = 1, max_examples: int | None = None, fallback: str | None = None,
                    require_decision: bool = False, seed: int = 0) -> tuple[list[RaftExample], SelectionStats]:
    """Keep, per item, the ``top_k`` candidates that pass the hard filters, by composite score; then at most
    ``max_examples`` examples overall (best first, keeping the oracle-dropped share roughly as built).

    ``fallback="extractive"``: an item none of whose candidates passes gets the :func:`extractive_answer` instead,
    if that passes the same filter (``source="extractive"`` in the example and in the stats).
    ``require_decision``: with the oracle shown, a candidate must also reach the case's labelled decision (rejection
    sampling on the label: the teacher's right choices are kept, its wrong ones are not learned)."""
    by_item: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if c.error is None:
            by_item[c.item_id].append(c)
    reasons: dict[str, int] = defaultdict(int)
    n_cand = n_parsed = n_kept = n_items_kept = n_fallback = 0
    chosen: list[tuple[float, RaftItem, Candidate, AnswerScore]] = []
    for it in items:
        scored = []
        for c in sorted(by_item.get(it.id, []), key=lambda c: c.i):
            s = score_answer(it, c.text, verifier, rules, require_decision=require_decision)
            n_cand += 1
            n_parsed += s.parsed
            if s.keep:
                scored.append((s.composite, c, s))
            else:
                reasons[s.reason.split(" ")[0] if s.reason.startswith(("strict", "citation")) else s.reason] += 1
        n_kept += len(scored)
        if scored:
            n_items_kept += 1
        elif fallback == "extractive" and rules is not None:
            text = extractive_answer(it, rules)
            s = score_answer(it, text, verifier, rules, require_decision=require_decision) if text else None
            if s is not None and s.keep:
                scored.append((s.composite, Candidate(item_id=it.id, i=-1, text=text), s))
                n_fallback += 1
        scored.sort(key=lambda x: (-x[0], x[1].i))
        chosen += [(sc, it, c, s) for sc, c, s in scored[:top_k]]
    rng = random.Random(seed)
    if max_examples is not None and len(chosen) > max_examples:
        present = sorted([x for x in chosen if x[1].oracle_present], key=lambda x: -x[0])
        absent = sorted([x for x in chosen if not x[1].oracle_present], key=lambda x: -x[0])
        share = len(absent) / len(chosen)
        n_abs = min(len(absent), round(share * max_examples))
        chosen = present[: max_examples - n_abs] + absent[:n_abs]
        rng.shuffle(chosen)
    examples = []
    for sc, it, c, s in chosen:
        out = parse_coordinator(c.text)
        out.violations = [v.model_copy(update={"quotes": []}) for v in out.violations]
        examples.append(RaftExample(id=f"{it.id}#{c.i}", item_id=it.id, messages=messages(it),
                                    target=render_contract(out), score=s, oracle_present=it.oracle_present,
                                    source="extractive" if c.i < 0 else "self"))
    stats = SelectionStats(items=len(items), candidates=n_cand, parsed=n_parsed, kept_candidates=n_kept,
                           items_with_kept=n_items_kept, examples=len(examples), reasons=dict(reasons),
                           extractive_items=n_fallback,
                           by_source={src: sum(1 for e in examples if e.source == src)
                                      for src in ("self", "extractive")})
    return examples, stats


# ------------------------------------------------------------------------------------------------------- files
def read_items(path: Path) -> list[RaftItem]:
    return read_models(path, RaftItem, missing_fix="run `mad-guardrails train coordinator build` first")


def read_examples(path: Path) -> list[RaftExample]:
    return read_models(path, RaftExample, missing_fix="run `mad-guardrails train coordinator select` first")
