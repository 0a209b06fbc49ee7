"""The trained clause reranker (retrieval/rerank.py) and clauses / rules ranked apart (retrieval/retriever.py)."""

from __future__ import annotations

import pytest

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.units import Evidence
from mad_guardrails.retrieval.config import RetrievalConfig
from mad_guardrails.retrieval.rerank import (
    BUNDLED_RERANKER,
    HeadModel,
    Reranker,
    RerankerScorer,
    bundled_reranker_dir,
    diversify_acts,
)
from mad_guardrails.retrieval.retriever import RetrievalResult, Retriever, merge_results, rule_cites

# hand-written passages (our paraphrases), the right one last in the fused order
CANDIDATES = [
    ("gdpr:art_33", "Article 33 — Notification of a personal data breach to the supervisory authority",
     "A company that suffers a breach of personal data tells the data protection authority within 72 hours of "
     "becoming aware of it, unless the breach is unlikely to result in a risk to people."),
    ("dora:art_28", "Article 28 — Managing ICT third-party risk",
     "Financial entities manage the risk of their ICT service providers as part of their ICT risk framework and "
     "keep a register of all contractual arrangements with those providers."),
    ("cra:art_14", "Article 14 — Reporting obligations of manufacturers",
     "Manufacturers notify any actively exploited vulnerability in their product to the CSIRT and to ENISA with "
     "an early warning within 24 hours."),
    ("eu-ai-act:art_5", "Article 5 — Prohibited AI practices",
     "It is prohibited to place on the market or use AI systems that infer the emotions of a natural person in "
     "the workplace or in education, except for medical or safety reasons."),
]


needs_adapter = pytest.mark.skipif(not (bundled_reranker_dir(BUNDLED_RERANKER) / "adapter_config.json").exists(),
                                   reason="no trained reranker ships in this build (bench/gpu/rerank/README.md)")


def _evidence() -> list[Evidence]:
    return [Evidence(unit_id=u, doc=u.split(":")[0], heading=h, text=t, rank=i, score=1.0 / i)
            for i, (u, h, t) in enumerate(CANDIDATES, 1)]


@pytest.fixture(scope="module")
def reranker() -> Reranker:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    r = Reranker.from_config(RetrievalConfig(reranker=BUNDLED_RERANKER, embedder={"device": "cpu"}))
    assert r is not None
    return r


@needs_adapter
def test_bundled_reranker_loads_offline(reranker, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert (bundled_reranker_dir(BUNDLED_RERANKER) / "adapter_config.json").exists()
    r = Reranker.from_config(RetrievalConfig(reranker=BUNDLED_RERANKER, embedder={"device": "cpu"}))
    assert isinstance(r.model, HeadModel) and r.calibrated


@needs_adapter
def test_bundled_reranker_has_its_trained_depth_and_the_configured_budget():
    import json

    info = json.loads((bundled_reranker_dir(BUNDLED_RERANKER) / "relevance_head.json").read_text())
    r = Reranker.from_config(RetrievalConfig(reranker=BUNDLED_RERANKER, rerank_top=7, rerank_max_length=64,
                                             embedder={"device": "cpu"}))
    assert len(r.model.head.model.bert.encoder.layer) == info.get("num_layers", 6)
    assert r.top == 7 and r.model.head.max_length == 64


def test_a_truncated_encoder_adapter_loads_with_its_layer_count(tmp_path):
    """A head trained on the first N encoder layers (``num_layers`` in relevance_head.json) loads as N layers, int8."""
    import json

    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from mad_guardrails.retrieval.embedder import resolve_model
    from mad_guardrails.retrieval.relevance_head import load_base_classifier

    base, _ = load_base_classifier(resolve_model("bundled:all-MiniLM-L6-v2", what="test").path, num_layers=2)
    get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["query", "value"],
                                    modules_to_save=["classifier", "pooler"])).save_pretrained(str(tmp_path))
    (tmp_path / "relevance_head.json").write_text(json.dumps({"base_model": "bundled:all-MiniLM-L6-v2",
                                                              "max_length": 128, "num_layers": 2}))
    r = Reranker.from_config(RetrievalConfig(reranker=str(tmp_path), rerank_max_length=96, embedder={"device": "cpu"}))
    layers = r.model.head.model.bert.encoder.layer
    assert len(layers) == 2 and r.model.head.max_length == 96 and r.calibrated
    assert isinstance(layers[0].attention.self.query, torch.ao.nn.quantized.dynamic.Linear)
    p = r.scores("Can my boss read my emotions at work?", _evidence())
    assert p.shape == (4,) and ((p >= 0) & (p <= 1)).all()


