"""Screening recall of the policy rules: does the right rule appear in the screener's top 1 / 3 / 5?

Data: JSONL rows ``{"id", "output", "query"?, "type", "gold_rules": [rule ids], "expected"}`` (default
``evals/data/policy_screening.jsonl``). Rows with empty ``gold_rules`` (off-topic outputs) do not count for recall;
their top-1 score is reported to show how far the screener stays from the fast-path threshold.

Metrics per mode (``hybrid`` = embedding + keywords, ``dense`` = embedding only, ``keyword`` = triggers/facts/refs
only), overall and per query type:

* ``recall@k`` — mean over rows of |gold ∩ top-k| / |gold|;
* ``hit@k`` — share of rows with at least one gold rule in the top k;
* ``mrr`` — mean reciprocal rank of the first gold rule (0 when absent from the ranking).

Run::

    python -m mad_guardrails.evals.policy_screening                 # rich table on stdout
    python -m mad_guardrails.evals.policy_screening --json          # machine-readable
    python -m mad_guardrails.evals.policy_screening --data evals/data/regulatory_cases.jsonl --misses
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mad_guardrails.core.paths import package_dir

DEFAULT_DATA = package_dir("mad_guardrails.evals") / "data" / "policy_screening.jsonl"
MODES = ("hybrid", "dense", "keyword")
KS = (1, 3, 5)
TYPES = ("benign_sensitive", "ambiguous", "adversarial")


def load_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in paths:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{p}:{n}: not valid JSON ({e.msg}). Fix: one JSON object per line") from e
            for key in ("id", "output", "type", "gold_rules"):
                if key not in r:
                    raise SystemExit(f"{p}:{n}: row lacks '{key}'. Fix: add it (see {__name__} docstring)")
            r["_src"] = p.name
            rows.append(r)
    return rows


def evaluate(rows: list[dict[str, Any]], screener, modes=MODES, ks=KS, progress: bool = True) -> dict[str, Any]:
    """Rank every row in each mode and compute the metrics (see the module docstring)."""
    from mad_guardrails.core.progress import make_progress

    known = {r.id for r in screener.policy_set.rules}
    unknown = sorted({g for r in rows for g in r["gold_rules"] if g not in known})
    if unknown:
        raise SystemExit(f"gold rule ids not in the policy set: {unknown}. Fix: correct the data or load their packs")
    result: dict[str, Any] = {"modes": {}, "n": sum(1 for r in rows if r["gold_rules"]),
                              "n_offtopic": sum(1 for r in rows if not r["gold_rules"]), "rules": len(known)}
    kmax = max(ks)
    with make_progress(disable=not progress) as prog:
        for mode in modes:
            task = prog.add_task(f"screening ({mode})", total=len(rows))
            per_row = []
            t0 = time.perf_counter()
            for r in rows:
                ranked = screener.score_all(r["output"], r.get("query"), mode=mode)
                ids = [h.rule.id for h in ranked]
                gold = r["gold_rules"]
                first = next((i + 1 for i, x in enumerate(ids) if x in gold), None)
                per_row.append({
                    "id": r["id"], "type": r["type"], "gold": gold, "top": ids[:kmax],
                    "top_scores": [round(h.score, 3) for h in ranked[:kmax]], "rank": first,
                    "recall": {k: (len(set(gold) & set(ids[:k])) / len(gold)) if gold else None for k in ks},
                })
                prog.advance(task)
            secs = time.perf_counter() - t0
            result["modes"][mode] = {"rows": per_row, "summary": _summarise(per_row, ks),
                                     "ms_per_output": round(1000 * secs / max(1, len(rows)), 1)}
    return result


def _summarise(per_row: list[dict[str, Any]], ks) -> dict[str, Any]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    off: list[float] = []
    for pr in per_row:
        if not pr["gold"]:
            off.append(pr["top_scores"][0] if pr["top_scores"] else 0.0)
            continue
        groups["overall"].append(pr)
        groups[pr["type"]].append(pr)
    out: dict[str, Any] = {}
    for g, items in groups.items():
        n = len(items)
        m: dict[str, Any] = {"n": n}
        for k in ks:
            m[f"recall@{k}"] = round(sum(x["recall"][k] for x in items) / n, 3)
            m[f"hit@{k}"] = round(sum(1 for x in items if x["rank"] and x["rank"] <= k) / n, 3)
        m["mrr"] = round(sum(1.0 / x["rank"] for x in items if x["rank"]) / n, 3)
        gold_top1 = [x["top_scores"][0] for x in items if x["top_scores"]]
        m["top1_score_mean"] = round(sum(gold_top1) / len(gold_top1), 3) if gold_top1 else None
        out[g] = m
    if off:
        out["offtopic"] = {"n": len(off), "top1_score_mean": round(sum(off) / len(off), 3),
                           "top1_score_max": round(max(off), 3)}
    return out


def print_table(res: dict[str, Any], ks=KS, misses: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console()
    t = Table(title=f"Policy screening — {res['n']} labelled outputs, {res['rules']} rules "
                    f"(+{res['n_offtopic']} off-topic)")
    t.add_column("mode")
    t.add_column("group")
    t.add_column("n", justify="right")
    for k in ks:
        t.add_column(f"R@{k}", justify="right")
    t.add_column("hit@3", justify="right")
    t.add_column("MRR", justify="right")
    t.add_column("ms/out", justify="right")
    for mode, data in res["modes"].items():
        s = data["summary"]
        for g in ("overall", *TYPES):
            if g not in s:
                continue
            m = s[g]
            t.add_row(mode if g == "overall" else "", g, str(m["n"]), *[f"{m[f'recall@{k}']:.3f}" for k in ks],
                      f"{m['hit@3']:.3f}", f"{m['mrr']:.3f}", str(data["ms_per_output"]) if g == "overall" else "")
        if "offtopic" in s:
            o = s["offtopic"]
            t.add_row("", f"off-topic top-1 score mean {o['top1_score_mean']:.2f} / max {o['top1_score_max']:.2f}",
                      str(o["n"]), *[""] * (len(ks) + 3))
        t.add_section()
    c.print(t)
    if misses:
        for mode, data in res["modes"].items():
            c.print(f"[bold]{mode}: gold rule not in top 3[/]")
            for pr in data["rows"]:
                if pr["gold"] and not (pr["rank"] and pr["rank"] <= 3):
                    c.print(f"  {pr['id']} ({pr['type']}): gold {pr['gold']} rank {pr['rank']}; top {pr['top'][:3]}",
                            markup=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append", help="JSONL file(s); default: " + str(DEFAULT_DATA))
    ap.add_argument("--packs", action="append", help="policy sources (default: builtin)")
    ap.add_argument("--embedder", default=None, help="embedder model spec (default: the offline profile's)")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated: hybrid,dense,keyword")
    ap.add_argument("--json", action="store_true", help="print the metrics as JSON (per-row ranks included)")
    ap.add_argument("--misses", action="store_true", help="list rows whose gold rule is not in the top 3")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 is much faster than the default on an oversubscribed machine)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from mad_guardrails.policies.loader import load_packs
    from mad_guardrails.policies.screen import PolicyScreener

    rows = load_rows(args.data or [DEFAULT_DATA])
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise SystemExit(f"unknown mode(s) {bad}. Fix: use {list(MODES)}")
    ps = load_packs(args.packs or ["builtin"])
    embedder = None
    if any(m != "keyword" for m in modes):
        from mad_guardrails.retrieval.config import EmbedderConfig
        from mad_guardrails.retrieval.embedder import Embedder

        cfg = EmbedderConfig(model=args.embedder) if args.embedder else EmbedderConfig()
        embedder = Embedder.from_config(cfg)
    screener = PolicyScreener(ps, embedder)
    screener.warm()
    res = evaluate(rows, screener, modes=modes, progress=sys.stderr.isatty() or not args.json)
    res["data"] = [str(p) for p in (args.data or [DEFAULT_DATA])]
    res["embedder"] = getattr(embedder, "model_id", None)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res, misses=args.misses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
