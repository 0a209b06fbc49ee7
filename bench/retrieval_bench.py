"""Retrieval speed: embedder throughput vs index build throughput, query latency, peak memory.

    python bench/retrieval_bench.py [--corpus ../shared/data/corpus] [--profile offline] [--sample N] [--queries 100]
                              [--latency-index DIR]   # latency on an existing full index (throughput on --sample)
    python bench/retrieval_bench.py --gpu        # on a GPU machine: torch exact search (see below)

Prints, measured in this run:

* raw embedder throughput (passages/s, ``encode_passages`` only) and index build throughput (passages/s of the whole
  ``RegIndex.build``: encode + FAISS + BM25 + files), and their ratio (target ≥ 0.8);
* query latency p50 / p95 for k=10, one query at a time, hybrid and dense, relevance filter on (target p50 ≤ 20 ms
  on CPU);
* peak RSS of the process.

``--gpu``: on a machine with CUDA, also time the dense path with the embedder on the GPU and an exact torch search
(``topk`` of a matrix product over the stored vectors) -- faiss-gpu wheels are not available there, so this stands in
for FAISS-GPU. The numbers depend on the machine and on other load: run on an idle machine for figures to report.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))
    return xs[i]


def _latency(fn, queries: list[str], warmup: int = 5) -> dict[str, float]:
    for q in queries[:warmup]:
        fn(q)
    ms = []
    for q in queries:
        t = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": round(_pct(ms, 50), 2), "p95_ms": round(_pct(ms, 95), 2),
            "mean_ms": round(statistics.fmean(ms), 2), "n": len(ms)}


def main() -> None:
    import torch

    from mad_guardrails.core.paths import shared_corpus
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.corpus import load_corpus
    from mad_guardrails.retrieval.embedder import Embedder
    from mad_guardrails.retrieval.index import RegIndex
    from mad_guardrails.retrieval.relevance import calibrate_index, query_data_dir, read_query_rows
    from mad_guardrails.retrieval.retriever import Retriever

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=shared_corpus())
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--index", type=Path, default=None, help="where to build (default: a temporary folder)")
    ap.add_argument("--sample", type=int, default=0, help="throughput on only the first N passages (0 = all)")
    ap.add_argument("--latency-index", type=Path, default=None,
                    help="measure latency on this existing (full) index instead of the one just built")
    ap.add_argument("--queries", type=int, default=100, help="queries for the latency figures")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--gpu", action="store_true", help="also time torch exact search with the embedder on CUDA")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.corpus is None:
        raise SystemExit("no corpus: pass --corpus DIR (a folder like shared/data/corpus)")
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config(args.profile).retrieval
    if not args.gpu:
        cfg = cfg.model_copy(update={"embedder": cfg.embedder.model_copy(update={"device": "cpu"}),
                                     "use_gpu": "never"})
    corpus = load_corpus(args.corpus)
    passages = corpus.passages()
    if args.sample:
        passages = passages[: args.sample]
    texts = [p.embed_text for p in passages]
    embedder = Embedder.from_config(cfg.embedder)
    print(f"corpus {args.corpus}: {len(passages)} passages; embedder {embedder.describe()}; "
          f"torch threads {torch.get_num_threads()}")
    embedder.encode_passages(texts[:64], progress=False)  # warm-up

    t = time.perf_counter()
    embedder.encode_passages(texts, progress=False)
    raw_s = time.perf_counter() - t
    raw_tp = len(texts) / raw_s

    with tempfile.TemporaryDirectory() as tmp:
        out = args.index or Path(tmp) / "index"
        t = time.perf_counter()
        idx = RegIndex.build(passages, embedder, out, cfg.index_type, use_gpu=cfg.use_gpu,
                             bm25_stemming=cfg.bm25_stemming, corpus_hash=corpus.hash(), progress=True)
        build_s = time.perf_counter() - t
        build_tp = len(passages) / build_s
        if args.latency_index:
            idx = RegIndex.load(args.latency_index, embedder, use_gpu=cfg.use_gpu)
        else:
            idx.set_relevance(calibrate_index(idx, embedder))
            idx = RegIndex.load(out, embedder, use_gpu=cfg.use_gpu)
        retriever = Retriever(idx, embedder, cfg)

        rows = read_query_rows(query_data_dir() / "regulatory_queries.jsonl")
        queries = [r["query"] for r in rows][: args.queries]
        lat = {mode: _latency(lambda q, m=mode: retriever.search(q, k=10, mode=m), queries)
               for mode in ("hybrid", "dense")}
        stage = {}
        for mode in ("hybrid", "dense"):
            res = [retriever.search(q, k=10, mode=mode) for q in queries[:50]]
            stage[mode] = {key: round(statistics.median(r.timings.get(key, 0.0) for r in res), 2)
                           for key in ("embed", "dense", "bm25", "fuse", "relevance")}

        gpu = None
        if args.gpu:
            gpu = _gpu_exact_search(idx, cfg, queries)

    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "passages": len(passages), "embedder": embedder.describe(), "index_type": idx.manifest.index_type,
        "latency_index_passages": len(idx),
        "raw_encode_passages_per_s": round(raw_tp, 1), "raw_encode_s": round(raw_s, 1),
        "build_passages_per_s": round(build_tp, 1), "build_s": round(build_s, 1),
        "build_over_raw": round(build_tp / raw_tp, 3), "latency_k10": lat, "median_stage_ms": stage,
        "peak_rss_mib": round(peak_mib, 1), "torch_threads": torch.get_num_threads(), "gpu": gpu,
    }
    print(f"raw embedder : {raw_tp:8.1f} passages/s ({raw_s:.1f} s, encode only)")
    print(f"index build  : {build_tp:8.1f} passages/s ({build_s:.1f} s, encode + FAISS + BM25 + files)")
    print(f"build / raw  : {build_tp / raw_tp:8.3f}   (target ≥ 0.8)")
    for mode, v in lat.items():
        print(f"{mode:<7} k=10 : p50 {v['p50_ms']:7.2f} ms  p95 {v['p95_ms']:7.2f} ms  (n={v['n']}; target p50 ≤ 20 ms)"
              f"  stages (median ms) {stage[mode]}")
    if gpu:
        print(f"GPU exact    : {gpu}")
    print(f"peak RSS     : {peak_mib:8.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


def _gpu_exact_search(idx, cfg, queries: list[str]) -> dict | str:
    """Embedder on CUDA + exact inner-product search with torch (stands in for faiss-gpu)."""
    import torch

    from mad_guardrails.retrieval.embedder import Embedder

    if not torch.cuda.is_available():
        return "no CUDA device: skipped"
    emb = Embedder.from_config(cfg.embedder.model_copy(update={"device": "cuda"}))
    vecs = torch.from_numpy(idx.vectors(range(len(idx)))).cuda()

    def one(q: str):
        v = torch.from_numpy(emb.encode_queries([q])).cuda()
        s, i = torch.topk(v @ vecs.T, 10)
        torch.cuda.synchronize()
        return i.cpu()

    lat = _latency(one, queries)
    texts = [p.index_text for p in idx.passages]
    torch.cuda.synchronize()
    t = time.perf_counter()
    emb.encode_passages(texts, progress=False)
    torch.cuda.synchronize()
    return {"dense_exact_k10": lat, "encode_passages_per_s": round(len(texts) / (time.perf_counter() - t), 1),
            "device": torch.cuda.get_device_name(0)}


if __name__ == "__main__":
    main()
