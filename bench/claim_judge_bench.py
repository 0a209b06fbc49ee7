"""Would a small LLM, asked one narrow question per claim, settle the claims the entailment model leaves open?

The question put to the LLM: "does this clause support, contradict or not settle this statement?"; its answer is read
as the log-odds of the first token of *supported* against the better of *contradicted* / *neither* (one prefill, no
generation: ~0.6 s a pair for Qwen2.5-1.5B Q4_K_M on 2 cores). Two measurements, in one run:

1. **Pairs.** The 216 independent (clause sentence, claim) pairs of ``evals/data/entailment_paraphrases.jsonl`` (the
   test) and ``--dev N`` hand-written dev claims of the entailment trainer's data (calibration only): AUC of entailed
   vs the rest, for the LLM and for the shipped entailment model, and the entailed recall / precision of each
   operating point.
2. **Decisions.** The ``claims`` system (no debate) on ``--sets``; every regulatory claim it leaves ``neutral`` is put
   to the LLM against its best support sentence, and a case whose every open claim the LLM reads as supported at
   log-odds ≥ t is counted as allowed. Printed per set and t: false refusals and false allows.

    python bench/claim_judge_bench.py [--dev 300] [--data .cache/entail/data-s5] [--sets regulatory_cases ...]

Needs the GGUF (``mad-guardrails models fetch qwen2.5-1.5b``) and ``ik-llama-cpp-python``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from entailment_bench import resolve_premises  # noqa: E402

SYSTEM = ("You check statements against the text of a law. Read the clause and the statement. Answer 'supported' if "
          "the clause states what the statement says (in other words is fine), 'contradicted' if the clause says "
          "something incompatible with the statement (another figure, deadline, actor, or the opposite obligation), "
          "'neither' if the clause does not settle the statement.")
WORDS = ("supported", "contradicted", "neither")


class FirstToken:
    """The first-token logits of a llama.cpp model for a few answer words (one prefill per prompt, no generation)."""

    def __init__(self, spec: str = "fetched:qwen2.5-1.5b", words: tuple[str, ...] = WORDS, threads: int = 2):
        from mad_guardrails.agents.backends.llamacpp import IkEngine, resolve_gguf

        self.eng = IkEngine(resolve_gguf(spec), n_ctx=2048, n_threads=threads)
        pieces = self.eng.pieces()
        self.first = [max((i for i, p in enumerate(pieces) if len(p) >= 2 and w.encode().startswith(p)),
                          key=lambda i: len(pieces[i])) for w in words]

    def logits(self, messages: list[dict]) -> np.ndarray:
        """The logit of each word's first token after the chat ``messages``, in the order of ``words``."""
        self.eng._prefill(self.eng.prompt_tokens(messages), None)
        ptr = self.eng.C.llama_get_logits_ith(self.eng.ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.eng.n_vocab,)).astype(np.float64)[self.first]

    def log_odds(self, unit: str, sentence: str, claim: str) -> float:
        """Log-odds of *supported* against the better of *contradicted* / *neither* for one (clause, claim) pair."""
        z = self.logits([{"role": "system", "content": SYSTEM}, {"role": "user", "content": (
            f"Clause ({unit}):\n{sentence}\n\nStatement:\n{claim}\n\nAnswer with one word.")}])
        return float(z[0] - max(z[1], z[2]))


def auc(pos: list[float], neg: list[float]) -> float:
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / max(1, len(pos) * len(neg))


