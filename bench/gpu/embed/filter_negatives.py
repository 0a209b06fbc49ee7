#!/usr/bin/env python3
"""CPU step before ``train.py``: drop the hard negatives of the prepared embedder pairs that are near-positives.

The pairs ``mad-guardrails train embedder --from-rerank-data DIR --prepare-only`` writes take their negatives from
the hybrid retriever's own wrong hits, best-ranked first -- the hits most likely to be a right answer under another
label (another paragraph of the gold article, the same duty in another act). MNRL pushes every negative away from
the query, so a near-positive teaches the embedder against the right answer. A negative is dropped when

  1. ``same-article``: it lies in the positive's article (its split key -- the top unit, a framework's category --
     is the positive's, or one unit id covers the other);
  2. ``near-duplicate``: its cosine to the positive passage is >= ``--max-cos`` (the shipped adapter's vectors, the
     ones the offline index holds). Session 12 took 0.70: ~p92 of the first negatives' cosines, and closer to the
     positive than 87 % of the positive's own sibling paragraphs (same article: median 0.48, p90 0.72); 0.85 drops
     0.9 % of the negatives and changes the first one of 1.5 % of the pairs;
  3. ``outscores`` (``--margin M``; off unless given): the query is closer to it than to its positive minus M, the
     false-negative margin of the shipped adapter's own recipe (``retrieval/training/negatives.py``, base vectors
     there, the shipped adapter's here). On the session-12 pairs the first negative outscores the positive for 55 %
     of the queries.

The order of the remaining negatives is kept (best-ranked wrong hit first), so ``train.py --hard-negatives 1`` takes
the hardest one that survived. A pair left with no negative is kept (it still trains with the in-batch negatives),
so the filtered file has the same queries and positives as the input.

  GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/gpu/embed/filter_negatives.py \
      --data .cache/emb-g/data --out .cache/emb-g/pairs-f70.jsonl.gz --max-cos 0.70 --keep 1 [--margin 0.0]
"""
from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np


def quantiles(x: list[float]) -> dict[str, float]:
    if not x:
        return {}
    a = np.asarray(x)
    return {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (5, 25, 50, 75, 90, 95, 99)} | {
        "mean": round(float(a.mean()), 3), "n": len(x)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="prepared folder (pairs.jsonl.gz + refs.jsonl.gz)")
    ap.add_argument("--out", type=Path, required=True, help="filtered pairs (jsonl.gz)")
    ap.add_argument("--adapter", default="bundled", help="embedder adapter for the cosines (bundled = shipped)")
    ap.add_argument("--max-cos", type=float, default=0.85, help="drop a negative this close to the positive")
    ap.add_argument("--margin", type=float, default=None, help="also drop a negative the query scores above its "
                    "positive minus this margin (off by default)")
    ap.add_argument("--keep", type=int, default=3, help="negatives kept per pair after the filter (a smaller file "
                    "to carry: train.py reads the first --hard-negatives)")
    a = ap.parse_args()

    from mad_guardrails.core.units import id_covers
    from mad_guardrails.retrieval.embedder import Embedder

    with gzip.open(a.data / "pairs.jsonl.gz", "rt", encoding="utf-8") as fh:
        pairs = [json.loads(x) for x in fh]
    with gzip.open(a.data / "refs.jsonl.gz", "rt", encoding="utf-8") as fh:
        refs = {r["pid"]: r for r in (json.loads(x) for x in fh)}
    pids = sorted({p["pid"] for p in pairs} | {n for p in pairs for n in p["negative_pids"]})
    row = {pid: i for i, pid in enumerate(pids)}
    emb = Embedder.load("bundled:all-MiniLM-L6-v2", adapter=a.adapter)
    pv = emb.encode_passages([refs[pid]["embed_text"] for pid in pids])
    qv = emb.encode_queries([p["query"] for p in pairs], progress=True) if a.margin is not None else None

    dropped: Counter[str] = Counter()
    cos_first, cos_all, kept_first = [], [], []
    out = []
    for i, p in enumerate(pairs):
        pos = pv[row[p["pid"]]]
        q_pos = float(qv[i] @ pos) if qv is not None else None
        negs, npids = [], []
        for j, (text, nid) in enumerate(zip(p["negatives"], p["negative_pids"])):
            ref = refs[nid]
            c = float(pos @ pv[row[nid]])
            cos_all.append(c)
            if j == 0:
                cos_first.append(c)
            if ref["key"] == p["key"] or id_covers(ref["unit_id"], p["unit_id"]) or id_covers(p["unit_id"],
                                                                                           ref["unit_id"]):
                dropped["same-article"] += 1
                continue
            if c >= a.max_cos:
                dropped["near-duplicate"] += 1
                continue
            if qv is not None and float(qv[i] @ pv[row[nid]]) > q_pos - a.margin:
                dropped["outscores"] += 1
                continue
            negs.append(text)
            npids.append(nid)
        if npids:
            kept_first.append(float(pos @ pv[row[npids[0]]]))
        out.append(p | {"negatives": negs[: a.keep], "negative_pids": npids[: a.keep]})
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(a.out, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in out)
    stats = {"pairs": len(pairs), "negatives_in": sum(len(p["negative_pids"]) for p in pairs),
             "negatives_kept": sum(len(p["negative_pids"]) for p in out), "keep": a.keep, "dropped": dict(dropped),
             "first_negative_changed": sum(1 for p, o in zip(pairs, out)
                                           if p["negative_pids"][:1] != o["negative_pids"][:1]),
             "pairs_without_negative": sum(1 for o in out if not o["negative_pids"]),
             "max_cos": a.max_cos, "margin": a.margin, "adapter": a.adapter, "embedder": emb.describe(),
             "cos_pos_first_negative": quantiles(cos_first), "cos_pos_any_negative": quantiles(cos_all),
             "cos_pos_first_negative_kept": quantiles(kept_first),
             "by_source_without_negative": dict(Counter(o["source"] for o in out if not o["negative_pids"]))}
    a.out.with_suffix("").with_suffix(".json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
