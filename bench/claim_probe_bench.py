#!/usr/bin/env python3
"""Would a 1.5B LLM read (clause sentence, claim) pairs better than the trained cross-encoder, if it were taught?

A linear probe on Qwen2.5-1.5B-Instruct's last-token hidden state (llama.cpp in process, pooling LAST) of the
claim-judge prompt over (clause sentence, claim), trained on ``--train N`` hand-written claims of the entailment
trainer's TRAIN split (balanced over the three labels), its entailed threshold chosen on ``--dev N`` hand-written DEV
claims (precision 0.95, as ``bench/gpu/entailment/evaluate.py`` calibrates the cross-encoder), read once on the 216
independent pairs of ``evals/data/entailment_paraphrases.jsonl`` (test-split articles, written by nobody who wrote
the training claims). The shipped cross-encoder is scored on the same pairs in the same run.

    python bench/gpu/entailment/data.py --out .cache/entail/data12     # 14 s, CPU
    mad-guardrails models fetch qwen2.5-1.5b && pip install ik-llama-cpp-python==0.1.5
    GUARDRAILS_HOME=.cache/home python bench/claim_probe_bench.py --data .cache/entail/data12 \
        [--train 1200] [--dev 300] [--feats F.npz]

≈ 2.3 s a pair on 2 cores (every prompt is read whole; no prefix cache). Prints, for each reader: AUC of entailed vs
the rest, argmax macro-F1 over the three labels, and entailed recall / precision at the dev-chosen threshold. Measures
a lead; the cascade does not use it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from claim_judge_bench import SYSTEM, auc  # noqa: E402
from entailment_bench import resolve_premises  # noqa: E402
from llm_states import cached, last_token_states  # noqa: E402

LABELS = ("entailed", "contradicted", "neutral")


def hidden_states(rows: list[dict], llm: str, threads: int) -> np.ndarray:
    """The last-token hidden state of the claim-judge prompt for each (premise, hypothesis) row."""
    return last_token_states([[{"role": "system", "content": SYSTEM}, {"role": "user", "content": (
        f"Clause:\n{r['premise']}\n\nStatement:\n{r['hypothesis']}\n\nAnswer with one word.")}] for r in rows],
        llm, threads)


def macro_f1(gold: list[str], pred: list[str]) -> float:
    f1s = []
    for lab in LABELS:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred))
        fp = sum(g != lab and p == lab for g, p in zip(gold, pred))
        fn = sum(g == lab and p != lab for g, p in zip(gold, pred))
        prec, rec = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


def bar_for_precision(scores: list[float], gold: list[str], target: float = 0.95) -> float:
    """The lowest threshold on P(entailed) whose entailed precision on these rows reaches ``target``."""
    for t in sorted(set(scores)):
        picked = [g for s, g in zip(scores, gold) if s >= t]
        if picked and sum(g == "entailed" for g in picked) / len(picked) >= target:
            return t
    return 1.01


def report(name: str, dev: tuple[list[float], list[str]], test: tuple[list[dict], list[str]]) -> None:
    bar = bar_for_precision(*dev)
    probs, gold = test
    e = [p["entailed"] for p in probs]
    pred = [max(p, key=p.get) for p in probs]
    tp = sum(s >= bar and g == "entailed" for s, g in zip(e, gold))
    fp = sum(s >= bar and g != "entailed" for s, g in zip(e, gold))
    ne = sum(g == "entailed" for g in gold)
    area = auc([s for s, g in zip(e, gold) if g == "entailed"], [s for s, g in zip(e, gold) if g != "entailed"])
    print(f"{name:34s} AUC {area:.3f}"
          f"  argmax macro-F1 {macro_f1(gold, pred):.3f}  dev bar {bar:.3f}: entailed recall {tp / max(1, ne):.3f}"
          f" precision {tp / max(1, tp + fp):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="bench/gpu/entailment/data.py output folder")
    ap.add_argument("--train", type=int, default=1200)
    ap.add_argument("--dev", type=int, default=300)
    ap.add_argument("--llm", default="fetched:qwen2.5-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--feats", type=Path, default=None, help="cache the hidden states here (npz)")
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mad_guardrails.core.paths import evals_data_dir, shared_corpus
    from mad_guardrails.retrieval.corpus import load_corpus
    from mad_guardrails.verifier.domain_nli import DomainNLI

    rng = random.Random(0)
    train = [json.loads(x) for x in gzip.open(args.data / "train.jsonl.gz", "rt")]
    train = [r for r in train if r["source"].startswith("hand")]
    per = args.train // 3
    train = [r for lab in LABELS for r in rng.sample([x for x in train if x["label"] == lab], per)]
    dev = [json.loads(x) for x in gzip.open(args.data / "dev.jsonl.gz", "rt")]
    dev = [r for r in dev if r["source"].startswith("hand")]
    rng.shuffle(dev)
    dev = dev[:args.dev]
    test = [json.loads(x) for x in (evals_data_dir() / "entailment_paraphrases.jsonl").read_text().splitlines()
            if x.strip()]
    test, _ = resolve_premises(test, load_corpus(shared_corpus()))
    rows = train + dev + test
    t0 = time.perf_counter()
    X = cached(args.feats, lambda: hidden_states(rows, args.llm, args.threads))
    secs = time.perf_counter() - t0
    y = np.array([LABELS.index(r["label"]) for r in rows])
    a, b = len(train), len(train) + len(dev)
    scaler = StandardScaler().fit(X[:a])
    probe = LogisticRegression(C=0.05, max_iter=3000).fit(scaler.transform(X[:a]), y[:a])
    P = probe.predict_proba(scaler.transform(X))
    as_dict = [dict(zip(LABELS, map(float, p))) for p in P]
    nli = DomainNLI.load("bundled:entailment-minilm")
    M = nli.predict([(r["premise"], r["hypothesis"]) for r in rows])
    gold = [r["label"] for r in rows]
    print(f"train {a} hand claims (balanced), dev {b - a}, test {len(test)} independent pairs; "
          f"hidden states {secs:.0f} s ({secs / len(rows):.2f} s a pair)")
    for name, probs in (("cross-encoder (shipped)", M), ("LLM hidden-state probe", as_dict)):
        report(name, ([p["entailed"] for p in probs[a:b]], gold[a:b]), (probs[b:], gold[b:]))
    mix = [{k: (m[k] + q[k]) / 2 for k in LABELS} for m, q in zip(M, as_dict)]
    report("mean of the two", ([p["entailed"] for p in mix[a:b]], gold[a:b]), (mix[b:], gold[b:]))


if __name__ == "__main__":
    main()
