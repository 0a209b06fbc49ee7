"""Retrieval ablation with the trained clause reranker, in one run, on the held-out (test) split of
``evals/data/regulatory_queries.jsonl`` -- clauses only (policy rules are ranked apart and never counted).

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/rerank_bench.py [--threads 2] [--split test]
        [--ablation-adapter .cache/rerank/out/adapter-base]   # the reranker trained without the new queries

Rows: BM25, dense, hybrid (the offline profile without reranker), hybrid + reranker trained on the base template
queries only (``--ablation-adapter``, when given), hybrid + the shipped reranker (base + new colloquial/ambiguous
queries, ``bundled:reranker-minilm``), and that row without act diversity. Columns: Recall@10, MRR@10, Recall@10 of
the ``ambiguous`` queries; then abstention (off-topic ``evals/data/offtopic_*.jsonl`` of the same split, and false
abstention on the regulatory queries) for the dense threshold filter and for the reranker's P(relevant); then the
latency of hybrid + rerank per query, one query at a time on ``--threads`` torch threads (p50, and the reranker
stage alone), for ``rerank_top`` candidates and for 50. Per query type and per act for the shipped system.
Targets (issue 17): R@10 ≥ 0.95, MRR@10 ≥ 0.85, ambiguous R@10 ≥ 0.90, abstention ≥ 0.90 with false abstention
≤ 0.02, hybrid + rerank p50 ≤ 100 ms, reranker ≤ 60 ms for 50 candidates.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path


def _p50(xs):
    return round(statistics.median(xs), 1) if xs else float("nan")


def latency_grid(plain, queries, *, layers=(6, 3, 2), candidates=(50, 30, 20), max_lengths=(128, 96, 64),
                 batch_sizes=(64,), int8=(True, False), warmup: int = 2) -> list[dict]:
    """ms per query for the reranker stage alone (tokenize + forward, one query at a time) with the reranker's
    architecture -- the bundled MiniLM as a one-logit cross-encoder, its first ``layers`` encoder layers, int8 dynamic
    quantization or fp32 -- over each query's real fused clause candidates, for every combination of candidate
    count, token budget (``max_length``: query + heading + text, passage truncated) and batch size. Trained weights
    do not change the cost, so this is the latency of any adapter of that shape."""
    from mad_guardrails.retrieval.embedder import resolve_model
    from mad_guardrails.retrieval.relevance_head import RelevanceHead, load_base_classifier, pair_text
    from mad_guardrails.retrieval.rerank import quantize_int8

    path = resolve_model("bundled:all-MiniLM-L6-v2", what="bench").path
    u = type(plain)(plain.index, plain.embedder, plain.config.model_copy(update={"rules_k": 0}), relevance=None)
    cands = [[pair_text(e.heading, e.text) for e in r.evidence] for r in u.search_many(queries, max(candidates))]
    out = []
    for nl in layers:
        for q8 in int8:
            model, tok = load_base_classifier(path, num_layers=nl)
            model.eval()
            # the runtime's scoring: RelevanceHead.proba (length-sorted batches) over this architecture
            head = RelevanceHead(quantize_int8(model) if q8 else model, tok, "cpu", 0, {})
            for n in candidates:
                for ml in max_lengths:
                    head.max_length = ml
                    for bs in batch_sizes:
                        ms, cpu = [], []
                        for q, c in zip(queries, cands):
                            t, tc = time.perf_counter(), time.process_time()
                            head.proba([(q, p) for p in c[:n]], batch_size=bs)
                            ms.append((time.perf_counter() - t) * 1000)
                            cpu.append((time.process_time() - tc) * 1000)
                        ms, cpu = ms[warmup:], cpu[warmup:]
                        row = {"layers": nl, "int8": q8, "candidates": n, "max_length": ml, "batch": bs,
                               "p50_ms": _p50(ms), "p90_ms": round(sorted(ms)[int(0.9 * len(ms))], 1),
                               "min_ms": round(min(ms), 1), "cpu_p50_ms": _p50(cpu)}
                        out.append(row)
                        print(f"  layers {nl} {'int8' if q8 else 'fp32'} {n:>2} candidates x {ml:>3} tokens, "
                              f"batch {bs:>2}: p50 {row['p50_ms']:.1f} ms  p90 {row['p90_ms']:.1f}  min "
                              f"{row['min_ms']:.1f}  (CPU time p50 {row['cpu_p50_ms']:.1f})", flush=True)
    return out


def pipeline_latency(plain, shipped, queries, k: int, top: int) -> dict:
    """p50 ms per query, one query at a time, of hybrid + rerank (``shipped``, with its relevance filter) for
    ``top`` and 50 candidates, of the reranker stage alone, and of hybrid alone (``plain``) in the same run."""
    import torch

    print(f"\nlatency, one query at a time, {torch.get_num_threads()} threads (ms):")
    out = {}
    timed = plain if shipped is None else shipped
    for label, n in ((f"top {top}", top), ("top 50", 50)):
        if shipped is None and n == 50:
            break
        if shipped is not None:
            shipped.reranker.top = n
        for q in queries[:3]:
            timed.search(q, k)
        tot, rr, hyb = [], [], []
        for q in queries:
            t = time.perf_counter()
            r = timed.search(q, k)
            tot.append((time.perf_counter() - t) * 1000)
            rr.append(r.timings.get("rerank", 0.0))
        for q in queries:
            t = time.perf_counter()
            plain.search(q, k)
            hyb.append((time.perf_counter() - t) * 1000)
        lat = {"hybrid_rerank_p50": _p50(tot), "rerank_p50": _p50(rr), "hybrid_only_p50": _p50(hyb)}
        out[label] = lat
        print(f"  {label:<7} hybrid+rerank p50 {lat['hybrid_rerank_p50']:.1f}  reranker stage p50 "
              f"{lat['rerank_p50']:.1f}  (hybrid alone p50 {lat['hybrid_only_p50']:.1f})", flush=True)
    if shipped is not None:
        shipped.reranker.top = top
    return out


def main() -> None:
    import torch

    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.evaluation import in_split, rank_metrics
    from mad_guardrails.retrieval.relevance import OFF_TOPIC_FILES, query_data_dir, read_query_rows
    from mad_guardrails.retrieval.rerank import BUNDLED_RERANKER, Reranker
    from mad_guardrails.retrieval.retriever import Retriever

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--split", default="test")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ablation-adapter", default=None, help="reranker trained without the new queries")
    ap.add_argument("--latency-queries", type=int, default=60)
    ap.add_argument("--reranker", default=None, help="reranker spec (default: the profile's, else the bundled one)")
    ap.add_argument("--calibrate", action="store_true", help="fit the reranker's abstention bar on the dev split")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each set (a smoke run)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--latency-grid", action="store_true", help="only time the reranker stage over layers x int8 x "
                    "candidates x max_length x batch (the --grid-* lists) on the first --latency-queries queries")
    ap.add_argument("--grid-layers", default="6,3,2")
    ap.add_argument("--grid-candidates", default="50,30,20")
    ap.add_argument("--grid-max-length", default="128,96,64")
    ap.add_argument("--grid-batch", default="64")
    ap.add_argument("--grid-int8", default="1,0")
    ap.add_argument("--latency-only", action="store_true", help="only the hybrid + rerank latency lines")
    ap.add_argument("--sweep", default=None, help="only R@10 / MRR@10 of the reranker (unfiltered) on --split for "
                    "each rerank_top x rerank_max_length, e.g. '20,30,50x64,96,128' (choose on dev, report on test)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    prof = load_config(a.profile).retrieval
    base_cfg = prof.model_copy(update={"reranker": None, "relevance_filter": "threshold",
                                       "embedder": prof.embedder.model_copy(update={"device": "cpu"})})
    plain = Retriever.from_config(base_cfg, a.profile)
    shipped_spec = a.reranker or prof.reranker or BUNDLED_RERANKER
    shipped_cfg = base_cfg.model_copy(update={"reranker": shipped_spec, "relevance_filter": "reranker",
                                              "rerank_top": prof.rerank_top, "act_diversity": prof.act_diversity})
    from mad_guardrails.core.errors import ConfigError, ModelUnavailableError

    try:
        shipped = Retriever(plain.index, plain.embedder, shipped_cfg, reranker=Reranker.from_config(shipped_cfg))
    except (ConfigError, ModelUnavailableError) as e:  # no trained reranker: the baseline rows only
        print(f"reranker {shipped_spec}: not available ({e}) -- reranker rows skipped")
        shipped = None
    index_docs = set(plain.index.manifest.docs)
    docs = sorted(d for d in index_docs if d != "policy")
    rows = [r for r in read_query_rows(query_data_dir() / "regulatory_queries.jsonl")
            if in_split(r["id"], a.split) and any(g.split(":")[0] in index_docs for g in r["gold"])]
    if a.limit:
        rows = rows[: a.limit]
    texts = [r["query"] for r in rows]
    if a.latency_grid:
        ints = lambda v: tuple(int(x) for x in v.split(","))
        print(f"reranker-stage latency grid, {torch.get_num_threads()} torch threads, "
              f"{min(len(texts), a.latency_queries)} queries (ms per query):")
        grid = latency_grid(plain, texts[: a.latency_queries], layers=ints(a.grid_layers),
                            candidates=ints(a.grid_candidates), max_lengths=ints(a.grid_max_length),
                            batch_sizes=ints(a.grid_batch), int8=tuple(bool(x) for x in ints(a.grid_int8)))
        if a.json:
            a.json.write_text(json.dumps({"latency_grid": grid}, indent=1) + "\n", encoding="utf-8")
        return
    off = [r["query"] for n in OFF_TOPIC_FILES if (query_data_dir() / n).exists()
           for r in read_query_rows(query_data_dir() / n) if in_split(r["id"], a.split)][: a.limit or None]
    print(f"{len(rows)} regulatory queries ({a.split} split), {len(off)} off-topic; torch threads "
          f"{torch.get_num_threads()}; reranker {shipped_spec if shipped else None} top {shipped_cfg.rerank_top}")

    def unfiltered(ret: Retriever, **upd) -> Retriever:
        cfg = ret.config.model_copy(update=upd)
        return Retriever(ret.index, ret.embedder, cfg, relevance=None, reranker=ret.reranker)

    systems: list[tuple[str, Retriever, str]] = [
        ("bm25", unfiltered(plain), "bm25"), ("dense", unfiltered(plain), "dense"),
        ("hybrid", unfiltered(plain), "hybrid")]
    if a.ablation_adapter and shipped is not None:
        abl_cfg = shipped_cfg.model_copy(update={"reranker": a.ablation_adapter})
        abl = Retriever(plain.index, plain.embedder, abl_cfg, relevance=None, reranker=Reranker.from_config(abl_cfg))
        systems.append(("+ reranker (base queries)", abl, "hybrid"))
    if shipped is not None:
        top50 = Retriever(plain.index, plain.embedder, shipped_cfg.model_copy(update={"rerank_top": 50}),
                          relevance=None, reranker=Reranker(shipped.reranker.model, shipped_spec, 50))
        systems += [
            ("+ reranker + new queries, no act diversity", unfiltered(shipped, act_diversity=None), "hybrid"),
            ("+ reranker + new queries, top 50", top50, "hybrid"),
            (f"+ reranker + new queries (shipped, top {shipped_cfg.rerank_top})", unfiltered(shipped), "hybrid")]

    if a.sweep and shipped is not None:
        tops, mls = ([int(x) for x in part.split(",")] for part in a.sweep.split("x"))
        model = shipped.reranker.model
        print(f"{'rerank_top':>10} {'max_length':>10} {'R@10':>6} {'MRR@10':>7} {'amb R@10':>9}")
        sweep = []
        for top in tops:
            for ml in mls:
                model.head.max_length = ml
                ret = Retriever(plain.index, plain.embedder, shipped_cfg.model_copy(update={"rerank_top": top}),
                                relevance=None, reranker=Reranker(model, shipped_spec, top))
                m = [rank_metrics(x.ids, r["gold"]) for r, x in zip(rows, ret.search_many(texts, a.k, docs=docs))]
                amb = [x for r, x in zip(rows, m) if r.get("type") == "ambiguous"]
                row = {"rerank_top": top, "max_length": ml,
                       "recall@10": round(statistics.fmean(x["recall@10"] for x in m), 4),
                       "mrr@10": round(statistics.fmean(x["mrr@10"] for x in m), 4),
                       "ambiguous_recall@10": round(statistics.fmean(x["recall@10"] for x in amb), 4) if amb else None}
                sweep.append(row)
                print(f"{top:>10} {ml:>10} {row['recall@10']:>6.3f} {row['mrr@10']:>7.3f} "
                      f"{float('nan') if row['ambiguous_recall@10'] is None else row['ambiguous_recall@10']:>9.3f}", flush=True)
        if a.json:
            a.json.write_text(json.dumps({"split": a.split, "sweep": sweep}, indent=1) + "\n", encoding="utf-8")
        return

    if a.latency_only:
        pipeline_latency(plain, shipped, texts[: a.latency_queries], a.k, shipped_cfg.rerank_top)
        return

    report: dict = {"split": a.split, "n": len(rows), "n_offtopic": len(off), "systems": {}}
    print(f"\n{'system':<44} {'R@10':>6} {'MRR@10':>7} {'R@1':>6} {'amb R@10':>9}")
    per_query = {}
    for name, ret, mode in systems:
        res = ret.search_many(texts, a.k, mode=mode, docs=docs)
        pq = [(r, rank_metrics(x.ids, r["gold"])) for r, x in zip(rows, res)]
        per_query[name] = pq
        agg = lambda sub: {m: round(statistics.fmean(x[1][m] for x in sub), 4) for m in
                           ("recall@1", "recall@10", "mrr@10")} | {"n": len(sub)} if sub else {"n": 0}
        amb = [x for x in pq if x[0].get("type") == "ambiguous"]
        s = {"all": agg(pq), "ambiguous": agg(amb)}
        for key in ("type", "doc"):
            g = defaultdict(list)
            for x in pq:
                g[x[0].get(key) or x[0]["gold"][0].split(":")[0]].append(x)
            s[f"by_{key}"] = {k: agg(v) for k, v in sorted(g.items())}
        report["systems"][name] = s
        print(f"{name:<44} {s['all']['recall@10']:>6.3f} {s['all']['mrr@10']:>7.3f} {s['all']['recall@1']:>6.3f} "
              f"{s['ambiguous']['recall@10']:>9.3f}")

    best = list(report["systems"])[-1]
    if best in ("hybrid", "bm25", "dense"):
        best = "hybrid"
    print(f"\nper query type / per act ({best}; hybrid in brackets):")
    for key in ("by_type", "by_doc"):
        for g, v in report["systems"][best][key].items():
            h = report["systems"]["hybrid"][key][g]
            print(f"  {g:<18} n={v['n']:>3}  R@10 {v['recall@10']:.3f} ({h['recall@10']:.3f})  "
                  f"MRR@10 {v['mrr@10']:.3f} ({h['mrr@10']:.3f})")

    print("\nabstention (off-topic refused / regulatory queries refused):")
    report["abstention"] = {}
    for name, ret in (("dense threshold", plain), ("reranker P(relevant)", shipped)):
        if ret is None:
            continue
        o = ret.search_many(off, a.k, docs=docs)
        i = ret.search_many(texts, a.k, docs=docs)
        ab = {"offtopic_abstain": round(sum(x.abstained for x in o) / max(1, len(o)), 4),
              "false_abstain": round(sum(x.abstained for x in i) / max(1, len(i)), 4),
              "filtered_recall@10": round(statistics.fmean(rank_metrics(x.ids, r["gold"])["recall@10"]
                                                           for r, x in zip(rows, i)), 4)}
        report["abstention"][name] = ab
        print(f"  {name:<22} off-topic {ab['offtopic_abstain']:.3f}  false {ab['false_abstain']:.3f}  "
              f"R@10 after filter {ab['filtered_recall@10']:.3f}   ({ret.relevance.describe()})")

    if a.calibrate and shipped is not None:  # the abstention bar fitted on the *dev* split (never the reported one), as the threshold is
        from mad_guardrails.retrieval.relevance import calibrate_threshold

        dev_in = [r["query"] for r in read_query_rows(query_data_dir() / "regulatory_queries.jsonl")
                  if in_split(r["id"], "dev")]
        dev_off = [r["query"] for n in OFF_TOPIC_FILES if (query_data_dir() / n).exists()
                   for r in read_query_rows(query_data_dir() / n) if in_split(r["id"], "dev")]
        u = unfiltered(shipped)
        best = lambda qs: [max((e.rerank or 0.0) for e in x.evidence) if x.evidence else 0.0
                           for x in u.search_many(qs, a.k, docs=docs)]
        cal = calibrate_threshold(best(dev_in), best(dev_off), min_in_domain_pass=0.98, source="dev split")
        report["calibration"] = cal.model_dump()
        print(f"\nreranker abstention bar fitted on the dev split ({len(dev_in)} + {len(dev_off)} queries): "
              f"P(relevant) ≥ {cal.threshold:.3f} (dev: in-domain pass {cal.in_domain_pass_rate:.3f}, off-topic "
              f"abstain {cal.off_topic_abstain_rate:.3f}) -> set retrieval.relevance_min")

    if a.latency_queries > 0:  # 0: quality only
        report["latency"] = pipeline_latency(plain, shipped, texts[: a.latency_queries], a.k, shipped_cfg.rerank_top)
        if shipped is None:  # no trained adapter: time the architecture (base MiniLM cross-encoder, same size, int8)
            report["latency"]["architecture"] = latency_grid(plain, texts[: a.latency_queries], layers=(6,),
                                                             candidates=(shipped_cfg.rerank_top, 50),
                                                             max_lengths=(shipped_cfg.rerank_max_length or 128,))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
