#!/usr/bin/env python3
"""CPU side of the reranker training: the query groups with hard negatives mined from the offline retriever's own
wrong hits (``mad_guardrails.retrieval.training.rerank_data``), and the base MiniLM in fp16 (so both fit a carry).

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/gpu/rerank/prepare.py --out .cache/rerank
    # writes .cache/rerank/data/ (passages, groups, info.json) and .cache/rerank/base/ (MiniLM, fp16)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path



def export_base(out: Path, data_dir: Path) -> None:
    """The bundled MiniLM as the compact training base (``bench/gpu/base_io.py``) covering this data's texts."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from base_io import data_texts, export_base as export

    from mad_guardrails.retrieval.embedder import resolve_model

    src = Path(resolve_model("bundled:all-MiniLM-L6-v2", what="reranker base").path)
    print(json.dumps(export(src, out, data_texts(data_dir))))


def add_written(a) -> None:
    """Append (or replace) the ``written`` groups of an existing data folder; the other sets are kept as mined."""
    import gzip

    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.retriever import Retriever
    from mad_guardrails.retrieval.training.rerank_data import (
        GROUPS_FILE,
        PASSAGES_FILE,
        index_refs,
        read_rerank_data,
        written_groups,
    )

    data = a.out / "data"
    rows = [json.loads(x) for p in sorted((Path(__file__).parent / "data").glob("queries_*.jsonl"))
            for x in p.open(encoding="utf-8") if x.strip()]
    cfg = load_config(a.profile).retrieval.model_copy(update={"reranker": None, "relevance_filter": "none"})
    retriever = Retriever.from_config(cfg, a.profile)
    refs = index_refs(retriever.index)
    passages, old = read_rerank_data(data)
    if [p["pid"] for p in passages] != [r.pid for r in refs]:
        raise SystemExit(f"{data / PASSAGES_FILE}: the index's passages changed since it was written; run "
                         "prepare.py without --add-written")
    new = written_groups(retriever, rows, seed=a.seed, refs=refs)
    groups = [g for g in old if g["set"] != "written"] + [
        {k: g[k] for k in ("q", "pos", "neg", "type", "set", "split", "doc")} for g in new]
    with gzip.open(data / GROUPS_FILE, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(g, ensure_ascii=False) + "\n" for g in groups)
    info = json.loads((data / "info.json").read_text(encoding="utf-8"))
    ranks = [g["rank"] for g in new]
    info.update(groups=len(groups), written={"rows": len(rows), "kept": len(new), "recall@10": round(
        sum(1 for r in ranks if r and r <= 10) / max(1, len(ranks)), 4), "recall@50": round(
        sum(1 for r in ranks if r) / max(1, len(ranks)), 4)})
    (data / "info.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    export_base(a.out / "base", data)
    print(json.dumps(info["written"]))


def main() -> None:
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.corpus import load_corpus
    from mad_guardrails.retrieval.retriever import Retriever
    from mad_guardrails.retrieval.training.rerank_data import build_groups, write_rerank_data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(".cache/rerank"))
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-only", action="store_true", help="only (re)write the base model from existing data")
    ap.add_argument("--add-written", action="store_true",
                    help="append the written queries (bench/gpu/rerank/data/queries_*.jsonl, set 'written') to the "
                         "existing data folder, mining only their hits, then rewrite the base")
    a = ap.parse_args()
    if a.base_only:
        return export_base(a.out / "base", a.out / "data")
    if a.add_written:
        return add_written(a)
    t0 = time.perf_counter()
    cfg = load_config(a.profile).retrieval.model_copy(update={"reranker": None, "relevance_filter": "none"})
    retriever = Retriever.from_config(cfg, a.profile)
    corpus = load_corpus(cfg.corpus_dir) if cfg.corpus_dir else load_corpus()
    try:
        from mad_guardrails.policies.loader import load_packs  # rule titles as {fact} slots (bench: no layer rule)

        rules = list(load_packs().rules)
    except Exception:  # noqa: BLE001
        rules = []
    refs, groups = build_groups(retriever, corpus, seed=a.seed, rules=rules)
    info = write_rerank_data(refs, groups, a.out / "data", {"seed": a.seed, "seconds": round(time.perf_counter() - t0)})
    export_base(a.out / "base", a.out / "data")
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
