#!/usr/bin/env python3
"""Train and measure the domain head (``retrieval/domain.py``): P(a question is about the regulated domain) from the
retriever's own query embedding.

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/domain_head.py [--templates .cache/rerank/data]
        [--out retrieval/adapters/domain-head/head.json]

Training queries, none from an evaluation set:
* in domain -- the questions people wrote the way users ask (``bench/gpu/rerank/data/queries_*.jsonl``, train articles
  only; any close to an evaluation query dropped), plus, with ``--templates``, generated queries of the train split
  (the reranker data folder ``bench/gpu/rerank/prepare.py`` writes);
* off the domain -- the project's off-topic training questions (``retrieval/training/offtopic_train.yaml``), and the
  *train split* (by prompt, the harm screen's ``split_of``) of the XSTest prompts and of the HarmBench, StrongREJECT
  and AdvBench requests in ../shared/data (read here, never copied).
The regularisation C is chosen by 5-fold cross-validation on those queries alone, and the threshold is the highest
that keeps 99 % of the people-written questions in domain out of fold -- no evaluation set decides anything. Then it
prints, on held-out sets only: the hand-written regulatory queries and the case questions (kept in domain), the
off-topic sets, the XSTest prompts of the dev and test splits and the harmful requests of the test split (read as off
the domain), each alone and together with the retriever's dense-threshold abstention.
"""
from __future__ import annotations

import argparse
import csv
import functools
import gzip
import json
import random
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "evalsets"


@functools.cache
def _harm_split():
    sys.path.insert(0, str(ROOT / "bench" / "gpu" / "harm"))
    from data import split_of as harm_split

    return harm_split


def split_of(text: str) -> str:
    """The harm screen's split by prompt (bench/gpu/harm/data.py), so no test prompt is trained on here either."""
    return _harm_split()(text)


def harmful_requests() -> list[str]:
    rows = [r["Behavior"] for r in csv.DictReader(open(SHARED / "harmbench" / "harmbench_behaviors_text_all.csv"))]
    rows += [r["forbidden_prompt"] for r in csv.DictReader(open(SHARED / "strongreject" / "strongreject_dataset.csv"))]
    rows += [r["goal"] for r in csv.DictReader(open(SHARED / "advbench" / "harmful_behaviors.csv"))]
    return list(dict.fromkeys(rows))


def xstest_prompts() -> list[str]:
    return [r["prompt"] for r in csv.DictReader(open(SHARED / "xstest" / "xstest_prompts.csv"))]


