"""Before/after evaluation of a trained embedder, in one call (:func:`compare_embedders`).

On two query sets -- the held-out *generated* pairs (test split: units never seen in training) and the
*hand-written* set ``evals/data/regulatory_queries.jsonl`` (never trained on) -- and for each model (base, adapted):

1. **sentence-transformers InformationRetrievalEvaluator per Matryoshka dim** (MiniLM: 384/256/128/64) over every
   passage of the corpus; a passage is relevant when a gold id covers it (for generated queries: the positive's
   split key, i.e. its article / framework category). Reported: accuracy@1/5/10, MRR@10, NDCG@10.
2. **the seed's 4-candidate reranking** (SEEDS.md §1): the positive unit and 3 hard-negative units mined once with
   the *base* model from its ranks 6–50 (same act first, other units), the same candidates for both models; a unit
   scores the max cosine over its passages. Recall@1, recall@3 and MRR, overall and **per query type**.
3. optionally (``pipeline=True``) **the real retrieval pipeline**: an index is built per model (dense FAISS + BM25,
   relevance threshold calibrated on the dev split) and ``mad_guardrails.retrieval.evaluation.run_retrieval_eval`` measures BM25 /
   dense / hybrid / hybrid+filter on the hand-written set (``all`` queries and the ``test`` split). This is the
   number that decides whether an adapter ships (hybrid Recall@10 and MRR@10).

    >>> rerank_metrics([0, 1, 2, 3])
    {'recall@1': 0.25, 'recall@3': 0.75, 'mrr': 0.5208}
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from mad_guardrails.core.records import write_report
from mad_guardrails.core.units import id_covers
from mad_guardrails.retrieval.training.negatives import RANK_RANGE, RelatedIndex, mine_rows
from mad_guardrails.retrieval.training.pairs import PassageRef, TrainPair

IR_KS = (1, 5, 10)


class EvalSet(BaseModel):
    """Queries with gold ids (unit ids or split keys; any of them is a hit) and a query type each."""

    name: str
    ids: list[str]
    queries: list[str]
    types: list[str]
    golds: list[list[str]]
    docs: list[str] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)


def generated_eval_set(pairs: Sequence[TrainPair], *, max_queries: int | None = None, seed: int = 0) -> EvalSet:
    """The test split of generated pairs (gold = the positive's split key)."""
    rows = [p for p in pairs if p.split == "test"]
    if max_queries is not None and len(rows) > max_queries:
        import random

        rows = random.Random(seed).sample(rows, max_queries)
    return EvalSet(name="generated-test", ids=[f"g{i}" for i in range(len(rows))], queries=[p.query for p in rows],
                   types=[p.type for p in rows], golds=[[p.key] for p in rows], docs=[p.doc for p in rows])


def handwritten_eval_set(path: str | Path | None = None, split: str = "all", docs: set[str] | None = None
                         ) -> EvalSet:
    """``evals/data/regulatory_queries.jsonl`` (``split`` all / dev / test as in mad_guardrails.retrieval.evaluation)."""
    from mad_guardrails.retrieval.relevance import IN_DOMAIN_FILE, is_dev_query, query_data_dir, read_query_rows

    p = Path(path) if path else query_data_dir() / IN_DOMAIN_FILE
    rows = [r for r in read_query_rows(p) if split == "all" or is_dev_query(r["id"]) == (split == "dev")]
    if docs is not None:
        rows = [r for r in rows if any(g.split(":")[0] in docs for g in r.get("gold", []))]
    return EvalSet(name=f"handwritten-{split}", ids=[r["id"] for r in rows], queries=[r["query"] for r in rows],
                   types=[r.get("type", "unknown") for r in rows], golds=[list(r["gold"]) for r in rows],
                   docs=[r.get("doc", r["gold"][0].split(":")[0]) for r in rows])


def covered_rows(refs: Sequence[PassageRef], golds: Sequence[str]) -> set[int]:
    """Rows a gold answers: the passage's split key is the gold, or the gold covers the passage's unit."""
    return {i for i, r in enumerate(refs) if any(r.key == g or id_covers(g, r.unit_id) for g in golds)}


# --------------------------------------------------------------------------------------------------------------------
# 4-candidate reranking
# --------------------------------------------------------------------------------------------------------------------


def rerank_candidates(es: EvalSet, refs: Sequence[PassageRef], q_base: np.ndarray, p_base: np.ndarray, *,
                      n_neg: int = 3, rank_range: tuple[int, int] = RANK_RANGE) -> list[list[list[int]]]:
    """Per query: ``[positive rows, negative unit 1 rows, ...]`` (negatives mined with the base model, ranks 6–50,
    same act first, one per unit). Queries with too few negatives or no positive passage get ``[]``."""
    rel = RelatedIndex(refs)
    keys = [r.key for r in refs]
    rows_of_key: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        rows_of_key[k].append(i)
    related = [rel.rows(g) | covered_rows(refs, g) for g in es.golds]
    negs = mine_rows(q_base, p_base, related=related, docs_q=[g[0].split(":")[0] for g in es.golds],
                     docs_p=[r.doc for r in refs], rank_range=rank_range, n=n_neg, margin=None, group_of=keys)
    out = []
    for gold, ng in zip(es.golds, negs):
        pos = sorted(covered_rows(refs, gold[:1]))
        if not pos or len(ng) < n_neg:
            out.append([])
            continue
        out.append([pos] + [rows_of_key[keys[r]] for r in ng])
    return out


def rerank_metrics(positive_ranks: Sequence[int]) -> dict[str, float]:
    """Recall@1 / recall@3 / MRR from the 0-based rank of the positive among the candidates."""
    n = max(len(positive_ranks), 1)
    return {"recall@1": round(sum(r == 0 for r in positive_ranks) / n, 4),
            "recall@3": round(sum(r < 3 for r in positive_ranks) / n, 4),
            "mrr": round(sum(1.0 / (r + 1) for r in positive_ranks) / n, 4)}


def rerank_eval(es: EvalSet, cands: list[list[list[int]]], q: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Overall and per-type reranking metrics of one model on fixed candidates."""
    ranks: list[int] = []
    by_type: dict[str, list[int]] = defaultdict(list)
    for i, groups in enumerate(cands):
        if not groups:
            continue
        scores = [float(np.max(p[g] @ q[i])) for g in groups]
        rank = sum(s > scores[0] for s in scores[1:]) + 0.5 * sum(s == scores[0] for s in scores[1:])
        rank = int(rank)
        ranks.append(rank)
        by_type[es.types[i]].append(rank)
    return {"n": len(ranks), **rerank_metrics(ranks),
            "by_type": {t: {"n": len(v), **rerank_metrics(v)} for t, v in sorted(by_type.items())}}


# --------------------------------------------------------------------------------------------------------------------
# InformationRetrievalEvaluator per Matryoshka dim
# --------------------------------------------------------------------------------------------------------------------


def ir_eval(model, es: EvalSet, refs: Sequence[PassageRef], p_full: np.ndarray, dims: Sequence[int],
            batch_size: int = 64) -> dict[str, dict[str, float]]:
    """sentence-transformers ``InformationRetrievalEvaluator`` at each dim, on precomputed passage vectors."""
    import torch
    from sentence_transformers.util import cos_sim

    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # pragma: no cover - older layout
        from sentence_transformers.evaluation import InformationRetrievalEvaluator

    corpus = {r.pid: r.embed_text for r in refs}
    queries = {qid: q for qid, q in zip(es.ids, es.queries)}
    relevant = {qid: {refs[i].pid for i in covered_rows(refs, g)} for qid, g in zip(es.ids, es.golds)}
    queries = {k: v for k, v in queries.items() if relevant[k]}
    relevant = {k: v for k, v in relevant.items() if v}
    out: dict[str, dict[str, float]] = {}
    full = p_full.shape[1]
    for d in dims:
        ev = InformationRetrievalEvaluator(
            queries, corpus, relevant, name=f"dim{d}", truncate_dim=d if d != full else None,
            accuracy_at_k=list(IR_KS), precision_recall_at_k=list(IR_KS), mrr_at_k=[10], ndcg_at_k=[10],
            map_at_k=[100], write_csv=False, batch_size=batch_size, show_progress_bar=False,
            score_functions={"cosine": cos_sim},
        )
        sub = p_full[:, :d]
        sub = sub / np.maximum(np.linalg.norm(sub, axis=1, keepdims=True), 1e-12)
        corpus_t = torch.from_numpy(np.ascontiguousarray(sub)).to(getattr(model, "device", "cpu"))
        scores = ev.compute_all_metrics(model, corpus_embeddings=corpus_t)
        fn = "cosine" if "cosine" in scores else next(iter(scores))
        m = scores[fn]
        out[f"dim_{d}"] = {
            **{f"accuracy@{k}": round(float(m["accuracy@k"][k]), 4) for k in IR_KS},
            "mrr@10": round(float(m["mrr@k"][10]), 4), "ndcg@10": round(float(m["ndcg@k"][10]), 4),
        }
    return out


# --------------------------------------------------------------------------------------------------------------------
# the whole comparison
# --------------------------------------------------------------------------------------------------------------------


class _CachedPassages:
    """An embedder proxy that answers ``encode_passages`` from vectors already computed (index builds)."""

    def __init__(self, emb, texts: Sequence[str], vecs: np.ndarray):
        self._emb = emb
        self._cache = {t: v for t, v in zip(texts, vecs)}

    def encode_passages(self, texts, *, progress: bool = True):
        if all(t in self._cache for t in texts):
            return np.stack([self._cache[t] for t in texts]).astype(np.float32)
        return self._emb.encode_passages(texts, progress=progress)

    def __getattr__(self, name):
        return getattr(self._emb, name)


def pipeline_eval(emb, refs: Sequence[PassageRef], p_full: np.ndarray, work_dir: Path, *,
                  splits: Sequence[str] = ("all", "test"), st_evaluator: bool = False) -> dict[str, Any]:
    """Build an index with ``emb`` (vectors reused), calibrate its relevance threshold on the dev split, and run
    ``mad_guardrails.retrieval.evaluation`` on the hand-written set for each split. Returns ``{split: {system: {all, by_type}}}``."""
    from mad_guardrails.retrieval.config import RetrievalConfig
    from mad_guardrails.retrieval.evaluation import run_retrieval_eval
    from mad_guardrails.retrieval.index import RegIndex
    from mad_guardrails.retrieval.relevance import calibrate_index
    from mad_guardrails.retrieval.retriever import Retriever

    rows = [{"unit_id": r.unit_id, "passage_id": r.pid, "doc": r.doc, "kind": r.kind, "heading": r.heading,
             "text": r.text, "embed_text": r.embed_text} for r in refs]
    cached = _CachedPassages(emb, [r.embed_text for r in refs], p_full)
    idx = RegIndex.build(rows, cached, work_dir / "index", "flat", use_gpu="never", progress=False)
    idx.set_relevance(calibrate_index(idx, emb))
    cfg = RetrievalConfig(embedder=emb.config, use_gpu="never")
    retriever = Retriever(idx, emb, cfg)
    out: dict[str, Any] = {}
    for split in splits:
        rep = run_retrieval_eval(retriever=retriever, split=split, out_dir=work_dir / f"report-{split}",
                                 st_evaluator=st_evaluator, xstest=False, quiet=True)
        out[split] = {"n": rep["n_queries"], "systems": {k: {"all": v["all"], "by_type": v["by_type"]}
                                                         for k, v in rep["systems"].items()},
                      "abstention": {k: v for k, v in rep["abstention"].items() if isinstance(v, dict)},
                      "filter": rep["abstention"].get("filter")}
    return out


def compare_embedders(
    refs: Sequence[PassageRef],
    pairs: Sequence[TrainPair],
    *,
    base: str = "bundled:all-MiniLM-L6-v2",
    adapters: dict[str, str | None] | None = None,
    dims: Sequence[int] = (384, 256, 128, 64),
    pipeline: bool = True,
    max_generated: int | None = 1500,
    out_dir: str | Path | None = None,
    progress: bool = True,
    vectors: dict[str, np.ndarray] | None = None,
    ir: bool = True,
) -> dict[str, Any]:
    """Evaluate ``{"base": None, name: adapter_dir, ...}`` on the generated test split and the hand-written set
    (see the module docstring); writes ``compare.json`` / ``compare.md`` to ``out_dir`` when given. ``vectors``
    gives precomputed passage vectors per model name (e.g. computed on a GPU machine)."""
    from mad_guardrails.retrieval.embedder import Embedder

    t0 = time.perf_counter()
    adapters = adapters or {"base": None}
    if "base" not in adapters:
        adapters = {"base": None, **adapters}
    docs = {r.doc for r in refs}
    sets = [generated_eval_set(pairs, max_queries=max_generated), handwritten_eval_set(docs=docs)]
    sets = [s for s in sets if len(s)]
    texts = [r.embed_text for r in refs]
    report: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "passages": len(refs), "sets": {s.name: len(s) for s in sets}, "models": {},
                              "rerank": {}, "ir": {}, "pipeline": {}}
    cands: dict[str, list] = {}
    for name, adapter in adapters.items():
        emb = Embedder.load(base, adapter=adapter) if adapter else Embedder.load(base)
        report["models"][name] = emb.describe()
        p = vectors[name] if vectors and name in vectors else emb.encode_passages(texts, progress=progress)
        p = np.ascontiguousarray(p, dtype=np.float32)
        use_dims = [d for d in dims if d <= p.shape[1]] or [p.shape[1]]
        for s in sets:
            q = emb.encode_queries(s.queries)
            if name == "base":
                cands[s.name] = rerank_candidates(s, refs, q, p)
            report["rerank"].setdefault(s.name, {})[name] = rerank_eval(s, cands[s.name], q, p)
            if ir:
                report["ir"].setdefault(s.name, {})[name] = ir_eval(emb.model, s, refs, p, use_dims)
        if pipeline:
            with tempfile.TemporaryDirectory(prefix=f"pipe-{name}-") as tmp:
                report["pipeline"][name] = pipeline_eval(emb, refs, p, Path(tmp))
        del emb
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["verdict"] = ship_verdict(report)
    if out_dir is not None:
        write_report(report, to_markdown(report), out_dir, "compare")
    return report


def ship_verdict(report: dict[str, Any], split: str = "all", system: str = "hybrid") -> dict[str, Any]:
    """Per adapted model: does it beat the base on the hand-written set through the real pipeline (hybrid
    Recall@10 and MRR@10 both ≥ base, at least one strictly better)?"""
    pipe = report.get("pipeline") or {}
    if "base" not in pipe:
        return {"decided": False, "why": "no pipeline evaluation"}
    b = pipe["base"][split]["systems"][system]["all"]
    out: dict[str, Any] = {"decided": True, "split": split, "system": system, "base": {
        "recall@10": b["recall@10"], "mrr@10": b["mrr@10"]}, "models": {}}
    for name, rep in pipe.items():
        if name == "base":
            continue
        a = rep[split]["systems"][system]["all"]
        wins = (a["recall@10"] >= b["recall@10"] and a["mrr@10"] >= b["mrr@10"]
                and (a["recall@10"] > b["recall@10"] or a["mrr@10"] > b["mrr@10"]))
        out["models"][name] = {"recall@10": a["recall@10"], "mrr@10": a["mrr@10"], "beats_base": wins}
    return out


def _f(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(r: dict[str, Any]) -> str:
    L = [f"# Embedder before/after ({r['created']})", "", f"passages: {r['passages']}; sets: {r['sets']}", ""]
    for name, d in r["models"].items():
        L.append(f"- **{name}**: {d}")
    L += ["", "## 4-candidate reranking (1 positive + 3 hard negatives mined by the base model, ranks 6–50)", "",
          "| set | model | type | n | recall@1 | recall@3 | MRR |", "|---|---|---|---:|---:|---:|---:|"]
    for s, models in r["rerank"].items():
        for m, v in models.items():
            L.append(f"| {s} | {m} | all | {v['n']} | {_f(v['recall@1'])} | {_f(v['recall@3'])} | {_f(v['mrr'])} |")
            for t, tv in v["by_type"].items():
                L.append(f"| {s} | {m} | {t} | {tv['n']} | {_f(tv['recall@1'])} | {_f(tv['recall@3'])} | "
                         f"{_f(tv['mrr'])} |")
    L += ["", "## InformationRetrievalEvaluator per Matryoshka dim (all passages)", "",
          "| set | model | dim | acc@1 | acc@5 | acc@10 | MRR@10 | NDCG@10 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s, models in r["ir"].items():
        for m, dims in models.items():
            for d, v in dims.items():
                L.append(f"| {s} | {m} | {d[4:]} | {_f(v['accuracy@1'])} | {_f(v['accuracy@5'])} | "
                         f"{_f(v['accuracy@10'])} | {_f(v['mrr@10'])} | {_f(v['ndcg@10'])} |")
    if r.get("pipeline"):
        L += ["", "## Real pipeline on the hand-written set (mad_guardrails.retrieval.evaluation)", "",
              "| model | split | system | type | n | R@1 | R@5 | R@10 | MRR@10 | NDCG@10 | abstained |",
              "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for m, splits in r["pipeline"].items():
            for sp, rep in splits.items():
                for sysname, v in rep["systems"].items():
                    rows = [("all", v["all"])] + list(v["by_type"].items())
                    for t, a in rows:
                        L.append(f"| {m} | {sp} | {sysname} | {t} | {a['n']} | {_f(a['recall@1'])} | "
                                 f"{_f(a['recall@5'])} | {_f(a['recall@10'])} | {_f(a['mrr@10'])} | "
                                 f"{_f(a['ndcg@10'])} | {a['abstained']} |")
                for k, v in rep["abstention"].items():
                    L.append(f"| {m} | {sp} | filter: {k} | | {v['n']} | | | | | | {v['abstained']} ({_f(v['rate'])}) |")
    v = r.get("verdict", {})
    if v.get("decided"):
        L += ["", f"**Ship rule** ({v['system']}, split {v['split']}): base R@10 {_f(v['base']['recall@10'])}, "
              f"MRR@10 {_f(v['base']['mrr@10'])}"]
        for m, mv in v["models"].items():
            L.append(f"- {m}: R@10 {_f(mv['recall@10'])}, MRR@10 {_f(mv['mrr@10'])} → "
                     f"{'beats the base' if mv['beats_base'] else 'does not beat the base'}")
    L += ["", f"({r.get('seconds', '?')} s)", ""]
    return "\n".join(L)


def mean(xs: Sequence[float]) -> float:
    return statistics.fmean(xs) if xs else 0.0
