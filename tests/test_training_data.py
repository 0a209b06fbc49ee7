"""Training data for the embedder and the relevance head: generation by query type, split by unit, never the
held-out sets, source-aware hard negatives. No model is loaded here."""

from __future__ import annotations

import numpy as np

from mad_guardrails.retrieval.training.generate import generate_pairs, offtopic_train_queries
from mad_guardrails.retrieval.training.heldout import Decontaminator, heldout_queries
from mad_guardrails.retrieval.training.negatives import mine_for_pairs, mine_rows
from mad_guardrails.retrieval.training.pairs import QUERY_TYPES, TrainPair, load_pairs, passage_refs, save_pairs
from mad_guardrails.retrieval.training.passage_text import defined_term, duty_clauses
from mad_guardrails.retrieval.training.template_queries import load_templates


def test_generator_gives_every_query_type_per_passage(tiny_corpus):
    pairs = generate_pairs(tiny_corpus, seed=3, test_fraction=0.0, decontaminate=False, use_policies=False)
    refs = passage_refs(tiny_corpus)
    assert {p.type for p in pairs} == set(QUERY_TYPES)
    for r in refs:  # every passage is a positive of several queries, positives are the indexed text
        mine = [p for p in pairs if p.pid == r.pid]
        assert len(mine) >= 2 and all(p.positive == r.embed_text for p in mine)
    # queries are not copies of the passage text
    assert all(p.query.lower() not in p.positive.lower() for p in pairs)


def test_generation_is_reproducible_and_seed_dependent(tiny_corpus):
    a = [p.query for p in generate_pairs(tiny_corpus, seed=1, decontaminate=False, use_policies=False)]
    b = [p.query for p in generate_pairs(tiny_corpus, seed=1, decontaminate=False, use_policies=False)]
    c = [p.query for p in generate_pairs(tiny_corpus, seed=2, decontaminate=False, use_policies=False)]
    assert a == b and a != c


def test_split_is_by_unit_and_holdout_keys_go_to_test(tiny_corpus):
    pairs = generate_pairs(tiny_corpus, seed=0, test_fraction=0.4, decontaminate=False, use_policies=False,
                           holdout_keys=["gdpr:art_33"])
    train_keys = {p.key for p in pairs if p.split == "train"}
    test_keys = {p.key for p in pairs if p.split == "test"}
    assert train_keys and test_keys and not (train_keys & test_keys)
    assert "gdpr:art_33" in test_keys
    # framework elements split by their category, not by the function above it
    assert {p.key for p in pairs if p.doc == "nist-csf-2.0"} <= {"nist-csf-2.0:DE.CM-01", "nist-csf-2.0:DE.CM"}


def test_decontamination_drops_queries_close_to_heldout(tiny_corpus):
    pairs = generate_pairs(tiny_corpus, seed=5, test_fraction=0.0, decontaminate=False, use_policies=False)
    victim = pairs[0].query
    kept = generate_pairs(tiny_corpus, seed=5, test_fraction=0.0, decontaminate=[victim.upper() + "!"],
                          use_policies=False)
    assert victim not in {p.query for p in kept} and len(kept) == len(pairs) - 1


def test_no_training_text_is_close_to_the_handwritten_sets():
    held = heldout_queries()
    assert len(held) >= 220  # the regulatory and off-topic query sets are found
    dec = Decontaminator(held, 0.5)
    off = offtopic_train_queries(decontaminate=False)
    assert len(off) >= 100
    assert all(dec.keep(q) for q in off), [q for q in off if not dec.keep(q)]
    assert not {q.lower() for q in off} & {h.lower() for h in held}
    # the templates themselves are not held-out queries either
    ts = load_templates()
    assert all(dec.keep(t.text) for group in ts.templates.values() for t in group)


def test_clause_and_definition_extraction():
    c = duty_clauses("2. Member States shall ensure that providers inform users, as referred to in Article 9, "
                     "of the risks (see Annex II).")[0]
    assert c.subject == "providers" and c.predicate.startswith("inform users") and "Article" not in c.predicate
    assert defined_term("(7) ‘deployer’ means a natural or legal person using an AI system") == "deployer"


def test_pairs_roundtrip_gzip(tmp_path, tiny_corpus):
    pairs = generate_pairs(tiny_corpus, seed=0, decontaminate=False, use_policies=False)
    p = save_pairs(pairs, tmp_path / "p.jsonl.gz")
    assert load_pairs(p) == pairs


def test_mining_skips_top_ranks_related_and_banned_rows_and_prefers_the_same_act():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    sims = [0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.93, 0.92, 0.91]
    p = np.array([[s, np.sqrt(1 - s * s)] for s in sims], dtype=np.float32)
    docs = ["a", "a", "a", "b", "a", "b", "a", "a", "b"]
    rows = mine_rows(q, p, related=[{0}], docs_q=["a"], docs_p=docs, rank_range=(3, 9), n=3, banned={4},
                     margin=None)
    # ranks 1-2 skipped, row 0 related, row 4 banned; same act (a) first: rows 2, 6, 7
    assert rows == [[2, 6, 7]]
    # a negative scoring above the positive is treated as a likely false negative
    rows = mine_rows(q, p, related=[{8}], docs_q=["a"], docs_p=docs, rank_range=(1, 9), n=2, margin=0.0)
    assert rows == [[]]


def test_train_pairs_never_get_test_units_as_negatives(tiny_corpus):
    pairs = generate_pairs(tiny_corpus, seed=0, test_fraction=0.4, decontaminate=False, use_policies=False)
    refs = passage_refs(tiny_corpus)
    rng = np.random.default_rng(0)
    p = rng.normal(size=(len(refs), 8)).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    qv = rng.normal(size=(len(pairs), 8)).astype(np.float32)
    mined = mine_for_pairs(pairs, refs, qv, p, n=3, rank_range=(1, len(refs)), margin=None)
    test_pids = {r.pid for r in refs if r.key in {x.key for x in pairs if x.split == "test"}}
    for m in mined:
        assert isinstance(m, TrainPair) and m.pid not in m.negative_pids
        assert all(refs[[r.pid for r in refs].index(n)].key != m.key for n in m.negative_pids)
        if m.split == "train":
            assert not set(m.negative_pids) & test_pids
    assert any(m.negatives for m in mined if m.split == "train")
