"""Decisions from verified evidence, measured on the held-out regulatory cases (evals/data/
regulatory_cases_heldout.jsonl: 40 allow / 40 flag / 40 block, written independently of the packs and of the
verifier's training data). No LLM is called: what the claim check and the key-fact check do not settle is ``flag``
(the ``claims`` system of the eval harness) — so the figures are what the verifier alone achieves, and how many
cases it leaves to the debate.

    python bench/claims_bench.py [--profile offline] [--mode balanced] [--nli bundled:entailment-minilm] [--json]

Prints: false refusals on correct (allow) outputs, block recall, flag-or-block recall on violations, the share of
blocks citing one of the case's gold clauses, the share settled without an LLM and their p50 latency (2 threads),
per query type; with ``--baseline`` the same cases with the claim check off (the cascade as it was) in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

from mad_guardrails.core.units import id_covers
from mad_guardrails.evals.baselines import EvalResources, make_system
from mad_guardrails.evals.loaders import load_set
from mad_guardrails.guardrails.config import load_config

SETTLED = ("fast_allow", "verified_allow", "fast_block")


def run(cfg, cases, mode: str) -> list[dict]:
    res = EvalResources(cfg, need_llm=False)
    try:
        res.warm_up()
        system = make_system("claims", res)
        out = []
        for c in cases:
            t0 = time.perf_counter()
            v = system.g.check(c.output, query=c.query, mode=mode)
            dt = time.perf_counter() - t0
            gold = list(c.meta.get("gold_units") or [])
            cited = [p for viol in v.violations for p in viol.provisions]
            out.append({"id": c.id, "type": c.type, "expected": c.expected, "decision": v.decision, "path": v.path,
                        "seconds": dt, "failure": v.failure,
                        "cites_gold": any(id_covers(g, p) or id_covers(p, g) for g in gold for p in cited),
                        "claims": [x.label for x in v.claims],
                        "readings": [{"label": x.label, "entailed": x.entailed, "contradicted": x.contradicted,
                                      "note": x.note} for x in v.claims]})
        return out
    finally:
        res.close()


def metrics(rows: list[dict]) -> dict:
    def share(xs, pred):
        xs = list(xs)
        return round(sum(1 for x in xs if pred(x)) / len(xs), 3) if xs else None

    allow = [r for r in rows if r["expected"] == "allow"]
    block = [r for r in rows if r["expected"] == "block"]
    viol = [r for r in rows if r["expected"] in ("flag", "block")]
    blocks = [r for r in rows if r["decision"] == "block"]
    settled = [r for r in rows if r["path"] in SETTLED]
    return {
        "n": len(rows),
        "false_refusals": share(allow, lambda r: r["decision"] != "allow"),
        "block_recall": share(block, lambda r: r["decision"] == "block"),
        "flag_or_block_recall": share(viol, lambda r: r["decision"] != "allow"),
        "false_allows_on_violations": share(viol, lambda r: r["decision"] == "allow"),
        "blocks_citing_gold": share(blocks, lambda r: r["cites_gold"]),
        "blocks": len(blocks),
        "settled_without_llm": share(rows, lambda r: r["path"] in SETTLED),
        "p50_ms_settled": round(1000 * statistics.median([r["seconds"] for r in settled]), 1) if settled else None,
        "accuracy": share(rows, lambda r: r["decision"] == r["expected"]),
        "paths": {p: sum(1 for r in rows if r["path"] == p) for p in sorted({r["path"] for r in rows})},
        "failures": sum(1 for r in rows if r["failure"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--set", default="regulatory_cases_heldout")
    ap.add_argument("--mode", default="balanced")
    ap.add_argument("--nli", default="bundled:entailment-minilm", help="verifier.nli_model for the run")
    ap.add_argument("--baseline", action="store_true", help="also run with the claim check off")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    base = load_config(args.profile)
    cases = load_set(args.set)
    runs = {"claims": base.model_copy(update={"verifier": base.verifier.model_copy(
        update={"nli_model": args.nli, "claims": True})})}
    if args.baseline:
        runs = {"cascade (claims off)": base.model_copy(update={"verifier": base.verifier.model_copy(
            update={"claims": False})}), **runs}
    report = {}
    for name, cfg in runs.items():
        rows = run(cfg, cases, args.mode)
        by_type = defaultdict(list)
        for r in rows:
            by_type[r["type"]].append(r)
        report[name] = {"all": metrics(rows), **{t: metrics(v) for t, v in sorted(by_type.items())}, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    cols = ("false_refusals", "block_recall", "flag_or_block_recall", "false_allows_on_violations",
            "blocks_citing_gold", "settled_without_llm", "p50_ms_settled", "accuracy")
    print(f"{args.set}, profile {args.profile}, mode {args.mode}, nli {args.nli}; no LLM call (unsettled = flag)")
    print(f"{'system / type':28s} " + " ".join(f"{c[:14]:>14s}" for c in cols))
    for name, rep in report.items():
        for group, m in rep.items():
            if group == "rows":
                continue
            print(f"{(name if group == 'all' else '  ' + group):28s} "
                  + " ".join(f"{'' if m[c] is None else m[c]:>14}" for c in cols))
        print(f"{'':28s} paths {rep['all']['paths']}, failures {rep['all']['failures']}")


if __name__ == "__main__":
    main()
