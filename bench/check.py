"""Latency of ``Guardrail.check`` on a profile (default: offline), per path, and ``check_many`` vs sequential.

    python bench/check.py [--profile offline] [--n 24] [--concurrency 4]

Prints p50/p95 latency per path (fast_allow, fast_block, debate, failure), LLM calls per verdict, and the
throughput ratio of ``check_many(concurrency=N)`` over a sequential loop on the same items, measured in this run.
Targets (issue 4): fast path p50 <= 100 ms; full debate p50 <= 10 s; check_many faster than sequential.
Needs an index (`mad-guardrails index build`); the offline profile starts its own vLLM server.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict

ITEMS = [
    # fast allow: nothing regulatory, nothing risky
    ("Preheat the oven to 200 degrees and roast the vegetables for 35 minutes.", None),
    ("The marathon route goes along the river and finishes at the old town square.", None),
    ("To reverse a list in Python use reversed() or slicing with [::-1].", None),
    ("Our team offsite is on Friday; bring comfortable shoes for the hike.", None),
    # fast block: a contradicted key fact
    ("Under NIS2 an essential entity must send the early warning within 72 hours of becoming aware of a "
     "significant incident.", "When is the NIS2 early warning due?"),
    ("GDPR gives the controller 7 days to notify the supervisory authority of a personal data breach.",
     "How long do we have to report a data breach under GDPR?"),
    # debate: regulatory content that needs judgement
    ("You can deploy emotion recognition to monitor your employees' mood at work; the AI Act has no rules on it.",
     "Can we use emotion recognition on staff?"),
    ("A credit-scoring model is a high-risk AI system under Annex III, so the provider needs a risk management "
     "system and technical documentation before placing it on the market.", "Is credit scoring high-risk?"),
]


def pct(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, round(q / 100 * (len(xs) - 1))))
    return xs[k]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--n", type=int, default=16, help="items per pass (cycled from the built-in list)")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from mad_guardrails.guardrails.guardrail import Guardrail

    t0 = time.perf_counter()
    g = Guardrail.from_config(args.profile)
    load_s = time.perf_counter() - t0
    items = [ITEMS[i % len(ITEMS)] for i in range(args.n)]
    g.check(items[0][0], query=items[0][1])  # warm-up (embedder, server prefix cache)

    by_path: dict[str, list[float]] = defaultdict(list)
    calls: dict[str, list[int]] = defaultdict(list)
    t0 = time.perf_counter()
    for out, q in items:
        s = time.perf_counter()
        v = g.check(out, query=q)
        by_path[v.path].append(time.perf_counter() - s)
        calls[v.path].append(v.usage.llm_calls)
    seq_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = list(g.check_many([{"output": o, "query": q} for o, q in items], concurrency=args.concurrency))
    par_s = time.perf_counter() - t0
    g.close()

    rows = {p: {"n": len(xs), "p50_ms": 1000 * statistics.median(xs), "p95_ms": 1000 * pct(xs, 95),
                "llm_calls_per_verdict": statistics.mean(calls[p])} for p, xs in sorted(by_path.items())}
    summary = {"profile": args.profile, "guardrail_load_s": round(load_s, 2), "paths": rows,
               "sequential_s": round(seq_s, 2), "check_many_s": round(par_s, 2),
               "check_many_speedup": round(seq_s / par_s, 2) if par_s else None, "concurrency": args.concurrency,
               "check_many_decisions": [getattr(v, "decision", "error") for v in res]}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Guardrail.check latency — profile {args.profile}, {args.n} items")
    for c in ("path", "n", "p50 ms", "p95 ms", "LLM calls / verdict"):
        t.add_column(c, justify="right" if c != "path" else "left")
    for p, r in rows.items():
        t.add_row(p, str(r["n"]), f"{r['p50_ms']:.0f}", f"{r['p95_ms']:.0f}", f"{r['llm_calls_per_verdict']:.1f}")
    Console().print(t)
    print(f"load {load_s:.1f} s | sequential {seq_s:.1f} s | check_many(concurrency={args.concurrency}) {par_s:.1f} s"
          f" | speed-up x{summary['check_many_speedup']}")


if __name__ == "__main__":
    main()
