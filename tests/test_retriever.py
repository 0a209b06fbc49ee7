"""Hybrid retrieval on the small real index: ranking, scores, modes, abstention, batching, lookup, fusion,
relevance calibration, reranker switch."""

from __future__ import annotations

import pytest

from mad_guardrails.core.errors import IndexError_, InputError, ModelUnavailableError
from mad_guardrails.retrieval.config import RetrievalConfig
from mad_guardrails.retrieval.fusion import ranked, rrf, weighted_fusion
from mad_guardrails.retrieval.relevance import (
    RelevanceCalibration,
    RelevanceFilter,
    ThresholdScorer,
    calibrate_threshold,
    is_dev_query,
)
from mad_guardrails.retrieval.rerank import Reranker
from mad_guardrails.retrieval.retriever import NO_EVIDENCE, RetrievalResult, Retriever


def test_search_returns_ranked_scored_evidence(small_retriever):
    res = small_retriever.search("How quickly must an essential entity send an early warning about an incident?", k=5)
    assert isinstance(res, RetrievalResult) and not res.abstained and res.reason is None
    assert set(res.ids[:2]) == {"nis2:art_23.4.a", "nis2:art_23.4.b"}
    assert [e.rank for e in res.evidence] == [1, 2, 3, 4, 5]
    assert [e.score for e in res.evidence] == sorted((e.score for e in res.evidence), reverse=True)
    for e in res.evidence:
        assert e.dense is not None and e.bm25 is not None and e.relevance is not None
        assert e.source == ("policy" if e.doc == "policy" else "regulation")
    assert len({e.unit_id for e in res.evidence}) == 5
    assert {"embed", "dense", "bm25", "fuse", "relevance", "total"} <= set(res.timings)


def test_policy_evidence_is_marked(small_retriever):
    res = small_retriever.search("Outputs must not help build a social scoring system", k=3)
    pol = [e for e in res.rules if e.unit_id.startswith("policy:")]  # rules are ranked apart from the clauses
    assert pol and pol[0].source == "policy" and pol[0].doc == "policy" and pol[0].kind == "rule"
    assert not any(e.unit_id.startswith("policy:") for e in res.evidence)


def test_off_topic_query_abstains(small_retriever):
    res = small_retriever.search("What is the best way to caramelise onions for a tart?")
    assert res.abstained and res.reason == NO_EVIDENCE and res.evidence == []
    assert res.best_relevance is not None and res.best_relevance < 0.5
    ok = small_retriever.search("Can my boss use software that reads my emotions at work?")
    assert not ok.abstained and ok.evidence[0].unit_id == "eu-ai-act:art_5.1.f"
    assert ok.evidence[0].relevance >= 0.5


def test_modes(small_retriever):
    q = "register of information on contractual arrangements with ICT third-party service providers"
    for mode in ("hybrid", "dense", "bm25"):
        res = small_retriever.search(q, k=3, mode=mode)
        assert res.mode == mode and res.evidence[0].unit_id == "dora:art_28", mode
    bm = small_retriever.search(q, k=3, mode="bm25")
    assert bm.evidence[0].score == bm.evidence[0].bm25  # bm25 mode ranks by the BM25 score itself
    with pytest.raises(InputError, match="mode"):
        small_retriever.search(q, mode="sparse")


def test_hybrid_recovers_what_one_retriever_misses(small_retriever):
    """Queries that name a provision by its identifier are the dense model's blind spot and BM25's strength: hybrid
    lets BM25 lead for them and gets them right where dense alone does not; on paraphrases the dense side leads."""
    plain = Retriever(small_retriever.index, small_retriever.embedder, small_retriever.config, relevance=None)
    for query, want in (("Article 17", "gdpr:art_17"), ("GV.OC-01", "nist-csf-2.0:GV.OC-01"),
                        ("Article 28 DORA", "dora:art_28")):
        assert plain.search(query, k=3, mode="dense").evidence[0].unit_id != want, query  # the trivial failure
        assert plain.search(query, k=3, mode="bm25").evidence[0].unit_id == want, query
        assert plain.search(query, k=3, mode="hybrid").evidence[0].unit_id == want, query
    para = "Can my boss use software that reads my emotions at work?"
    assert plain.search(para, k=3, mode="dense").evidence[0].unit_id == "eu-ai-act:art_5.1.f"
    assert plain.search(para, k=3, mode="hybrid").evidence[0].unit_id == "eu-ai-act:art_5.1.f"


def test_search_many_matches_search(small_retriever):
    qs = ["When must a data breach be notified to the supervisory authority?", "Which AI systems are high-risk?"]
    many = small_retriever.search_many(qs, k=4)
    for q, r in zip(qs, many):
        single = small_retriever.search(q, k=4)
        assert r.ids == single.ids
        assert [round(e.score, 5) for e in r.evidence] == [round(e.score, 5) for e in single.evidence]
    assert many[0].evidence[0].unit_id == "gdpr:art_33"


