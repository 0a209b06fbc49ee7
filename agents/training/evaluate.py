"""The six evaluation axes of the seed coordinator (SEEDS.md §2), base vs adapter, in one report.

Every answer is scored by :func:`mad_guardrails.agents.training.raft.score_answer` (the project's verifier); then per model:

* ``strict_verbatim`` — mean, over answers that quote something, of the share of their quotes that are exact
  substrings of the cited unit (normal set: oracle present, K distractors);
* ``content_verbatim`` — the same after normalising whitespace / quotes / dashes / case (content − strict = near
  misses);
* ``citation_validity`` — mean, over answers that quote something, of the share of valid citations (existing id,
  shown in the evidence, the unit the quote comes from; violation-level problems count too);
* ``rouge_l_030`` — share of items whose EVIDENCE quotes reach ROUGE-L F ≥ 0.30 against the gold text (the oracle
  units as shown); an answer without quotes scores 0;
* ``false_refusals`` — share of items, oracle present, whose answer gives no usable quote (unparseable, empty
  EVIDENCE, or "no evidence"): what a fail-closed pipeline turns into a flag;
* ``strict_verbatim_stress`` — ``strict_verbatim`` on the stress set (4 distractors, oracle dropped in 30 % of items);

plus ``parse_rate``, ``answered`` (share of items with ≥ 1 quote), ``oracle_quoted`` (share of oracle-present items
whose answer quotes an oracle unit), ``decision_accuracy`` (where the case is labelled) and ``false_allow`` (share of
cases labelled flag/block that the answer allows).

    >>> from mad_guardrails.agents.training.raft import AnswerScore
    >>> s = [AnswerScore(parsed=True, n_quotes=2, strict=0.5, content=1.0, citation=1.0, rouge_l=0.4),
    ...      AnswerScore(parsed=False, refusal=True)]
    >>> a = six_axes(s, [True, True], [], [None, None])
    >>> a.strict_verbatim, a.content_verbatim, a.rouge_l_030, a.false_refusals
    (0.5, 1.0, 0.5, 0.5)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mad_guardrails.agents.backends.base import LLMBackend
from mad_guardrails.agents.training.raft import AnswerScore, AnswerVerifier, RaftItem, score_answer
from mad_guardrails.core.records import append_models, read_models
from mad_guardrails.policies.schema import Rule

ROUGE_THRESHOLD = 0.30
CONDITIONS = ("normal", "stress")


class Prediction(BaseModel):
    item_id: str
    model: str = Field(description="label of the model: base, adapter, ...")
    condition: str = Field(description="normal or stress")
    text: str
    finish_reason: str | None = None
    error: str | None = None


class SixAxes(BaseModel):
    strict_verbatim: float | None
    content_verbatim: float | None
    citation_validity: float | None
    rouge_l_030: float
    false_refusals: float | None
    strict_verbatim_stress: float | None
    parse_rate: float
    answered: float
    oracle_quoted: float | None
    decision_accuracy: float | None
    false_allow: float | None = Field(default=None, description="share of labelled flag/block items decided allow")
    n_normal: int
    n_stress: int


AXES = ("strict_verbatim", "content_verbatim", "citation_validity", "rouge_l_030", "false_refusals",
        "strict_verbatim_stress")
EXTRA = ("parse_rate", "answered", "oracle_quoted", "decision_accuracy", "false_allow")


def _mean(xs: Sequence[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None


def six_axes(normal: Sequence[AnswerScore], oracle_present: Sequence[bool], stress: Sequence[AnswerScore],
             expected: Sequence[str | None]) -> SixAxes:
    """The axes from scored answers: ``normal`` with, per item, whether its oracle was shown and its expected
    decision; ``stress`` scored on the stress set."""
    quoted = [s for s in normal if s.n_quotes]
    present = [s for s, p in zip(normal, oracle_present) if p]
    labelled = [(s, e) for s, e in zip(normal, expected) if e is not None]
    return SixAxes(
        strict_verbatim=_mean([s.strict for s in quoted if s.strict is not None]),
        content_verbatim=_mean([s.content for s in quoted if s.content is not None]),
        citation_validity=_mean([s.citation for s in quoted if s.citation is not None]),
        rouge_l_030=_mean([1.0 if s.rouge_l >= ROUGE_THRESHOLD else 0.0 for s in normal]) or 0.0,
        false_refusals=_mean([1.0 if s.refusal else 0.0 for s in present]),
        strict_verbatim_stress=_mean([s.strict for s in stress if s.n_quotes and s.strict is not None]),
        parse_rate=_mean([1.0 if s.parsed else 0.0 for s in normal]) or 0.0,
        answered=_mean([1.0 if s.n_quotes else 0.0 for s in normal]) or 0.0,
        oracle_quoted=_mean([1.0 if s.oracle_share else 0.0 for s in present]),
        decision_accuracy=_mean([1.0 if s.decision == e else 0.0 for s, e in labelled]),
        false_allow=_mean([1.0 if s.decision == "allow" else 0.0 for s, e in labelled if e in ("flag", "block")]),
        n_normal=len(normal), n_stress=len(stress),
    )


class EvalReport(BaseModel):
    models: dict[str, SixAxes]
    settings: dict = Field(default_factory=dict)
    per_item: dict[str, dict[str, list[dict]]] = Field(default_factory=dict,
                                                       description="model -> condition -> per-item scores")


# ----------------------------------------------------------------------------------------------- predictions
def read_predictions(path: Path) -> list[Prediction]:
    return read_models(path, Prediction, tolerant=True)  # a line cut by a crash: that prediction is redone


def predictions_file(work: Path, label: str, condition: str) -> Path:
    return work / f"predictions_{label}_{condition}.jsonl"


async def predict_with_backend(items: Sequence[RaftItem], messages: Callable[[RaftItem], list[dict]],
                               backend: LLMBackend, model: str, out: Path, *, label: str, condition: str,
                               max_tokens: int = 320, concurrency: int = 4,
                               grammar: Callable[[RaftItem], str] | None = None,
                               progress: bool = True) -> list[Prediction]:
    """Greedy answers through a served backend (vLLM: ``model`` = the base name or the LoRA module's name), appended to
    ``out``; items already answered there are skipped (resume). ``grammar``: each answer under ``grammar(item)``
    (the coordinator's ``grammar`` mode, :mod:`mad_guardrails.agents.grammar`)."""
    from mad_guardrails.core.progress import make_progress

    done = {p.item_id for p in read_predictions(out) if p.error is None}
    todo = [it for it in items if it.id not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    sem = asyncio.Semaphore(max(1, concurrency))
    with make_progress(disable=not progress) as bar:
        task = bar.add_task(f"{label} / {condition}", total=len(todo))

        async def one(it: RaftItem) -> None:
            async with sem:
                try:
                    r = await backend.chat(messages(it), model=model, temperature=0.0, max_tokens=max_tokens,
                                           grammar=grammar(it) if grammar is not None else None)
                    p = Prediction(item_id=it.id, model=label, condition=condition, text=r.text,
                                   finish_reason=r.finish_reason)
                except Exception as e:  # noqa: BLE001 - recorded; the item counts as a failed answer
                    p = Prediction(item_id=it.id, model=label, condition=condition, text="",
                                   error=f"{type(e).__name__}: {e}")
            append_models([p], out)
            bar.advance(task)

        await asyncio.gather(*(one(it) for it in todo))
    return read_predictions(out)


def predict_local(items: Sequence[RaftItem], messages: Callable[[RaftItem], list[dict]], gen, out: Path, *,
                  label: str, condition: str, max_tokens: int = 320, progress: bool = True) -> list[Prediction]:
    """Greedy answers from a :class:`mad_guardrails.agents.training.generate.LocalGenerator` (all at once, batched)."""
    done = {p.item_id for p in read_predictions(out) if p.error is None}
    todo = [it for it in items if it.id not in done]
    if todo:
        outs = gen.generate([messages(it) for it in todo], n=1, temperature=0.0, max_tokens=max_tokens,
                            progress=progress, desc=f"{label} / {condition}")
        append_models((Prediction(item_id=it.id, model=label, condition=condition, text=o[0].text,
                                  finish_reason=o[0].finish_reason) for it, o in zip(todo, outs)), out)
    return read_predictions(out)


# --------------------------------------------------------------------------------------------------- scoring
def score_condition(items: Sequence[RaftItem], preds: Sequence[Prediction], verifier: AnswerVerifier,
                    rules: Callable[[str], Rule | None] | None = None) -> list[AnswerScore]:
    """Scores aligned with ``items``; an item without a prediction (or with a backend error) scores as unparseable."""
    by_id = {p.item_id: p for p in preds if p.error is None}
    return [score_answer(it, by_id[it.id].text if it.id in by_id else None, verifier, rules) for it in items]


def evaluate(items: dict[str, Sequence[RaftItem]], preds: dict[str, dict[str, Sequence[Prediction]]],
             verifier: AnswerVerifier, rules: Callable[[str], Rule | None] | None = None, *,
             settings: dict | None = None) -> EvalReport:
    """``items``: condition → items; ``preds``: model label → condition → predictions. One :class:`SixAxes` per
    model."""
    normal, stress = list(items.get("normal", [])), list(items.get("stress", []))
    models: dict[str, SixAxes] = {}
    per_item: dict[str, dict[str, list[dict]]] = {}
    for label, by_cond in preds.items():
        sn = score_condition(normal, by_cond.get("normal", []), verifier, rules)
        ss = score_condition(stress, by_cond.get("stress", []), verifier, rules) if stress else []
        models[label] = six_axes(sn, [it.oracle_present for it in normal], ss, [it.expected for it in normal])
        per_item[label] = {
            "normal": [{"item_id": it.id, **s.model_dump(exclude={"error"})} for it, s in zip(normal, sn)],
            "stress": [{"item_id": it.id, **s.model_dump(exclude={"error"})} for it, s in zip(stress, ss)],
        }
    return EvalReport(models=models, settings=settings or {}, per_item=per_item)


def adapter_wins(report: EvalReport, base: str = "base", adapter: str = "adapter") -> tuple[bool, list[str]]:
    """The shipping rule: the adapter must not lose on strict verbatim nor on citation validity, must win on at
    least one of them, and must not refuse more often with the oracle present."""
    b, a = report.models[base], report.models[adapter]

    def v(x: float | None) -> float:
        return -1.0 if x is None else x

    why = []
    ok = True
    for name in ("strict_verbatim", "citation_validity"):
        if v(getattr(a, name)) < v(getattr(b, name)):
            ok = False
            why.append(f"{name}: adapter {getattr(a, name)} < base {getattr(b, name)}")
    if not any(v(getattr(a, n)) > v(getattr(b, n)) for n in ("strict_verbatim", "citation_validity")):
        ok = False
        why.append("no gain on strict verbatim or citation validity")
    fa, fb = a.false_refusals, b.false_refusals
    if fa is not None and fb is not None and fa > fb:
        ok = False
        why.append(f"false refusals: adapter {fa} > base {fb}")
    if ok:
        why.append("adapter wins on grounding without more false refusals")
    return ok, why


def markdown_table(report: EvalReport) -> str:
    labels = list(report.models)
    head = "| axis | " + " | ".join(labels) + " |\n|---|" + "---:|" * len(labels)
    rows = []
    for name in (*AXES, *EXTRA, "n_normal", "n_stress"):
        vals = [getattr(report.models[m], name) for m in labels]
        rows.append(f"| {name} | " + " | ".join("–" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))
                                              for x in vals) + " |")
    return head + "\n" + "\n".join(rows)


def write_report(report: EvalReport, out_dir: Path, stem: str = "eval_report") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    j = out_dir / f"{stem}.json"
    j.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    m = out_dir / f"{stem}.md"
    m.write_text("# Coordinator: six axes (SEEDS §2)\n\n" + markdown_table(report) + "\n\nSettings: `"
                 + json.dumps(report.settings, sort_keys=True) + "`\n", encoding="utf-8")
    return j, m
