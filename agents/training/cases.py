"""Cases for the coordinator's training and held-out evaluation: an AI output under check, the policy rules it is
about, and the *oracle* units (the rules' provisions) that answer it.

Sources:

* :func:`cases_from_rule_examples` — the labelled examples inside the policy packs (``violates`` → the rule's
  default action, ``respects`` → ``allow``); the project's own text, so training never touches an eval set;
* :func:`cases_from_jsonl` — labelled case files such as ``evals/data/regulatory_cases.jsonl`` /
  ``policy_screening.jsonl`` (``output``, ``query``, ``gold_rules``, ``expected``); used for held-out evaluation;
* :func:`disjoint_from` — drops training cases that share a rule or an oracle unit with the held-out cases, so the
  held-out score measures provisions the adapter never saw.

    >>> from mad_guardrails.policies.schema import Rule, RuleExample
    >>> r = Rule(id="x.r1", title="T", summary="S", kind="obligation", provisions=["nis2:art_23.4.a"],
    ...          default_action="block", examples=[RuleExample(text="Send it within 72 hours.", label="violates")])
    >>> cs = cases_from_rule_examples([r], known=lambda uid: True)
    >>> cs[0].id, cs[0].expected, cs[0].oracle
    ('rule:x.r1:0', 'block', ['nis2:art_23.4.a'])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from mad_guardrails.core.debate import Case, Decision
from mad_guardrails.core.errors import InputError
from mad_guardrails.core.units import id_covers
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)

#: at most this many provisions of a case's rules become its oracle units (prompts stay short on a CPU)
MAX_ORACLE = 3


class CoordCase(BaseModel):
    """One case for the coordinator, with what a grounded answer should rest on."""

    id: str
    case: Case
    rules: list[str] = Field(description="ids of the policy rules the case is about (shown in the prompt)")
    oracle: list[str] = Field(description="unit ids that answer the case (the rules' provisions found in the corpus)")
    expected: Decision | None = Field(default=None, description="the labelled decision, when known")
    source: str = ""


def _oracle_of(rules: Sequence[Rule], known: Callable[[str], bool], max_oracle: int) -> list[str]:
    out: list[str] = []
    for r in rules:
        for p in r.provisions:
            if known(p) and not any(id_covers(o, p) or id_covers(p, o) for o in out):
                out.append(p)  # a point of an oracle article (or the article of an oracle point) adds nothing
    return out[:max_oracle]


def cases_from_rule_examples(rules: Iterable[Rule], *, known: Callable[[str], bool],
                             max_oracle: int = MAX_ORACLE) -> list[CoordCase]:
    """One case per labelled example of each rule; rules none of whose provisions ``known`` are skipped."""
    out: list[CoordCase] = []
    for r in rules:
        oracle = _oracle_of([r], known, max_oracle)
        if not oracle:
            continue
        for i, ex in enumerate(r.examples):
            expected = r.default_action if ex.label == "violates" else "allow"
            out.append(CoordCase(id=f"rule:{r.id}:{i}", case=Case(output=ex.text.strip()), rules=[r.id],
                                 oracle=oracle, expected=expected, source="rule_examples"))
    return out


def cases_from_jsonl(path: str | Path, *, rule_of: Callable[[str], Rule | None], known: Callable[[str], bool],
                     max_oracle: int = MAX_ORACLE, source: str | None = None) -> list[CoordCase]:
    """Labelled cases (``id``, ``output``, ``query``?, ``gold_rules``, ``expected``) whose gold rules have provisions in
    the corpus. Rows without such rules are skipped (logged); a malformed row raises :class:`InputError`."""
    p = Path(path)
    if not p.is_file():
        raise InputError("no such case file", where=str(p), fix="pass a JSONL file such as "
                         "evals/data/regulatory_cases.jsonl")
    src = source or p.stem
    out: list[CoordCase] = []
    skipped = 0
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            output = str(row["output"])
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"line {n} is not a case object with an 'output' ({type(e).__name__}: {e})",
                             where=f"{p}:{n}", fix="one JSON object per line with id, output, gold_rules, "
                             "expected") from e
        rules = [r for r in (rule_of(x) for x in row.get("gold_rules") or []) if r is not None]
        oracle = _oracle_of(rules, known, max_oracle)
        if not oracle:
            skipped += 1
            continue
        exp = row.get("expected")
        out.append(CoordCase(id=f"{src}:{row.get('id', n)}",
                             case=Case(output=output, query=row.get("query") or None, context=row.get("context")),
                             rules=[r.id for r in rules], oracle=oracle,
                             expected=exp if exp in ("allow", "flag", "block") else None, source=src))
    if skipped:
        log.info("%s: %d case(s) without a gold rule whose provisions are in the corpus were skipped", p, skipped)
    return out


def _related(a: str, b: str) -> bool:
    return id_covers(a, b) or id_covers(b, a)


def disjoint_from(train: Iterable[CoordCase], heldout: Iterable[CoordCase]) -> list[CoordCase]:
    """The training cases that share no rule and no oracle unit (nor a point / parent of one) with ``heldout``."""
    held = list(heldout)
    rules = {r for c in held for r in c.rules}
    units = {u for c in held for u in c.oracle}
    return [c for c in train
            if not rules.intersection(c.rules) and not any(_related(u, h) for u in c.oracle for h in units)]
