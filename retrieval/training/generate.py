"""The training query sets: (query, positive passage) pairs for the domain embedder (:func:`generate_pairs`), by
query type, with a unit-level split, and the off-topic queries of the relevance head (:func:`offtopic_train_queries`).

Two generators write the same :class:`~mad_guardrails.retrieval.training.pairs.TrainPair` rows:

* :class:`~mad_guardrails.retrieval.training.template_queries.TemplateQueryGenerator` needs no LLM (the offline
  default): it fills query templates from each passage's heading title, duty or statement sentence, key phrases
  (:mod:`.passage_text`) and the policy packs' rule titles / key facts that point at the passage;
* :class:`~mad_guardrails.retrieval.training.llm_queries.LLMQueryGenerator` asks an LLM backend for one query per
  type (only with a capable served model).

Every pair is split by its passage's unit (:func:`~mad_guardrails.retrieval.training.pairs.assign_split`), and
generated queries close to a held-out query are dropped
(:class:`~mad_guardrails.retrieval.training.heldout.Decontaminator`).

    >>> from mad_guardrails.core.units import Unit
    >>> from mad_guardrails.retrieval.corpus import Corpus
    >>> from mad_guardrails.retrieval.training.pairs import QUERY_TYPES
    >>> u = Unit(id="x:art_3", doc="x", kind="article", heading="Article 3 — Notification of incidents",
    ...          text="1. Operators shall notify the authority of any significant incident within 24 hours.")
    >>> pairs = generate_pairs(Corpus.from_units([u]), seed=1, test_fraction=0.0, decontaminate=False)
    >>> sorted({p.type for p in pairs}) == sorted(QUERY_TYPES) and all(p.unit_id.startswith("x:art_3") for p in pairs)
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mad_guardrails.core.errors import InputError
from mad_guardrails.retrieval.training.heldout import Decontaminator, heldout_queries
from mad_guardrails.retrieval.training.llm_queries import LLMQueryGenerator
from mad_guardrails.retrieval.training.pairs import TrainPair, assign_split, passage_refs
from mad_guardrails.retrieval.training.passage_text import KeyPhrases
from mad_guardrails.retrieval.training.template_queries import TemplateQueryGenerator, policy_facts

if TYPE_CHECKING:
    from mad_guardrails.retrieval.corpus import Corpus

OFFTOPIC_TRAIN_FILE = Path(__file__).with_name("offtopic_train.yaml")


def generate_pairs(
    corpus: Corpus,
    *,
    passages: Sequence[Any] | None = None,
    per_type: int = 1,
    seed: int = 0,
    test_fraction: float = 0.12,
    holdout_keys: Iterable[str] = (),
    max_pairs: int | None = None,
    use_policies: bool = True,
    rules: Sequence[Any] | None = None,
    decontaminate: bool | Sequence[str] = True,
    max_overlap: float = 0.5,
    llm: LLMQueryGenerator | None = None,
    progress: bool = False,
) -> list[TrainPair]:
    """Generated pairs for every passage of ``corpus`` (see the module docstring); ``max_pairs`` keeps a random
    subset of the *train* pairs (test pairs are kept whole). ``llm`` adds LLM-written queries beside the templates."""
    from mad_guardrails.core.progress import make_progress

    refs = passage_refs(corpus, passages)
    kp = KeyPhrases(r.text for r in refs)
    gen = TemplateQueryGenerator(kp, seed=seed)
    facts = policy_facts(refs, rules) if use_policies and rules else {}
    holdout = list(holdout_keys)
    if decontaminate is True:
        dec = Decontaminator(heldout_queries(), max_overlap)
    elif decontaminate:
        dec = Decontaminator(list(decontaminate), max_overlap)
    else:
        dec = None
    pairs: list[TrainPair] = []
    dropped = 0
    with make_progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("generating queries", total=len(refs))
        for i, r in enumerate(refs):
            split = assign_split(r.key, test_fraction, seed, holdout)
            made = gen.generate(r, per_type=per_type, extra_facts=facts.get(i, ()))
            if llm is not None:
                made += [(q, t, "llm") for q, t in llm.generate(r)]
            for q, qtype, source in made:
                if dec is not None and not dec.keep(q):
                    dropped += 1
                    continue
                pairs.append(TrainPair(query=q, type=qtype, pid=r.pid, unit_id=r.unit_id, key=r.key, doc=r.doc,
                                       positive=r.embed_text, source=source, split=split))
            bar.advance(task)
    if max_pairs is not None:
        train = [p for p in pairs if p.split == "train"]
        if len(train) > max_pairs:
            rng = random.Random(seed)
            keep = set(map(id, rng.sample(train, max_pairs)))
            pairs = [p for p in pairs if p.split == "test" or id(p) in keep]
    generate_pairs.last_dropped = dropped  # type: ignore[attr-defined]
    return pairs



def offtopic_train_queries(path: str | Path | None = None, *, decontaminate: bool = True) -> list[str]:
    """Our own off-topic training queries (``offtopic_train.yaml``), minus any close to a held-out query."""
    p = Path(path) if path else OFFTOPIC_TRAIN_FILE
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"cannot read off-topic training queries ({e})", where=str(p), fix="fix the YAML") from e
    qs = [q.strip() for group in raw.values() for q in (group or []) if isinstance(q, str) and q.strip()]
    if decontaminate:
        dec = Decontaminator(heldout_queries(), 0.5)
        qs = [q for q in qs if dec.keep(q)]
    return qs
