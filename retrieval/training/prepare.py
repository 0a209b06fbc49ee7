"""Prepared training data on disk: generated pairs with mined hard negatives, the passages they point at, and the
base model's passage vectors -- everything the trainers need, so training can run where the corpus is not (a GPU
machine) and evaluation can reuse the base vectors.

    <dir>/pairs.jsonl.gz       TrainPair rows (train + test split), 3 hard negatives each
    <dir>/refs.jsonl.gz        PassageRef rows (every indexed passage of the corpus, with its split key)
    <dir>/base_vectors.npy     base-model passage vectors (row i = refs line i)
    <dir>/prepare.json         counts and settings
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.records import read_models, write_models
from mad_guardrails.retrieval.training.generate import generate_pairs
from mad_guardrails.retrieval.training.heldout import heldout_gold_keys
from mad_guardrails.retrieval.training.llm_queries import LLMQueryGenerator
from mad_guardrails.retrieval.training.negatives import RANK_RANGE, mine_for_pairs
from mad_guardrails.retrieval.training.pairs import (
    PassageRef,
    TrainPair,
    load_pairs,
    passage_refs,
    save_pairs,
    summarize,
)

if TYPE_CHECKING:
    from mad_guardrails.retrieval.corpus import Corpus

PAIRS_FILE = "pairs.jsonl.gz"
REFS_FILE = "refs.jsonl.gz"
VECTORS_FILE = "base_vectors.npy"


def save_refs(refs: Sequence[PassageRef], path: str | Path) -> Path:
    return write_models(refs, path)


def load_refs(path: str | Path) -> list[PassageRef]:
    return read_models(path, PassageRef, missing_fix="prepare the data first (--prepare-only)")


def prepare_embedder_data(
    corpus: Corpus,
    out_dir: str | Path,
    *,
    base: str = "bundled:all-MiniLM-L6-v2",
    seed: int = 0,
    per_type: int = 1,
    test_fraction: float = 0.12,
    holdout_eval_golds: bool = False,
    n_negatives: int = 3,
    rank_range: tuple[int, int] = RANK_RANGE,
    llm: LLMQueryGenerator | None = None,
    rules: Sequence[Any] | None = None,
    docs: Sequence[str] | None = None,
    mine: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate pairs, embed passages + queries with the base model, mine hard negatives, write the folder.
    ``mine=False`` stops after generation (no model needed; :func:`ensure_mined` finishes the job elsewhere)."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    passages = corpus.passages() if docs is None else [p for d in docs for p in corpus.passages(doc=d)]
    holdout = heldout_gold_keys() if holdout_eval_golds else []
    pairs = generate_pairs(corpus, passages=passages, per_type=per_type, seed=seed, test_fraction=test_fraction,
                           holdout_keys=holdout, llm=llm, rules=rules, progress=progress)
    refs = passage_refs(corpus, passages)
    save_pairs(pairs, out / PAIRS_FILE)
    save_refs(refs, out / REFS_FILE)
    base_desc = None
    if mine:
        base_desc = ensure_mined(out, base=base, n_negatives=n_negatives, rank_range=rank_range, progress=progress)
    info = {"base": base_desc, "seed": seed, "per_type": per_type, "test_fraction": test_fraction,
            "holdout_eval_golds": holdout_eval_golds, "holdout_keys": len(holdout), "n_negatives": n_negatives,
            "rank_range": list(rank_range), "dropped_near_heldout": getattr(generate_pairs, "last_dropped", None),
            "llm": llm is not None, "llm_failures": llm.failures if llm is not None else None,
            "summary": summarize(pairs), "seconds": round(time.perf_counter() - t0, 1)}
    (out / "prepare.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def ensure_mined(data_dir: str | Path, *, base: str = "bundled:all-MiniLM-L6-v2", n_negatives: int = 3,
                 rank_range: tuple[int, int] = RANK_RANGE, progress: bool = True) -> str | None:
    """Mine hard negatives (and store the base passage vectors) in a prepared folder whose pairs have none yet.
    Returns the base model's description, or None when nothing was to do."""
    from mad_guardrails.retrieval.embedder import Embedder

    d = Path(data_dir)
    pairs = load_pairs(d / PAIRS_FILE)
    mined = any(p.negatives for p in pairs)
    if mined and (d / VECTORS_FILE).exists():
        return None
    refs = load_refs(d / REFS_FILE)
    emb = Embedder.load(base)
    p_vecs = emb.encode_passages([r.embed_text for r in refs], progress=progress)
    if not mined:  # pairs that came with their negatives (e.g. mined by the hybrid retriever) keep them
        q_vecs = emb.encode_queries([p.query for p in pairs], progress=progress)
        pairs = mine_for_pairs(pairs, refs, q_vecs, p_vecs, n=n_negatives, rank_range=rank_range)
        save_pairs(pairs, d / PAIRS_FILE)
    np.save(d / VECTORS_FILE, p_vecs)
    return emb.describe()


def load_prepared(data_dir: str | Path) -> tuple[list[TrainPair], list[PassageRef], np.ndarray | None]:
    d = Path(data_dir)
    pairs = load_pairs(d / PAIRS_FILE)
    refs = load_refs(d / REFS_FILE)
    vec = np.load(d / VECTORS_FILE) if (d / VECTORS_FILE).exists() else None
    if vec is not None and vec.shape[0] != len(refs):
        raise InputError(f"{VECTORS_FILE} has {vec.shape[0]} rows for {len(refs)} passages", where=str(d),
                         fix="prepare the folder again")
    return pairs, refs, vec
