"""Retrieval evaluation: BM25 alone, dense alone, hybrid, and hybrid + relevance filter, in one run.

    python -m mad_guardrails.evals.retrieval_eval --index ~/.cache/mad-guardrails/index/offline --split test
    # or from Python:
    report = run_retrieval_eval(index_dir, "evals/data/regulatory_queries.jsonl", split="test")

What is measured (per system, overall and per query type / act), on the ``split`` of the query set (dev/test by a
hash of the query id, :func:`mad_guardrails.retrieval.relevance.is_dev_query`; the relevance threshold is calibrated on *dev*, so
report *test*):

* **Recall@k** -- share of queries with at least one relevant passage in the top ``k``. A retrieved passage is
  relevant when ``id_covers(gold, passage.unit_id)`` for one of the query's gold ids (``eu-ai-act:art_5`` covers
  ``eu-ai-act:art_5.1.c``); the golds are alternatives (``evals/data/README.md``), so one hit answers the query.
* **MRR@10** -- 1 / rank of the first relevant passage (0 beyond 10 or on abstention).
* **NDCG@10** -- gold-level: each gold id gains 1 at the first rank where a passage it covers appears (later
  passages under the same gold gain nothing), ideal = all golds at the top ranks.
* the relevance filter's **abstention rate** on off-topic queries (``evals/data/offtopic_*.jsonl``, same split, and
  XSTest prompts from the shared eval sets when present) and its false abstentions on the regulatory queries. An
  abstention counts as a miss in the ranking metrics of ``hybrid+filter``.
* sentence-transformers ``InformationRetrievalEvaluator`` on the dense part, per Matryoshka dimension the model has
  (MiniLM: its full 384). Its corpus is the index's passages keyed by passage id, with their stored vectors; the
  relevant set of a query is every passage whose ``unit_id`` a gold id covers -- i.e. passages are mapped to their
  gold-root (article / element) ids. Its accuracy@k equals our Recall@k for dense; its recall@k is passage-level
  (share of *all* passages under the gold article), so it is much lower by design and not a target.

Targets on the offline CPU stack: Recall@10 ≥ 0.95 and MRR@10 ≥ 0.85 (hybrid, test split).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mad_guardrails.core.units import id_covers
from mad_guardrails.retrieval.relevance import OFF_TOPIC_FILES, is_dev_query, query_data_dir, read_query_rows

KS = (1, 5, 10)
TARGETS = {"recall@10": 0.95, "mrr@10": 0.85}
SYSTEMS = ("bm25", "dense", "hybrid", "hybrid+filter")


def in_split(qid: str, split: str) -> bool:
    return split == "all" or is_dev_query(qid) == (split == "dev")


def rank_metrics(retrieved: Sequence[str], gold: Sequence[str], ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@k, MRR@10, NDCG@10 of one ranked list of unit ids against gold ids (see the module docstring).

    >>> m = rank_metrics(["x:art_6", "x:art_5.1.c", "x:art_5.2"], ["x:art_5"])
    >>> m["recall@1"], m["recall@5"], m["mrr@10"], round(m["ndcg@10"], 3)
    (0.0, 1.0, 0.5, 0.631)
    """
    rel = [any(id_covers(g, r) for g in gold) for r in retrieved]
    out = {f"recall@{k}": float(any(rel[:k])) for k in ks}
    first = next((i for i, x in enumerate(rel[:10]) if x), None)
    out["mrr@10"] = 0.0 if first is None else 1.0 / (first + 1)
    seen: set[str] = set()
    dcg = 0.0
    for i, r in enumerate(retrieved[:10]):
        for g in gold:
            if g not in seen and id_covers(g, r):
                seen.add(g)
                dcg += 1.0 / math.log2(i + 2)
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(gold), 10)))
    out["ndcg@10"] = dcg / idcg if idcg else 0.0
    return out


def _aggregate(per_query: list[dict[str, Any]]) -> dict[str, Any]:
    if not per_query:
        return {"n": 0}
    keys = [k for k in per_query[0]["metrics"]]
    agg: dict[str, Any] = {"n": len(per_query)}
    for k in keys:
        agg[k] = round(statistics.fmean(q["metrics"][k] for q in per_query), 4)
    agg["abstained"] = sum(1 for q in per_query if q["abstained"])
    return agg