@needs_adapter
def test_reranker_puts_the_right_article_first(reranker):
    q = "Is my employer allowed to run software that reads how staff feel from their faces during meetings?"
    out = reranker.rerank(q, _evidence())
    assert out[0].unit_id == "eu-ai-act:art_5"
    assert [e.rank for e in out] == [1, 2, 3, 4]
    assert all(e.rerank is not None and 0.0 <= e.rerank <= 1.0 for e in out)
    assert out[0].rerank > out[1].rerank


@needs_adapter
def test_reranker_scores_unrelated_text_not_relevant(reranker):
    scores = reranker.scores("What temperature should I bake banana bread at?", _evidence())
    assert max(scores) < 0.5


def test_rules_are_ranked_apart_and_labelled(small_retriever):
    res = small_retriever.search("Outputs must not help build a social scoring system", k=3)
    assert res.rules, "a rule passage of the index should come back beside the clauses"
    assert all(e.kind == "rule" and e.doc == "policy" and e.source == "policy" for e in res.rules)
    assert all(e.kind == "clause" and e.doc != "policy" for e in res.evidence)
    assert [e.rank for e in res.rules] == list(range(1, len(res.rules) + 1))
    both = res.labelled()
    assert [e.kind for e in both] == ["clause"] * len(res.evidence) + ["rule"] * len(res.rules)
    assert [e.rank for e in both] == list(range(1, len(both) + 1))


@needs_adapter
def test_off_topic_query_abstains_on_reranker_probability(small_retriever, reranker):
    cfg = small_retriever.config.model_copy(update={"relevance_filter": "reranker", "reranker": BUNDLED_RERANKER})
    r = Retriever(small_retriever.index, small_retriever.embedder, cfg, reranker=reranker)
    assert isinstance(r.relevance.scorer, RerankerScorer)
    off = r.search("Which wine goes best with a mushroom risotto?")
    assert off.abstained and off.evidence == [] and off.rules == [] and off.best_relevance < 0.5
    on = r.search("Can my boss use software that reads my emotions at work?")
    assert not on.abstained and on.evidence[0].unit_id.startswith("eu-ai-act:art_5")


def test_reranker_filter_needs_a_trained_reranker(small_retriever):
    cfg = small_retriever.config.model_copy(update={"relevance_filter": "reranker", "reranker": None})
    with pytest.raises(ConfigError, match="trained reranker"):
        Retriever(small_retriever.index, small_retriever.embedder, cfg, reranker=None)


def test_act_diversity_keeps_the_best_clause_of_each_relevant_act():
    ev = [Evidence(unit_id=f"{d}:art_{i}", doc=d, text="t", rank=i, score=s, rerank=s)
          for i, (d, s) in enumerate([("nis2", .95), ("nis2", .9), ("nis2", .85), ("gdpr", .7), ("dora", .3)], 1)]
    out = diversify_acts(ev, 3, 0.5)
    assert [e.unit_id for e in out[:3]] == ["nis2:art_1", "nis2:art_2", "gdpr:art_4"]
    assert "dora:art_5" not in [e.unit_id for e in out[:3]]  # below the bar: not pulled in
    assert [e.rank for e in out] == [1, 2, 3, 4, 5]