def test_doc_filter(small_retriever):
    res = small_retriever.search("incident reporting deadline", k=5, docs=["dora"])
    assert res.evidence and all(e.doc == "dora" for e in res.evidence)


def test_bad_queries(small_retriever):
    with pytest.raises(InputError, match="empty"):
        small_retriever.search("   ")
    with pytest.raises(InputError, match="not text"):
        small_retriever.search_many(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(InputError, match="characters"):
        small_retriever.search("x" * 30_000)


def test_lookup(small_retriever):
    assert small_retriever.lookup("gdpr:art_17").startswith("The data subject has the right")
    joined = small_retriever.lookup("nis2:art_23")  # not indexed itself: its indexed points, joined
    assert "early warning" in joined and "72 hours" in joined
    assert small_retriever.lookup("gdpr:art_999") is None


def test_bm25_mode_needs_bm25(small_index_dir, minilm_embedder, tmp_path):
    from mad_guardrails.retrieval.index import RegIndex
    from tests.fixtures.index import small_passage_dicts

    RegIndex.build(small_passage_dicts()[:5], minilm_embedder, tmp_path / "nobm", progress=False, bm25=False)
    r = Retriever(RegIndex.load(tmp_path / "nobm", minilm_embedder), minilm_embedder, RetrievalConfig())
    assert r.search("social scoring", mode="dense").evidence
    with pytest.raises(IndexError_, match="BM25"):
        r.search("social scoring", mode="hybrid")


def test_from_config_loads_index(small_index_dir, offline_embedder_config):
    cfg = RetrievalConfig(embedder=offline_embedder_config, index_dir=str(small_index_dir), k=3)
    r = Retriever.from_config(cfg, "offline")
    assert len(r.search("Do chatbots have to say they are AI?").evidence) == 3
    assert r.relevance is not None and r.reranker is None
    with pytest.raises(IndexError_, match="mad-guardrails index build"):
        Retriever.from_config(cfg.model_copy(update={"index_dir": str(small_index_dir / "missing")}), "offline")


# ------------------------------------------------------------------------------------------------ fusion


def test_rrf_prefers_consensus():
    fused = rrf([["a", "b", "c"], ["b", "d", "a"]], k=60)
    assert ranked(fused)[0] == "b"  # 2nd + 1st beats 1st + 3rd
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert rrf([["a", "a", "b"]])["a"] == pytest.approx(1 / 61)  # a repeated id counts once
    assert ranked(rrf([["a"], ["b"]], weights=[1.0, 2.0]))[0] == "b"
    with pytest.raises(ValueError):
        rrf([["a"]], weights=[1.0, 1.0])


def test_weighted_fusion():
    fused = weighted_fusion([{"a": 0.9, "b": 0.1}, {"b": 5.0, "c": 1.0}], weights=[1.0, 0.5])
    assert fused == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})


# ------------------------------------------------------------------------------------------------ relevance


def test_calibration_separates_and_prefers_keeping():
    cal = calibrate_threshold([0.55, 0.6, 0.7, 0.5], [0.1, 0.2, 0.3], min_in_domain_pass=1.0)
    assert 0.3 < cal.threshold < 0.5 and cal.threshold < 0.4  # inside the gap, nearer the off-topic side
    assert cal.in_domain_pass_rate == 1.0 and cal.off_topic_abstain_rate == 1.0 and cal.calibrated
    overlapping = calibrate_threshold([0.3, 0.5, 0.6, 0.7], [0.1, 0.35, 0.4], min_in_domain_pass=1.0)
    assert overlapping.threshold <= 0.3  # must keep every in-domain query
    s = ThresholdScorer(cal)
    hi, mid, lo = s.score_values([cal.threshold + 0.2, cal.threshold, cal.threshold - 0.2])
    assert hi > 0.9 and mid == pytest.approx(0.5) and lo < 0.1
    assert s.score_values([None]) == [0.0]  # no dense score → not relevant (fail closed)


def test_relevance_filter_from_config():
    cal = RelevanceCalibration(threshold=0.3, temperature=0.05, calibrated=True)
    assert RelevanceFilter.from_config(RetrievalConfig(relevance_filter="none"), cal) is None
    f = RelevanceFilter.from_config(RetrievalConfig(), cal)
    assert isinstance(f.scorer, ThresholdScorer) and f.min_score == 0.5
    from mad_guardrails.core.errors import ConfigError

    with pytest.raises(ConfigError, match="relevance_model"):
        RelevanceFilter.from_config(RetrievalConfig(relevance_filter="cross-encoder"), cal)


def test_dev_split_is_stable():
    ids = [f"q{i:03d}" for i in range(220)]
    dev = [i for i in ids if is_dev_query(i)]
    assert 40 <= len(dev) <= 90 and dev == [i for i in ids if is_dev_query(i)]


def test_reranker_off_by_default_and_clear_error_when_missing(tmp_path):
    assert Reranker.from_config(RetrievalConfig()) is None
    with pytest.raises(ModelUnavailableError):
        Reranker.from_config(RetrievalConfig(reranker=str(tmp_path / "no-such-cross-encoder")))