def _group(per_query: list[dict[str, Any]], key: str) -> dict[str, Any]:
    groups: dict[str, list] = defaultdict(list)
    for q in per_query:
        groups[q[key]].append(q)
    return {g: _aggregate(v) for g, v in sorted(groups.items())}


def _st_evaluator(retriever, rows: list[dict[str, Any]], docs: list[str]) -> dict[str, Any]:
    """sentence-transformers InformationRetrievalEvaluator on the stored vectors, per Matryoshka dim."""
    import numpy as np
    import torch
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    idx, emb = retriever.index, retriever.embedder
    keep = [i for i, p in enumerate(idx.passages) if p.doc in set(docs)]
    corpus = {idx.passages[i].pid: idx.passages[i].index_text for i in keep}
    queries = {r["id"]: r["query"] for r in rows}
    relevant = {
        r["id"]: {idx.passages[i].pid for i in keep if any(id_covers(g, idx.passages[i].unit_id) for g in r["gold"])}
        for r in rows
    }
    vectors = idx.vectors(keep)
    dims = list(emb.matryoshka_dims) or [emb.dim]
    dims = [d for d in dims if d <= vectors.shape[1]] or [vectors.shape[1]]
    out: dict[str, Any] = {}
    for d in dims:
        ev = InformationRetrievalEvaluator(
            queries, corpus, relevant, name=f"dim{d}", truncate_dim=d if d != vectors.shape[1] else None,
            accuracy_at_k=[1, 5, 10], precision_recall_at_k=[1, 5, 10], mrr_at_k=[10], ndcg_at_k=[10],
            map_at_k=[100], write_csv=False, batch_size=emb.config.batch_size,
            score_functions={"cosine": cos_sim}, main_score_function="cosine",
        )
        sub = vectors[:, :d]
        sub = sub / np.maximum(np.linalg.norm(sub, axis=1, keepdims=True), 1e-12)
        scores = ev.compute_all_metrics(emb.model, corpus_embeddings=torch.from_numpy(np.ascontiguousarray(sub)))
        flat = {}
        for fn, vals in scores.items():
            for metric, per_k in vals.items():
                for k, v in per_k.items():
                    flat[f"{fn}_{metric.replace('@k', '@' + str(k))}"] = round(float(v), 4)
        out[f"dim_{d}"] = flat
    return out


def _xstest_queries() -> list[str]:
    from mad_guardrails.core.paths import shared_corpus

    root = shared_corpus()
    if root is None:
        return []
    path = root.parent / "evalsets" / "xstest" / "xstest_prompts.csv"
    if not path.exists():
        return []
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return [row["prompt"] for row in csv.DictReader(fh) if row.get("prompt", "").strip()]


