#!/usr/bin/env python3
"""Train, calibrate and measure the claim probe (:mod:`mad_guardrails.verifier.probe_nli`): a logistic probe on
Qwen2.5-1.5B-Instruct's last-token hidden state of the ``claim_probe`` prompt over (clause sentence, claim).

* **train**: ``--train-clauses N`` clauses of the entailment trainer's TRAIN split with every hand-written claim on
  them and their variants (changed numbers, swapped actors, negations), plus ``--train-xpair N`` hand claims paired
  with another clause (neutral);
* **dev**: ``--dev-per-clause N`` claims on each DEV clause plus ``--dev-xpair N``; the thresholds are chosen here
  (P(entailed) and P(contradicted) each at precision ``--precision``, as ``bench/gpu/entailment/evaluate.py``
  calibrates the cross-encoder);
* **test**: the 216 independent pairs of ``evals/data/entailment_paraphrases.jsonl`` (test-split articles, written by
  nobody who wrote the training claims), read once; the shipped cross-encoder is scored on the same pairs.

    python bench/gpu/entailment/data.py --out .cache/entail/data12     # 14 s, CPU
    mad-guardrails models fetch qwen2.5-1.5b && pip install ik-llama-cpp-python==0.1.5
    GUARDRAILS_HOME=.cache/home python bench/claim_probe_bench.py --data .cache/entail/data12 \
        --feats .cache/claim-probe [--save verifier/adapters/claim-probe-qwen2.5-1.5b]

Hidden states are cached per split in ``--feats`` (``train.npz``, ``dev.npz``, ``test.npz``; ``--only SPLIT`` reads
one split and stops). ≈ 0.5 s a pair on 2 cores when pairs share their clause (the prompt prefix is reused), ≈ 1.5 s
otherwise.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from claim_judge_bench import auc  # noqa: E402
from entailment_bench import macro_f1, resolve_premises  # noqa: E402
from llm_states import cached  # noqa: E402

from mad_guardrails.verifier.probe_nli import LABELS  # noqa: E402

SAME_CLAUSE = ("hand", "hand_num", "hand_actor", "hand_neg")


def bar_for_precision(scores: list[float], gold: list[str], label: str, target: float) -> float:
    """The lowest threshold on P(label) whose precision for ``label`` on these rows reaches ``target``."""
    for t in sorted(set(scores)):
        picked = [g for s, g in zip(scores, gold) if s >= t]
        if picked and sum(g == label for g in picked) / len(picked) >= target:
            return t
    return 1.01


def pick(rows: list[dict], clauses: int | None, per_clause: int | None, xpair: int, rng: random.Random) -> list[dict]:
    """Rows on ``clauses`` sampled clauses (all of them when None), at most ``per_clause`` each, plus ``xpair``
    cross-paired neutrals; ordered by clause so the prompt prefix is shared."""
    by_clause: dict[str, list[dict]] = {}
    for r in rows:
        if r["source"] in SAME_CLAUSE:
            by_clause.setdefault(r["premise"], []).append(r)
    keys = sorted(by_clause)
    keys = rng.sample(keys, clauses) if clauses is not None and clauses < len(keys) else keys
    out = []
    for k in keys:
        group = by_clause[k]
        out += rng.sample(group, per_clause) if per_clause is not None and per_clause < len(group) else group
    xp = [r for r in rows if r["source"] == "hand_xpair"]
    out += rng.sample(xp, min(xpair, len(xp)))
    return sorted(out, key=lambda r: r["premise"])


def features(path: Path | None, rows: list[dict], engine_fn, what: str) -> np.ndarray:
    """The hidden states the shipped reader computes (:func:`~mad_guardrails.verifier.probe_nli.hidden_states`),
    kept in ``path``."""
    from rich.progress import Progress

    from mad_guardrails.verifier.probe_nli import hidden_states

    def compute() -> np.ndarray:
        with Progress() as bar:
            task = bar.add_task(what, total=len(rows))
            return hidden_states(engine_fn(), [(r["premise"], r["hypothesis"]) for r in rows],
                                 progress=lambda n: bar.advance(task, n))

    return cached(path, compute, rows=len(rows))


def report(name: str, probs: list[dict], gold: list[str], bars: tuple[float, float]) -> dict:
    e = [p["entailed"] for p in probs]
    c = [p["contradicted"] for p in probs]
    pred = [max(p, key=p.get) for p in probs]
    out = {"auc_entailed": auc([s for s, g in zip(e, gold) if g == "entailed"],
                               [s for s, g in zip(e, gold) if g != "entailed"]),
           "macro_f1_argmax": macro_f1(gold, pred)}
    for lab, s, bar in (("entailed", e, bars[0]), ("contradicted", c, bars[1])):
        tp = sum(x >= bar and g == lab for x, g in zip(s, gold))
        fp = sum(x >= bar and g != lab for x, g in zip(s, gold))
        out[f"{lab}_recall"] = tp / max(1, sum(g == lab for g in gold))
        out[f"{lab}_precision"] = tp / max(1, tp + fp)
    print(f"{name:30s} AUC {out['auc_entailed']:.3f}  argmax macro-F1 {out['macro_f1_argmax']:.3f}  at the dev bars "
          f"({bars[0]:.3f} / {bars[1]:.3f}): entailed recall {out['entailed_recall']:.3f} precision "
          f"{out['entailed_precision']:.3f}; contradicted recall {out['contradicted_recall']:.3f} precision "
          f"{out['contradicted_precision']:.3f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="bench/gpu/entailment/data.py output folder")
    ap.add_argument("--feats", type=Path, default=None, help="folder caching the hidden states per split")
    ap.add_argument("--train-clauses", type=int, default=150)
    ap.add_argument("--train-xpair", type=int, default=500)
    ap.add_argument("--dev-per-clause", type=int, default=8)
    ap.add_argument("--dev-xpair", type=int, default=150)
    ap.add_argument("--precision", type=float, default=0.95)
    ap.add_argument("--C", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03],
                    help="inverse L2 strengths tried; dev picks one")
    ap.add_argument("--llm", default="fetched:qwen2.5-1.5b")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("train", "dev", "test"), help="read this split's hidden states and stop")
    ap.add_argument("--save", type=Path, default=None, help="write probe.npz + config.json here")
    args = ap.parse_args()

    from mad_guardrails.core.paths import evals_data_dir, shared_corpus
    from mad_guardrails.retrieval.corpus import load_corpus

    rng = random.Random(0)
    train = pick([json.loads(x) for x in gzip.open(args.data / "train.jsonl.gz", "rt")], args.train_clauses, None,
                 args.train_xpair, rng)
    dev = pick([json.loads(x) for x in gzip.open(args.data / "dev.jsonl.gz", "rt")], None, args.dev_per_clause,
               args.dev_xpair, rng)
    test = [json.loads(x) for x in (evals_data_dir() / "entailment_paraphrases.jsonl").read_text().splitlines()
            if x.strip()]
    test, _ = resolve_premises(test, load_corpus(shared_corpus()))
    test = sorted(test, key=lambda r: r["premise"])
    splits = {"train": train, "dev": dev, "test": test}

    engine = None

    def engine_fn():
        nonlocal engine
        if engine is None:
            from mad_guardrails.agents.backends.llamacpp import IkEngine, resolve_gguf

            engine = IkEngine(resolve_gguf(args.llm), n_ctx=1024, n_threads=args.threads, hidden_states=True)
        return engine

    t0 = time.perf_counter()
    order = [args.only] if args.only else ["test", "dev", "train"]
    try:
        X = {s: features(args.feats / f"{s}.npz" if args.feats else None, splits[s], engine_fn,
                         f"{s} hidden states") for s in order}
    finally:
        if engine is not None:
            engine.close()
    secs = time.perf_counter() - t0
    if args.only:
        print(f"{args.only}: {len(splits[args.only])} pairs, {secs:.0f} s")
        return

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mad_guardrails.verifier.domain_nli import DomainNLI
    from mad_guardrails.verifier.probe_nli import LinearProbe

    y = np.array([LABELS.index(r["label"]) for r in train])
    scaler = StandardScaler().fit(X["train"])
    gold = {s: [r["label"] for r in splits[s]] for s in splits}

    def fit(c: float) -> LinearProbe:
        lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(scaler.transform(X["train"]), y)
        return LinearProbe(scaler.mean_, scaler.scale_, lr.coef_, lr.intercept_)

    def at_bar(probe: LinearProbe) -> tuple[float, float]:
        """Entailed recall on dev at the dev bar of ``--precision``, then dev macro-F1 (the choice of C)."""
        P = probe.probabilities(X["dev"].astype(np.float64))
        e = P[:, 0].tolist()
        bar = bar_for_precision(e, gold["dev"], "entailed", args.precision)
        hits = sum(x >= bar and g == "entailed" for x, g in zip(e, gold["dev"]))
        return hits / max(1, gold["dev"].count("entailed")), macro_f1(gold["dev"], [LABELS[i] for i in P.argmax(1)])

    grid = {c: fit(c) for c in args.C}
    scores = {c: at_bar(p) for c, p in grid.items()}
    print("C on dev (entailed recall at the precision bar, macro-F1): "
          + ", ".join(f"{c}: {r:.3f} / {f:.3f}" for c, (r, f) in scores.items()))
    best_c = max(scores, key=scores.get)
    probe = grid[best_c]
    as_dicts = {s: [dict(zip(LABELS, map(float, p))) for p in probe.probabilities(X[s].astype(np.float64))]
                for s in X}
    nli = DomainNLI.load("bundled:entailment-minilm")
    ce = {s: nli.predict([(r["premise"], r["hypothesis"]) for r in splits[s]]) for s in ("dev", "test")}
    print(f"train {len(train)} pairs on {len({r['premise'] for r in train})} clauses, dev {len(dev)}, test "
          f"{len(test)} independent pairs; hidden states read in {secs:.0f} s")

    def bars(probs, g):
        return (bar_for_precision([p["entailed"] for p in probs], g, "entailed", args.precision),
                bar_for_precision([p["contradicted"] for p in probs], g, "contradicted", args.precision))

    results, dev_bars = {}, {}
    for name, probs in (("cross-encoder (shipped)", ce), ("LLM hidden-state probe", as_dicts)):
        b = dev_bars[name] = bars(probs["dev"], gold["dev"])
        report(f"{name}, dev", probs["dev"], gold["dev"], b)
        results[name] = report(f"{name}, test", probs["test"], gold["test"], b)
    if args.save:
        b = dev_bars["LLM hidden-state probe"]
        args.save.mkdir(parents=True, exist_ok=True)
        probe.save(args.save / "probe.npz")
        from mad_guardrails.prompts import prompt_version

        cfg = {"labels": list(LABELS), "llm": args.llm, "prompt": "claim_probe",
               "prompt_version": prompt_version("claim_probe"), "n_ctx": 1024, "dim": int(X["train"].shape[1]),
               "first_reader": "bundled:entailment-minilm", "per_claim": 3,
               "thresholds": {"tau_entail": round(b[0], 4), "tau_contra": round(b[1], 4),
                              "calibrated_on": f"{len(dev)} dev pairs, precision {args.precision}"},
               "trained_on": {"pairs": len(train), "clauses": len({r["premise"] for r in train}),
                              "data": "bench/gpu/entailment/data.py (hand-written claims, train articles)",
                              "C": best_c},
               "test": {k: round(v, 4) for k, v in results["LLM hidden-state probe"].items()},
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        (args.save / "config.json").write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
        print(f"saved the probe in {args.save}")


if __name__ == "__main__":
    main()