def test_rule_cites_and_merge_keep_rules_after_clauses():
    assert rule_cites("x\nProvisions: gdpr:art_33.1, gdpr:art_34.\nKind: obligation") == ["gdpr:art_33.1",
                                                                                         "gdpr:art_34"]
    c = lambda u, s, r: Evidence(unit_id=u, doc=u.split(":")[0], text="t", rank=r, score=s)
    rule = Evidence(unit_id="policy:gdpr.breach", doc="policy", text="t", rank=1, score=0.02, kind="rule",
                    source="policy")
    a = RetrievalResult(query="a", mode="hybrid", evidence=[c("gdpr:art_33", 0.9, 1), c("gdpr:art_34", 0.5, 2)],
                        rules=[rule])
    b = RetrievalResult(query="b", mode="hybrid", evidence=[c("nis2:art_23", 0.95, 1)])
    ev, abstained, _ = merge_results([a, b])
    assert not abstained
    assert [e.unit_id for e in ev] == ["nis2:art_23", "gdpr:art_33", "policy:gdpr.breach"]
    assert [e.kind for e in ev] == ["clause", "clause", "rule"] and [e.rank for e in ev] == [1, 2, 3]


def test_written_queries_become_training_groups_with_mined_negatives(small_retriever):
    """A query a person wrote about an article gets that article's best-ranked passage as its positive and the
    retriever's other hits as negatives; one about a held-out (test) article never enters training."""
    from mad_guardrails.retrieval.training.rerank_data import index_refs, written_groups

    refs = index_refs(small_retriever.index)
    rows = [{"q": "our AI thing caused a serious accident, how long until we must tell the regulator?",
             "golds": ["eu-ai-act:art_73"], "type": "benign_sensitive"},
            {"q": "what makes a system high-risk in the first place", "golds": ["eu-ai-act:art_7"],
             "type": "ambiguous"}]  # art_7 is a test article of the reranker's split
    groups = written_groups(small_retriever, rows, refs=refs, depth=10)
    assert [g["q"] for g in groups] == [rows[0]["q"]]
    g = groups[0]
    assert g["set"] == "written" and g["split"] == "train"
    assert [refs[i].unit_id for i in g["pos"]] == ["eu-ai-act:art_73.2"]
    assert g["neg"] and not any(refs[i].unit_id.startswith("eu-ai-act:art_73") for i in g["neg"])


def test_written_groups_become_embedder_pairs_without_the_evaluation_articles(small_retriever, tmp_path):
    """The reranker's groups feed the embedder too: a written query's pair keeps its mined hard negatives, and a
    group whose positive lies in a held-out (evaluation) article is left out, as is a held-out negative."""
    from mad_guardrails.retrieval.training.rerank_data import (
        groups_as_pairs,
        index_refs,
        write_rerank_data,
        written_groups,
    )

    refs = index_refs(small_retriever.index)
    rows = [{"q": "our AI thing caused a serious accident, how long until we must tell the regulator?",
             "golds": ["eu-ai-act:art_73"], "type": "benign_sensitive"},
            {"q": "do we have to log what our high-risk system does", "golds": ["eu-ai-act:art_12"],
             "type": "ambiguous"}]
    groups = written_groups(small_retriever, rows, refs=refs, depth=10)
    write_rerank_data(refs, groups, tmp_path)
    pairs = groups_as_pairs(tmp_path, refs, template=0)
    assert {p.query for p in pairs} <= {g["q"] for g in groups}
    p = next(p for p in pairs if "accident" in p.query)
    assert p.unit_id.startswith("eu-ai-act:art_73") and p.negatives and p.source == "llm"
    assert not any(n.startswith("eu-ai-act:art_73") for n in p.negative_pids)
    held = groups_as_pairs(tmp_path, refs, holdout_keys=["eu-ai-act:art_73.1"], template=0)
    assert [p.query for p in held if "accident" in p.query] == []