def pairs(judge: FirstToken, dev_n: int, data: Path) -> None:
    from mad_guardrails.core.paths import evals_data_dir, shared_corpus
    from mad_guardrails.retrieval.corpus import load_corpus
    from mad_guardrails.verifier.domain_nli import DomainNLI

    rows = [json.loads(x) for x in (evals_data_dir() / "entailment_paraphrases.jsonl").read_text().splitlines()
            if x.strip()]
    rows, _ = resolve_premises(rows, load_corpus(shared_corpus()))
    test = [dict(set="test", premise=r["premise"], hypothesis=r["hypothesis"], label=r["label"],
                 key=f"{r['doc']}:{r['unit']}") for r in rows]
    dev = [json.loads(x) for x in gzip.open(data / "dev.jsonl.gz", "rt")]
    dev = [r for r in dev if r["source"].startswith("hand")]
    random.Random(1).shuffle(dev)
    dev = [dict(set="dev", premise=r["premise"], hypothesis=r["hypothesis"], label=r["label"], key=r.get("key", ""))
           for r in dev[:dev_n]]
    nli = DomainNLI.load("bundled:entailment-minilm")
    allr = test + dev
    for r, p in zip(allr, nli.predict([(r["premise"], r["hypothesis"]) for r in allr])):
        r["m"] = p["entailed"]
        r["q"] = judge.log_odds(r["key"], r["premise"], r["hypothesis"])
    for s in ("dev", "test"):
        R = [r for r in allr if r["set"] == s]
        for name, key in (("entailment model P(entailed)", "m"), ("LLM log-odds", "q")):
            print(f"{s:4s} {len(R):3d} pairs  {name:28s} AUC entailed vs rest "
                  f"{auc([r[key] for r in R if r['label'] == 'entailed'], [r[key] for r in R if r['label'] != 'entailed']):.3f}")
        ne = sum(r["label"] == "entailed" for r in R)
        for name, f in [("model >= 0.97 (shipped)", lambda r: r["m"] >= 0.97)] + [
                (f"LLM >= {t}", lambda r, t=t: r["q"] >= t) for t in (3, 4, 5, 6)] + [
                (f"model >= 0.97 or LLM >= {t}", lambda r, t=t: r["m"] >= 0.97 or r["q"] >= t) for t in (4, 5)]:
            tp = sum(f(r) and r["label"] == "entailed" for r in R)
            fp = sum(f(r) and r["label"] != "entailed" for r in R)
            print(f"      {name:30s} entailed recall {tp / max(1, ne):.3f} precision {tp / max(1, tp + fp):.3f}")


def decisions(judge: FirstToken, sets: list[str]) -> None:
    from mad_guardrails.evals.baselines import EvalResources, make_system
    from mad_guardrails.evals.loaders import load_set
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.verifier.claim_signals import without_answer_lead

    res = EvalResources(load_config("offline"), need_llm=False)
    res.warm_up()
    system = make_system("claims", res)
    try:
        for name in sets:
            rows = []
            for c in load_set(name):
                v = system.g.check(c.output, query=c.query, mode="balanced")
                open_ = [x for x in v.claims if x.claim.regulatory and x.label != "entailed"]
                lo = [judge.log_odds(x.support.doc_id, x.support.text, without_answer_lead(x.claim.stated))
                      if x.label == "neutral" and not x.note and x.support else -math.inf for x in open_]
                rows.append((c.expected, v.decision, v.path, min(lo, default=-math.inf), bool(v.claims)))
            for t in (math.inf, 6, 5, 4.5, 4, 3.5, 3):
                dec = [("allow" if d != "allow" and p == "debate" and has and lo >= t else d)
                       for _, d, p, lo, has in rows]
                allow = [d for (e, *_), d in zip(rows, dec) if e == "allow"]
                viol = [d for (e, *_), d in zip(rows, dec) if e != "allow"]
                print(f"{name:26s} t={t:<4} false refusals {sum(d != 'allow' for d in allow) / len(allow):.3f}  "
                      f"false allows {sum(d == 'allow' for d in viol)}/{len(viol)}")
    finally:
        res.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", default="fetched:qwen2.5-1.5b")
    ap.add_argument("--dev", type=int, default=300)
    ap.add_argument("--data", type=Path, default=Path(".cache/entail/data-s5"), help="entailment data (bench/gpu/entailment/data.py --out)")
    ap.add_argument("--sets", nargs="*", default=["regulatory_cases", "regulatory_cases_heldout", "regulatory_cases_fresh"])
    args = ap.parse_args()
    t0 = time.perf_counter()
    judge = FirstToken(args.llm)
    pairs(judge, args.dev, args.data)
    decisions(judge, args.sets)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