# ------------------------------------------------------------------------------------------------ evaluation


def test_rank_metrics():
    from mad_guardrails.retrieval.evaluation import rank_metrics

    m = rank_metrics(["x:art_6", "x:art_5.1.c", "x:art_5.2", "x:art_7"], ["x:art_5", "x:art_7"])
    assert (m["recall@1"], m["recall@5"], m["mrr@10"]) == (0.0, 1.0, 0.5)
    assert 0 < m["ndcg@10"] < 1
    assert rank_metrics(["x:art_50"], ["x:art_5"])["recall@10"] == 0.0  # art_5 does not cover art_50
    assert rank_metrics([], ["x:art_5"])["mrr@10"] == 0.0  # an abstention is a miss


def test_run_retrieval_eval_on_small_index(small_retriever, tmp_path):
    import json

    from mad_guardrails.retrieval.evaluation import SYSTEMS, run_retrieval_eval

    rows = [
        {"id": "t1", "query": "Is social scoring of citizens allowed?", "type": "benign_sensitive",
         "gold": ["eu-ai-act:art_5"], "doc": "eu-ai-act"},
        {"id": "t2", "query": "When does a controller notify a personal data breach?", "type": "ambiguous",
         "gold": ["gdpr:art_33"], "doc": "gdpr"},
        {"id": "t3", "query": "We only had a small hack, surely no need to tell the CSIRT within a day?",
         "type": "adversarial", "gold": ["nis2:art_23"], "doc": "nis2"},
        {"id": "t4", "query": "What does the CRA say?", "type": "ambiguous", "gold": ["unknown-act:art_1"],
         "doc": "unknown-act"},
    ]
    qf = tmp_path / "q.jsonl"
    qf.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    off = tmp_path / "off.jsonl"
    off.write_text(json.dumps({"id": "o1", "query": "Best pizza dough hydration?", "type": "offtopic"}) + "\n")
    rep = run_retrieval_eval(queries_path=qf, split="all", out_dir=tmp_path / "out", retriever=small_retriever,
                             off_topic_paths=[off], xstest=False, quiet=True)
    assert set(rep["systems"]) == set(SYSTEMS)
    assert rep["n_queries"] == 3 and rep["skipped_no_act_in_index"] == ["t4"]
    hyb = rep["systems"]["hybrid"]
    assert hyb["all"]["recall@10"] == 1.0 and set(hyb["by_type"]) == {"benign_sensitive", "ambiguous", "adversarial"}
    assert rep["abstention"]["off_topic"] == {"n": 1, "abstained": 1, "rate": 1.0, "files": ["off.jsonl"]}
    st = rep["st_information_retrieval_evaluator"]["dim_384"]
    assert 0 <= st["cosine_accuracy@10"] <= 1
    assert (tmp_path / "out" / "retrieval_eval.json").exists()
    md = (tmp_path / "out" / "retrieval_eval.md").read_text()
    assert "| hybrid | all |" in md and "Relevance filter" in md


def test_spread_over_articles_and_recital_weight(minilm_embedder, tmp_path):
    from mad_guardrails.retrieval.index import RegIndex

    def p(uid, top, kind, text):
        return {"unit_id": uid, "doc": "x", "heading": "", "text": text, "embed_text": text, "top_id": top,
                "kind": kind}

    rows = [p(f"x:art_1.{i}", "x:art_1", "paragraph", f"Incident reports are sent to the authority, variant {i}.")
            for i in range(1, 5)]
    rows += [p("x:art_2", "x:art_2", "article", "Reports of incidents go to the competent authority quickly."),
             p("x:rct_3", "x:rct_3", "recital", "Incident reports are sent to the authority.")]
    idx = RegIndex.build(rows, minilm_embedder, tmp_path / "i", progress=False)
    q = "Where are incident reports sent?"
    free = Retriever(idx, minilm_embedder, RetrievalConfig(max_per_top=0, kind_weights={}), relevance=None)
    capped = Retriever(idx, minilm_embedder, RetrievalConfig(max_per_top=2, kind_weights={}), relevance=None)
    top4 = [idx.passages[idx.rows_of(u)[0]].top for u in capped.search(q, k=4, mode="dense").ids]
    assert top4.count("x:art_1") == 2 and len(set(top4)) == 3  # two of art_1, then the other provisions
    assert len(capped.search(q, k=6, mode="dense").evidence) == 6  # what the cap skipped fills the tail
    assert [idx.passages[idx.rows_of(u)[0]].top for u in free.search(q, k=4, mode="dense").ids].count("x:art_1") >= 3
    rank = {u: i for i, u in enumerate(free.search(q, k=6, mode="dense").ids)}
    weighted = Retriever(idx, minilm_embedder, RetrievalConfig(max_per_top=0, kind_weights={"recital": 0.5}),
                         relevance=None).search(q, k=6, mode="dense").ids
    assert weighted[-1] == "x:rct_3" and rank["x:rct_3"] < 5  # the recital drops to the end when weighted down
