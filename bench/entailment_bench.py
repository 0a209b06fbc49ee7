"""The entailment verifier on held-out articles: hand-written claims (paraphrases, contradictions in other words,
lexically close neutrals) against clause sentences of the test-split articles (evals/data/entailment_paraphrases.jsonl,
written independently of the training data; the premises are pointers resolved against the corpus here).

    python bench/entailment_bench.py [--model bundled:entailment-minilm] [--corpus ../shared/data/corpus] [--json]

Prints macro-F1 over the three labels, accuracy per kind of claim, the confusion matrix, and the CPU latency for a
claim check's typical batch (20 pairs, 2 threads).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections import Counter, defaultdict

from mad_guardrails.core.claims import OutputClaim
from mad_guardrails.core.paths import evals_data_dir, shared_corpus
from mad_guardrails.core.units import id_covers
from mad_guardrails.retrieval.corpus import load_corpus
from mad_guardrails.verifier.claim_check import settle
from mad_guardrails.verifier.domain_nli import BUNDLED_NAME, DomainNLI

LABELS = ("entailed", "contradicted", "neutral")


def resolve_premises(rows, corpus) -> tuple[list[dict], int]:
    """Attach each row's premise (found by its first words, length and sha256 prefix in its unit's text)."""
    out, missing = [], 0
    for r in rows:
        top = f"{r['doc']}:{r['unit']}"
        texts = [u.text for u in corpus.units(r["doc"]) if id_covers(top, u.id) or id_covers(u.id, top)]
        if r["doc"].startswith("nist"):
            texts += [u.text for u in corpus.units(r["doc"])]
        found = None
        for t in texts:
            start = t.find(r["premise_head"])
            while start >= 0 and found is None:
                cand = t[start:start + r["premise_chars"]]
                if hashlib.sha256(cand.encode()).hexdigest()[:16] == r["premise_sha256"]:
                    found = cand
                start = t.find(r["premise_head"], start + 1)
            if found:
                break
        if found is None:
            missing += 1
            continue
        out.append({**r, "premise": found})
    return out, missing


def decide(p: dict[str, float], te: float, tc: float) -> str:
    if p["contradicted"] >= tc and p["contradicted"] > p["entailed"]:
        return "contradicted"
    if p["entailed"] >= te:
        return "entailed"
    return "neutral"


def macro_f1(gold, pred) -> float:
    f1s = []
    for lab in LABELS:
        tp = sum(1 for g, p in zip(gold, pred) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, pred) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, pred) if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1s.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(f1s) / len(f1s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=BUNDLED_NAME)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    rows = [json.loads(x) for x in (evals_data_dir() / "entailment_paraphrases.jsonl").read_text().splitlines()
            if x.strip()]
    corpus = load_corpus(args.corpus or shared_corpus())
    rows, missing = resolve_premises(rows, corpus)
    t0 = time.perf_counter()
    model = DomainNLI.load(args.model)
    load_s = time.perf_counter() - t0
    probs = model.predict([(r["premise"], r["hypothesis"]) for r in rows])
    te, tc = model.entail_threshold, model.contradict_threshold
    gold = [r["label"] for r in rows]
    pred = [decide(p, te, tc) for p in probs]
    argmax = [max(p, key=p.get) for p in probs]
    # what the claim check makes of the same pair: the model plus the checked differences (claim_signals)
    checked = [settle(OutputClaim(index=0, text=r["hypothesis"], start=0, end=len(r["hypothesis"]), regulatory=True),
                      [((f"{r['doc']}:{r['unit']}", r["premise"]), p)], te, tc).label for r, p in zip(rows, probs)]
    by_kind: dict[str, list[bool]] = defaultdict(list)
    for r, p in zip(rows, pred):
        by_kind[r["kind"]].append(p == r["label"])
    confusion = Counter((g, p) for g, p in zip(gold, pred))
    batch = [(rows[i % len(rows)]["premise"], rows[i % len(rows)]["hypothesis"]) for i in range(20)]
    lat = []
    for _ in range(7):
        t = time.perf_counter()
        model.predict(batch)
        lat.append(time.perf_counter() - t)
    report = {
        "model": args.model, "pairs": len(rows), "unresolved_premises": missing,
        "thresholds": {"entailed": te, "contradicted": tc},
        "macro_f1": round(macro_f1(gold, pred), 4), "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / len(rows), 4),
        "macro_f1_argmax": round(macro_f1(gold, argmax), 4),
        "claim_check": {"macro_f1": round(macro_f1(gold, checked), 4),
                        "accuracy": round(sum(g == p for g, p in zip(gold, checked)) / len(rows), 4),
                        "recall": {lab: round(sum(1 for g, p in zip(gold, checked) if g == p == lab)
                                              / max(1, gold.count(lab)), 4) for lab in LABELS},
                        "precision": {lab: round(sum(1 for g, p in zip(gold, checked) if g == p == lab)
                                                 / max(1, checked.count(lab)), 4) for lab in LABELS}},
        "per_label_recall": {lab: round(sum(1 for g, p in zip(gold, pred) if g == p == lab) / max(1, gold.count(lab)), 4)
                             for lab in LABELS},
        "precision": {lab: round(sum(1 for g, p in zip(gold, pred) if g == p == lab) / max(1, pred.count(lab)), 4)
                      for lab in LABELS},
        "accuracy_by_kind": {k: {"n": len(v), "acc": round(sum(v) / len(v), 3)} for k, v in sorted(by_kind.items())},
        "confusion": {f"{g}->{p}": n for (g, p), n in sorted(confusion.items())},
        "load_s": round(load_s, 2), "p50_ms_20_pairs": round(1000 * statistics.median(lat), 1),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"entailment verifier {args.model}: {len(rows)} held-out pairs ({missing} premises unresolved)")
    print(f"macro-F1 {report['macro_f1']:.3f} (argmax {report['macro_f1_argmax']:.3f}), accuracy {report['accuracy']:.3f}"
          f"; thresholds entailed ≥ {te:.2f}, contradicted ≥ {tc:.2f}")
    print("recall  " + ", ".join(f"{k} {v:.3f}" for k, v in report["per_label_recall"].items()))
    print("precis. " + ", ".join(f"{k} {v:.3f}" for k, v in report["precision"].items()))
    for k, v in report["accuracy_by_kind"].items():
        print(f"  {k:32s} n={v['n']:3d} acc {v['acc']:.3f}")
    print("confusion (gold->pred): " + ", ".join(f"{k} {n}" for k, n in report["confusion"].items()))
    cc = report["claim_check"]
    print(f"claim check (model + checked differences): macro-F1 {cc['macro_f1']:.3f}, accuracy {cc['accuracy']:.3f}; "
          + ", ".join(f"{k} recall {cc['recall'][k]:.3f} / precision {cc['precision'][k]:.3f}" for k in LABELS))
    print(f"load {load_s:.1f} s; 20 pairs p50 {report['p50_ms_20_pairs']} ms on 2 threads")


if __name__ == "__main__":
    main()