def run_retrieval_eval(
    index_dir: str | Path | None = None,
    queries_path: str | Path | None = None,
    *,
    profile: str = "offline",
    retrieval_config=None,
    split: str = "test",
    k: int = 10,
    out_dir: str | Path | None = None,
    off_topic_paths: Sequence[str | Path] | None = None,
    st_evaluator: bool = True,
    xstest: bool = True,
    retriever=None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Evaluate the four systems on one split; returns the report dict and writes ``retrieval_eval.json`` /
    ``retrieval_eval.md`` to ``out_dir`` (default ``$GUARDRAILS_HOME/reports/retrieval``)."""
    from mad_guardrails.core.errors import InputError
    from mad_guardrails.retrieval.config import RetrievalConfig
    from mad_guardrails.retrieval.retriever import Retriever

    t_start = time.perf_counter()
    if split not in ("dev", "test", "all"):
        raise InputError(f"unknown split {split!r}", fix="use dev, test or all")
    if retriever is None:
        cfg = retrieval_config if retrieval_config is not None else RetrievalConfig()
        retriever = Retriever.from_config(cfg, profile, index_dir=index_dir)
    unfiltered = Retriever(retriever.index, retriever.embedder, retriever.config, relevance=None,
                           reranker=retriever.reranker)
    index_docs = set(retriever.index.manifest.docs)
    docs = sorted(d for d in index_docs if d != "policy")

    qpath = Path(queries_path) if queries_path else query_data_dir() / "regulatory_queries.jsonl"
    all_rows = read_query_rows(qpath)
    for n, r in enumerate(all_rows, 1):
        if not isinstance(r.get("gold"), list) or not r["gold"]:
            raise InputError(f"row {r.get('id', n)} has no 'gold' list", where=str(qpath),
                             fix='add e.g. "gold": ["eu-ai-act:art_5"]')
    rows, skipped = [], []
    for r in all_rows:
        if not in_split(r["id"], split):
            continue
        if not any(g.split(":")[0] in index_docs for g in r["gold"]):
            skipped.append(r["id"])
            continue
        rows.append(r)
    if not rows:
        raise InputError(f"no queries of split {split!r} have gold ids in this index's acts ({docs})",
                         where=str(qpath), fix="use another split or an index built on the acts the queries cover")
    texts = [r["query"] for r in rows]

    results: dict[str, list] = {}
    latency: dict[str, float] = {}
    for name, ret, mode in (("bm25", unfiltered, "bm25"), ("dense", unfiltered, "dense"),
                            ("hybrid", unfiltered, "hybrid"), ("hybrid+filter", retriever, "hybrid")):
        if name == "hybrid+filter" and retriever.relevance is None:
            continue
        t = time.perf_counter()
        results[name] = ret.search_many(texts, k, mode=mode, docs=docs)
        latency[name] = round((time.perf_counter() - t) * 1000 / len(texts), 2)

    systems: dict[str, Any] = {}
    per_query_out: dict[str, list] = {}
    for name, res in results.items():
        pq = []
        for r, rr in zip(rows, res):
            pq.append({
                "id": r["id"], "type": r.get("type", "unknown"), "doc": r.get("doc", r["gold"][0].split(":")[0]),
                "gold": r["gold"], "retrieved": rr.ids, "abstained": rr.abstained,
                "metrics": rank_metrics(rr.ids, r["gold"]),
            })
        systems[name] = {"all": _aggregate(pq), "by_type": _group(pq, "type"), "by_doc": _group(pq, "doc"),
                         "ms_per_query": latency[name]}
        per_query_out[name] = [{k_: q[k_] for k_ in ("id", "retrieved", "abstained")} | {
            "first_hit": next((i + 1 for i, x in enumerate(q["retrieved"])
                               if any(id_covers(g, x) for g in q["gold"])), None)} for q in pq]

    abstention: dict[str, Any] = {}
    if retriever.relevance is not None:
        d = query_data_dir()
        off_paths = [Path(p) for p in off_topic_paths] if off_topic_paths else [d / n for n in OFF_TOPIC_FILES]
        off = [r["query"] for p in off_paths if p.exists() for r in read_query_rows(p) if in_split(r["id"], split)]
        if off:
            res = retriever.search_many(off, k, docs=docs)
            abstention["off_topic"] = {"n": len(off), "abstained": sum(x.abstained for x in res),
                                       "rate": round(sum(x.abstained for x in res) / len(off), 4),
                                       "files": [p.name for p in off_paths if p.exists()]}
        if xstest:
            xs = _xstest_queries()
            if xs:
                res = retriever.search_many(xs, k, docs=docs)
                abstention["xstest_prompts"] = {"n": len(xs), "abstained": sum(x.abstained for x in res),
                                                "rate": round(sum(x.abstained for x in res) / len(xs), 4)}
        filt = systems["hybrid+filter"]["all"]
        abstention["in_domain_false_abstain"] = {"n": filt["n"], "abstained": filt["abstained"],
                                                 "rate": round(filt["abstained"] / filt["n"], 4)}
        abstention["filter"] = retriever.relevance.describe()

    st_res: dict[str, Any] = {}
    if st_evaluator:
        st_res = _st_evaluator(retriever, rows, docs)

    hyb = systems["hybrid"]["all"]
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "index": retriever.index.info(),
        "embedder": retriever.embedder.describe(),
        "queries": str(qpath),
        "split": split,
        "n_queries": len(rows),
        "skipped_no_act_in_index": skipped,
        "k": k,
        "config": {"fusion": retriever.config.fusion, "rrf_k": retriever.config.rrf_k,
                   "dense_weight": retriever.config.dense_weight, "bm25_weight": retriever.config.bm25_weight,
                   "candidates": retriever.config.candidates},
        "systems": systems,
        "abstention": abstention,
        "st_information_retrieval_evaluator": st_res,
        "targets": {**TARGETS, "system": "hybrid",
                    "met": hyb["recall@10"] >= TARGETS["recall@10"] and hyb["mrr@10"] >= TARGETS["mrr@10"]},
        "per_query": per_query_out,
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    from mad_guardrails.core import paths

    out = Path(out_dir) if out_dir else paths.home() / "reports" / "retrieval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval_eval.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
    (out / "retrieval_eval.md").write_text(to_markdown(report), encoding="utf-8")
    report["out_dir"] = str(out)
    if not quiet:
        print_report(report)
    return report


_COLS = ("n", "recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "abstained")


def _rows_for_table(report: dict[str, Any]):
    for name, s in report["systems"].items():
        yield name, "all", s["all"]
        for t, agg in s["by_type"].items():
            yield name, t, agg


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Retrieval evaluation ({report['split']} split, {report['n_queries']} queries)", "",
        f"- index: `{report['index']['dir']}` ({report['index']['passages']} passages, "
        f"{report['index']['index_type']})",
        f"- embedder: {report['embedder']}",
        f"- queries: `{report['queries']}`; created {report['created']}", "",
        "| system | queries | " + " | ".join(_COLS) + " |",
        "|---|---|" + "---:|" * len(_COLS),
    ]
    for name, group, agg in _rows_for_table(report):
        lines.append(f"| {name} | {group} | " + " | ".join(_fmt(agg.get(c, "")) for c in _COLS) + " |")
    lines += ["", "## Per act (hybrid)", "", "| act | " + " | ".join(_COLS) + " |", "|---|" + "---:|" * len(_COLS)]
    for doc, agg in report["systems"]["hybrid"]["by_doc"].items():
        lines.append(f"| {doc} | " + " | ".join(_fmt(agg.get(c, "")) for c in _COLS) + " |")
    if report["abstention"]:
        lines += ["", "## Relevance filter", "", f"filter: {report['abstention'].get('filter', '')}", "",
                  "| set | n | abstained | rate |", "|---|---:|---:|---:|"]
        for key, v in report["abstention"].items():
            if isinstance(v, dict):
                lines.append(f"| {key} | {v['n']} | {v['abstained']} | {v['rate']:.3f} |")
    if report["st_information_retrieval_evaluator"]:
        lines += ["", "## sentence-transformers InformationRetrievalEvaluator (dense, stored vectors)", "",
                  "| dim | accuracy@1 | accuracy@10 | recall@10 (passage-level) | mrr@10 | ndcg@10 |",
                  "|---|---:|---:|---:|---:|---:|"]
        for dim, m in report["st_information_retrieval_evaluator"].items():
            fn = next((k.split("_accuracy@1")[0] for k in m if k.endswith("_accuracy@1")), "cosine")
            cells = [m.get(f"{fn}_{k}", "") for k in ("accuracy@1", "accuracy@10", "recall@10", "mrr@10", "ndcg@10")]
            lines.append(f"| {dim} | " + " | ".join(str(c) for c in cells) + " |")
    t = report["targets"]
    lines += ["", f"Targets (hybrid): Recall@10 ≥ {t['recall@10']}, MRR@10 ≥ {t['mrr@10']} → "
              f"{'met' if t['met'] else 'NOT met'}.", "",
              "Latency (ms/query, batch): " + ", ".join(f"{n} {s['ms_per_query']}"
                                                       for n, s in report["systems"].items()), ""]
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"retrieval eval — {report['split']} split, {report['n_queries']} queries "
                        f"({report['embedder']})")
    table.add_column("system")
    table.add_column("queries")
    for c in _COLS:
        table.add_column(c, justify="right")
    last = None
    for name, group, agg in _rows_for_table(report):
        if last is not None and name != last:
            table.add_section()
        last = name
        style = "bold" if group == "all" else None
        table.add_row(name if group == "all" else "", group, *(_fmt(agg.get(c, "")) for c in _COLS), style=style)
    console.print(table)
    for key, v in report["abstention"].items():
        if isinstance(v, dict):
            console.print(f"abstention {key}: {v['abstained']}/{v['n']} = {v['rate']:.1%}")
    for dim, m in report["st_information_retrieval_evaluator"].items():
        short = {k.split("_", 1)[1]: v for k, v in m.items() if k.startswith("cosine_")}
        console.print(f"ST IR evaluator {dim}: " + ", ".join(
            f"{k} {short[k]:.3f}" for k in ("accuracy@1", "accuracy@10", "mrr@10", "ndcg@10") if k in short))
    t = report["targets"]
    console.print(f"targets (hybrid): Recall@10 ≥ {t['recall@10']}, MRR@10 ≥ {t['mrr@10']}: "
                  f"{'[green]met[/]' if t['met'] else '[red]NOT met[/]'}   → {report['out_dir']}")