def training_queries(templates: Path | None, n_templates: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """(people-written in-domain, generated in-domain, off-domain) training questions."""
    from mad_guardrails.retrieval.training.heldout import Decontaminator, heldout_queries

    clean = Decontaminator(heldout_queries())
    written = [json.loads(line)["q"] for f in sorted((ROOT / "bench/gpu/rerank/data").glob("queries_*.jsonl"))
               for line in open(f, encoding="utf-8") if line.strip()]
    written = [q for q in dict.fromkeys(written) if clean.keep(q)]
    generated: list[str] = []
    if templates:
        groups = [json.loads(line) for line in gzip.open(templates / "groups.jsonl.gz", "rt", encoding="utf-8")]
        generated = [g["q"] for g in groups if g["set"] in ("base", "new") and g["split"] == "train"]
        random.Random(seed).shuffle(generated)
        generated = [q for q in generated[: n_templates * 2] if clean.keep(q)][:n_templates]
    off = [q for qs in yaml.safe_load(open(ROOT / "retrieval/training/offtopic_train.yaml")).values() for q in qs]
    off += [q for q in xstest_prompts() + harmful_requests() if split_of(q) == "train"]
    return written, generated, off


def fit(X: np.ndarray, y: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    w = np.where(y == 1, 0.5 / max(1, y.sum()), 0.5 / max(1, (1 - y).sum())) * len(y)  # classes weigh alike
    return LogisticRegression(C=C, max_iter=5000).fit(X, y, sample_weight=w)


def out_of_fold(X: np.ndarray, y: np.ndarray, C: float, folds: int = 5, seed: int = 0) -> np.ndarray:
    idx = np.random.default_rng(seed).permutation(len(y))
    p = np.zeros(len(y))
    for f in range(folds):
        test = idx[f::folds]
        train = np.setdiff1d(idx, test)
        p[test] = fit(X[train], y[train], C).predict_proba(X[test])[:, 1]
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--templates", type=Path, default=None, help="reranker data folder (generated train queries)")
    ap.add_argument("--n-templates", type=int, default=3000)
    ap.add_argument("--keep", type=float, default=0.99, help="share of people-written questions kept in domain (OOF)")
    ap.add_argument("--calibrate", choices=("oof", "dev"), default="dev",
                    help="dev: the bar is also lowered until --keep-dev of the regulatory queries' dev split pass")
    ap.add_argument("--keep-dev", type=float, default=1.0)
    ap.add_argument("--C", default="0.3,1,3", help="regularisation values cross-validated")
    ap.add_argument("--out", type=Path, default=None, help="write the head here (e.g. retrieval/adapters/domain-head/"
                    "head.json)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.domain import DomainHead
    from mad_guardrails.retrieval.evaluation import in_split
    from mad_guardrails.retrieval.retriever import Retriever

    def rows(name):
        return [json.loads(line) for line in open(ROOT / "evals/data" / f"{name}.jsonl", encoding="utf-8")]

    cfg = load_config("offline")
    ret = Retriever.from_config(cfg.retrieval.model_copy(update={"domain_head": None}))
    enc = ret.embedder.encode_queries

    written, generated, off = training_queries(a.templates, a.n_templates, a.seed)
    pos = written + generated
    X = np.vstack([enc(pos), enc(off)])
    y = np.r_[np.ones(len(pos)), np.zeros(len(off))]
    is_written = np.r_[np.ones(len(written)), np.zeros(len(generated) + len(off))].astype(bool)
    print(f"training questions: {len(written)} people-written + {len(generated)} generated in domain, {len(off)} off")

    best = None
    for C in (float(c) for c in a.C.split(",")):
        p = out_of_fold(X, y, C, seed=a.seed)
        tau = float(np.quantile(p[is_written], 1 - a.keep))
        off_rate = float(np.mean(p[y == 0] < tau))
        gen_keep = float(np.mean(p[(y == 1) & ~is_written] >= tau)) if generated else None
        print(f"  C={C:<5} out of fold: threshold {tau:.3f} keeps {a.keep:.0%} of written, generated kept "
              f"{gen_keep if gen_keep is None else round(gen_keep, 3)}, off-domain read off {off_rate:.3f}")
        if best is None or off_rate > best[2]:
            best = (C, tau, off_rate)
    C, tau, off_rate = best
    model = fit(X, y, C)
    dev = [r["query"] for r in rows("regulatory_queries") if in_split(r["id"], "dev")]
    p_dev = model.predict_proba(enc(dev))[:, 1]
    if a.calibrate == "dev":  # the retriever's convention: the dev split of the regulatory queries sets the bar
        tau = min(tau, float(np.quantile(p_dev, 1 - a.keep_dev, method="lower")))
        print(f"  dev split: threshold {tau:.3f} keeps {np.mean(p_dev >= tau):.3f} of its {len(dev)} questions")
    head = DomainHead(weights=[float(v) for v in model.coef_[0]], bias=float(model.intercept_[0]),
                      threshold=round(tau, 4), embedder=ret.embedder.fingerprint(),
                      trained_on={"in_domain_written": len(written), "in_domain_generated": len(generated),
                                  "off_domain": len(off), "sources": "bench/gpu/rerank/data/queries_*.jsonl; "
                                  "reranker train-split queries; retrieval/training/offtopic_train.yaml; XSTest prompts, "
                                  "HarmBench / StrongREJECT / AdvBench requests (train split by prompt)"},
                      calibration={"C": C, "keep_written_oof": a.keep, "off_domain_oof": round(off_rate, 4),
                                   "keep_dev": a.keep_dev if a.calibrate == "dev" else None,
                                   "how": "5-fold out-of-fold P on the training questions"
                                   + ("; lowered to keep the dev split of evals/data/regulatory_queries.jsonl"
                                      if a.calibrate == "dev" else "")})
    if a.out:
        print("wrote", head.save(a.out))

    cases = [r["query"] for n in ("regulatory_cases", "regulatory_cases_heldout", "regulatory_cases_fresh")
             for r in rows(n)]
    xs = [q for q in xstest_prompts() if split_of(q) != "train"]
    sets = {  # name -> (queries, in domain?)
        "regulatory queries, dev split": ([r["query"] for r in rows("regulatory_queries") if in_split(r["id"], "dev")], True),
        "regulatory queries, test split": ([r["query"] for r in rows("regulatory_queries") if in_split(r["id"], "test")], True),
        "case questions (dev, held-out, fresh)": (cases, True),
        "off-topic, dev split": ([r["query"] for n in ("offtopic_queries", "offtopic_generic") for r in rows(n)
                                  if in_split(r["id"], "dev")], False),
        "off-topic, test split": ([r["query"] for n in ("offtopic_queries", "offtopic_generic") for r in rows(n)
                                   if in_split(r["id"], "test")], False),
        "XSTest prompts, dev + test": (xs, False),
        "harmful requests, test split": ([q for q in harmful_requests() if split_of(q) == "test"], False),
    }
    print(f"\nheld-out, threshold {head.threshold} (C={C}): share read as in domain / off; with the dense threshold")
    print(f"{'set':40s} {'n':>5s} {'head':>8s} {'dense':>8s} {'either':>8s}   (in-domain sets: kept; others: refused)")
    for name, (qs, inside) in sets.items():
        off_head = head.proba(enc(qs)) < head.threshold
        dense = np.array([r.abstained for r in ret.search_many(qs)])
        either = off_head | dense
        f = (lambda v: 1 - v.mean()) if inside else (lambda v: v.mean())
        print(f"{name:40s} {len(qs):5d} {f(off_head):8.3f} {f(dense):8.3f} {f(either):8.3f}")


if __name__ == "__main__":
    main()
