"""Template queries, no LLM (the offline default): :class:`TemplateQueryGenerator` fills the templates of
``query_templates.yaml`` per query type (``benign_sensitive`` / ``ambiguous`` / ``adversarial``, the seed embedder's
types) from a passage's slots (:mod:`.passage_text`) and the policy packs' rule titles / key facts that point at the
passage (:func:`policy_facts`), and rewrites legal terms into everyday words with a probability (``colloquial``
lexicon), so one passage yields formal and colloquial queries."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.text import collapse_ws
from mad_guardrails.retrieval.training.pairs import QUERY_TYPES, PassageRef
from mad_guardrails.retrieval.training.passage_text import (
    IMPERATIVE_VERBS,
    Clause,
    KeyPhrases,
    defined_term,
    duty_clauses,
    imperative_duty,
    lower_first,
    statements,
    title_of,
)

TEMPLATES_FILE = Path(__file__).with_name("query_templates.yaml")


class Template(BaseModel):
    slots: list[str]
    text: str


class TemplateSet(BaseModel):
    acts: dict[str, list[str]]
    actors: dict[str, list[str]]
    templates: dict[str, list[Template]]
    colloquial: list[tuple[str, list[str]]]


@lru_cache(maxsize=4)
def load_templates(path: str | None = None) -> TemplateSet:
    p = Path(path) if path else TEMPLATES_FILE
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        ts = TemplateSet.model_validate(raw)
    except (OSError, yaml.YAMLError, ValueError) as e:
        raise InputError(f"query templates cannot be read ({e})", where=str(p),
                         fix="fix the YAML (see the header of retrieval/training/query_templates.yaml)") from e
    missing = set(QUERY_TYPES) - set(ts.templates)
    if missing:
        raise InputError(f"no templates for query types {sorted(missing)}", where=str(p),
                         fix="add a list under templates: for each type")
    return ts


class Colloquializer:
    """Legal terms → everyday words (one regex pass, longest pattern first)."""

    def __init__(self, pairs: Sequence[tuple[str, list[str]]], rng: random.Random):
        self.rng = rng
        ordered = sorted(pairs, key=lambda p: -len(p[0]))
        self.alts = [alts for _, alts in ordered]
        self.rx = re.compile("|".join(f"(?P<g{i}>\\b(?:{pat})\\b)" for i, (pat, _) in enumerate(ordered)),
                             re.IGNORECASE)

    def __call__(self, text: str, p: float = 1.0) -> str:
        def rep(m: re.Match) -> str:
            if self.rng.random() > p:
                return m.group(0)
            i = int(m.lastgroup[1:])
            return self.rng.choice(self.alts[i])

        out = collapse_ws(self.rx.sub(rep, text))
        return re.sub(r"(?i)\b(the|a|an) (the|a|an|we)\b", r"\2", out)


class Facts(BaseModel):
    """What the generator extracted from one passage (the slots)."""

    title: str = ""
    term: str = ""
    imperative: str = ""
    clauses: list[Clause] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    phrases: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)



class TemplateQueryGenerator:
    """Fills ``query_templates.yaml`` from a passage's extracted slots (see the module docstring)."""

    def __init__(self, keyphrases: KeyPhrases, *, seed: int = 0, templates: TemplateSet | None = None,
                 colloquial_p: float = 0.6, act_p: float = 0.5):
        self.ts = templates or load_templates()
        self.kp = keyphrases
        self.rng = random.Random(seed)
        self.coll = Colloquializer(self.ts.colloquial, self.rng)
        self.colloquial_p = colloquial_p
        self.act_p = act_p

    def facts(self, ref: PassageRef, extra_facts: Sequence[str] = ()) -> Facts:
        text = ref.text
        title = title_of(ref.heading)
        if title.lower() in ("definitions", "definition", "subject matter", "entry into force", "addressees"):
            title = ""
        return Facts(title=title, term=defined_term(text), imperative=imperative_duty(text),
                     clauses=duty_clauses(text)[:3], statements=statements(text)[:3],
                     phrases=self.kp.phrases(text, k=3), facts=list(extra_facts)[:4])

    def _slots(self, ref: PassageRef, f: Facts) -> dict[str, str]:
        rng = self.rng
        slots: dict[str, str] = {}
        if f.title:
            slots["title"] = lower_first(f.title)
        if f.term:
            slots["term"] = f.term
        if f.imperative:
            slots["duty"] = f.imperative
        elif f.clauses:
            c = rng.choice(f.clauses)
            if not c.predicate.lower().startswith(("be ", "not be ", "have been ")):  # passive: no duty of an actor
                slots["duty"] = c.predicate
            if c.subject:
                slots["clause"] = lower_first(c.statement)
                slots["actor"] = lower_first(c.subject)
        elif f.statements and not f.term:
            st = rng.choice(f.statements)
            if not st.split()[0].lower() in IMPERATIVE_VERBS:
                slots["clause"] = lower_first(st)
        if "actor" not in slots and ref.doc in self.ts.actors:
            slots["actor"] = rng.choice(self.ts.actors[ref.doc])
        if f.phrases:
            ph = list(f.phrases)
            rng.shuffle(ph)
            slots["phrase"] = ph[0].lower() if not ph[0].isupper() else ph[0]
            if len(ph) > 1:
                slots["phrase2"] = ph[1].lower() if not ph[1].isupper() else ph[1]
        if f.facts:
            slots["fact"] = lower_first(rng.choice(f.facts))
        acts = self.ts.acts.get(ref.doc)
        if acts:
            slots["act"] = rng.choice(acts)
        return slots

    def generate(self, ref: PassageRef, *, per_type: int = 1, extra_facts: Sequence[str] = ()
                 ) -> list[tuple[str, str, str]]:
        """``[(query, type, source)]`` for one passage: ``per_type`` queries of each type (fewer when slots lack)."""
        f = self.facts(ref, extra_facts)
        out: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for qtype in QUERY_TYPES:
            made = 0
            for _attempt in range(per_type * 4):
                if made >= per_type:
                    break
                slots = self._slots(ref, f)
                usable = [t for t in self.ts.templates[qtype] if all(s in slots for s in t.slots)]
                if not usable:
                    break
                if "act" in slots and self.rng.random() > self.act_p:  # many real questions name no act
                    no_act = [t for t in usable if "act" not in t.slots]
                    usable = no_act or usable
                t = self.rng.choice(usable)
                q = t.text.format(**{k: slots.get(k, "") for k in t.slots})
                if self.rng.random() < self.colloquial_p:
                    q = self.coll(q)
                q = collapse_ws(q)
                q = q[0].upper() + q[1:] if q and q[0].islower() and qtype != "ambiguous" else q
                if q.lower() in seen or len(q) < 8:
                    continue
                seen.add(q.lower())
                source = next((s for s in ("fact", "term", "duty", "clause", "title", "phrase") if s in t.slots),
                              "phrase")
                out.append((q, qtype, {"duty": "clause"}.get(source, source)))
                made += 1
        return out



# --------------------------------------------------------------------------------------------------------------------
# policy packs: rule titles and key facts that point at passages
# --------------------------------------------------------------------------------------------------------------------


def policy_facts(refs: Sequence[PassageRef], rules: Sequence[Any]) -> dict[int, list[str]]:
    """Passage index → rule titles / key-fact names of the policy ``rules`` (objects with ``title``, ``key_facts``
    and ``provisions``; the caller loads the packs) whose provisions fall in that passage."""
    from mad_guardrails.core.units import id_covers

    by_unit: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, r in enumerate(refs):
        by_unit[r.doc][r.unit_id].append(i)
    out: dict[int, list[str]] = defaultdict(list)
    for rule in rules:
        texts = [rule.title] + [kf.name for kf in rule.key_facts]
        for prov in rule.provisions:
            units = by_unit.get(prov.split(":", 1)[0], {})
            hits = [i for uid, idx in units.items() if id_covers(uid, prov) or id_covers(prov, uid) for i in idx]
            for i in hits[:6]:
                for t in texts:
                    if t and t not in out[i]:
                        out[i].append(t)
    return dict(out)
