#!/usr/bin/env python3
"""CPU side of the reranker training: the query groups with hard negatives mined from the offline retriever's own
wrong hits (``mad_guardrails.retrieval.training.rerank_data``), and the base MiniLM in fp16 (so both fit a carry).

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/gpu/rerank/prepare.py --out .cache/rerank
    # writes .cache/rerank/data/ (passages, groups, info.json) and .cache/rerank/base/ (MiniLM, fp16)
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path


WORD_EMB = "embeddings.word_embeddings.weight"


def export_base(out: Path, data_dir: Path) -> None:
    """The bundled all-MiniLM-L6-v2 (config, tokenizer) with fp16 weights (the trainer upcasts them), its word
    embeddings cut to the rows the training texts use (``vocab_rows.safetensors``: frozen in training, so the other
    rows never matter there) -- the carry to the GPU machine must stay under 64 MiB."""
    import gzip

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from mad_guardrails.retrieval.embedder import resolve_model

    src = Path(resolve_model("bundled:all-MiniLM-L6-v2", what="reranker base").path)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(src / name, out / name)
    sd = load_file(str(src / "model.safetensors"))
    key = next(k for k in sd if k.endswith(WORD_EMB))
    tok = AutoTokenizer.from_pretrained(str(src))
    texts = []
    for name, field in (("passages.jsonl.gz", "text"), ("groups.jsonl.gz", "q")):
        with gzip.open(data_dir / name, "rt", encoding="utf-8") as fh:
            texts += [json.loads(line)[field] for line in fh]
    used = sorted({i for ids in tok(texts, add_special_tokens=True)["input_ids"] for i in ids} | set(tok.all_special_ids))
    ids = torch.tensor(used, dtype=torch.long)
    save_file({"ids": ids, "rows": sd[key][ids].to(torch.float16).contiguous(), "n": torch.tensor([sd[key].shape[0]])},
              str(out / "vocab_rows.safetensors"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items() if k != key}, str(out / "model.safetensors"))


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
    a = ap.parse_args()
    if a.base_only:
        return export_base(a.out / "base", a.out / "data")
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
