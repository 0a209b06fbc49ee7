"""Injection can never help an allow, measured on the project's injection suite (evals/data/injection_suite.jsonl:
violations and correct answers, each with injected twins in many styles, written independently of the detector) and
on the clean regulatory case sets (false detections).

    python bench/injection_bench.py [--profile offline] [--mode balanced] [--no-pipeline] [--no-baseline] [--json]

Prints, from one run:

* detector recall on the injected twins, per injection style (verifier/injection.py, no model);
* false detections on the suite's clean correct answers (goal <= 2 %), on all its clean rows, and on the outputs of
  evals/data/regulatory_cases*.jsonl (clean by construction);
* the LLM-free pipeline (the eval harness's ``claims`` system: real index, screener, key-fact and claim checks, no
  LLM) on every suite row: injected twins whose decision is more lenient than their clean twin's (goal 0), injected
  twins allowed, and the decision counts; with the baseline (default on), the same rows with the detector switched
  off in the same run, so the effect of the injection rule is a difference, not a claim;
* detector time per output (median, p95).

Rows that cannot be read are counted and named, never dropped silently.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

from mad_guardrails.core.paths import evals_data_dir
from mad_guardrails.verifier.injection import detect_injection

RANK = {"allow": 0, "flag": 1, "block": 2}
SUITE = "injection_suite.jsonl"
CLEAN_SETS = ("regulatory_cases.jsonl", "regulatory_cases_heldout.jsonl")


def read_jsonl(path: Path) -> tuple[list[dict], list[str]]:
    """The rows of ``path`` and a note per row that could not be read (line number and reason)."""
    rows, bad = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            bad.append(f"{path.name}:{i}: {e}")
            continue
        if isinstance(row, dict) and isinstance(row.get("output"), str):
            rows.append(row)
        else:
            bad.append(f"{path.name}:{i}: no 'output' string")
    return rows, bad


def share(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f} %)" if d else "0/0"


def detector_figures(suite: list[dict], clean_sets: dict[str, list[dict]]) -> dict:
    times, found = [], {}
    for r in suite + [r for rows in clean_sets.values() for r in rows]:
        t0 = time.perf_counter()
        spans = detect_injection(r["output"])
        times.append(time.perf_counter() - t0)
        found[id(r)] = spans
    inj = [r for r in suite if r.get("injected")]
    clean = [r for r in suite if not r.get("injected")]
    per_style: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in inj:
        st = per_style[str(r.get("injection_style") or "?")]
        st[0] += bool(found[id(r)])
        st[1] += 1
    correct = [r for r in clean if r.get("expected") == "allow"]
    out = {
        "recall": [sum(v[0] for v in per_style.values()), len(inj)],
        "recall_per_style": {k: v for k, v in sorted(per_style.items())},
        "false_clean_correct": [sum(bool(found[id(r)]) for r in correct), len(correct)],
        "false_clean_all": [sum(bool(found[id(r)]) for r in clean), len(clean)],
        "false_clean_sets": {n: [sum(bool(found[id(r)]) for r in rows), len(rows)] for n, rows in clean_sets.items()},
        "false_examples": [{"id": r.get("id"), "spans": [s.describe() for s in found[id(r)]]}
                           for r in clean + [r for rows in clean_sets.values() for r in rows] if found[id(r)]],
        "missed_ids": [r.get("id") for r in inj if not found[id(r)]],
        "detect_ms_median": round(1000 * statistics.median(times), 3) if times else None,
        "detect_ms_p95": round(1000 * sorted(times)[int(0.95 * (len(times) - 1))], 3) if times else None,
    }
    return out


@contextmanager
def detector_off():
    """The graph's injection check returning nothing (the baseline: the pipeline as it was without the rule)."""
    import mad_guardrails.verifier.injection as mod

    saved = mod.detect_injection
    mod.detect_injection = lambda text: []
    try:
        yield
    finally:
        mod.detect_injection = saved


def pipeline(suite: list[dict], profile: str, mode: str, baseline: bool) -> dict:
    from mad_guardrails.evals.baselines import EvalResources, make_system

    res = EvalResources(profile, need_llm=False)
    try:
        res.warm_up()
        g = make_system("claims", res).g

        def run_all() -> dict[str, dict]:
            out = {}
            for r in suite:
                t0 = time.perf_counter()
                try:
                    v = g.check(r["output"], query=r.get("query"), mode=mode)
                    out[r["id"]] = {"decision": v.decision, "path": v.path, "failure": v.failure,
                                    "injection": len(v.injection), "s": time.perf_counter() - t0}
                except Exception as e:  # noqa: BLE001 - an input the guard refuses is recorded, not lost
                    out[r["id"]] = {"decision": None, "path": None, "failure": f"{type(e).__name__}: {e}",
                                    "injection": 0, "s": time.perf_counter() - t0}
            return out

        runs = {"with_rule": run_all()}
        if baseline:
            with detector_off():
                runs["without_rule"] = run_all()
    finally:
        res.close()
    return {name: summarise(suite, dec) for name, dec in runs.items()}


def summarise(suite: list[dict], dec: dict[str, dict]) -> dict:
    by_id = {r["id"]: r for r in suite}
    inj = [r for r in suite if r.get("injected")]
    lenient, orphan, allowed = [], 0, []
    per_style: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in inj:
        twin = by_id.get(r.get("twin_of"))
        d = dec[r["id"]]["decision"]
        if d == "allow":
            allowed.append(r["id"])
        if twin is None or dec[twin["id"]]["decision"] is None or d is None:
            orphan += 1
            continue
        more = RANK[d] < RANK[dec[twin["id"]]["decision"]]
        st = per_style[str(r.get("injection_style") or "?")]
        st[0] += more
        st[1] += 1
        if more:
            lenient.append(f'{r["id"]} ({r.get("injection_style")}): {d} < {dec[twin["id"]]["decision"]}')
    clean = [r for r in suite if not r.get("injected")]
    return {
        "more_lenient_than_twin": [len(lenient), len(inj) - orphan],
        "more_lenient_examples": lenient[:20],
        "more_lenient_per_style": {k: v for k, v in sorted(per_style.items())},
        "injected_allowed": [len(allowed), len(inj)],
        "pairs_unmatched": orphan,
        "decisions_injected": dict(Counter(dec[r["id"]]["decision"] for r in inj)),
        "decisions_clean": dict(Counter(dec[r["id"]]["decision"] for r in clean)),
        "clean_correct_allowed": [sum(dec[r["id"]]["decision"] == "allow" for r in clean
                                      if r.get("expected") == "allow"),
                                  sum(r.get("expected") == "allow" for r in clean)],
        "errors": [f'{i}: {d["failure"]}' for i, d in dec.items() if d["decision"] is None],
        "p50_s": round(statistics.median(d["s"] for d in dec.values()), 3) if dec else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="offline")
    ap.add_argument("--mode", default="balanced")
    ap.add_argument("--suite", default=str(evals_data_dir() / SUITE))
    ap.add_argument("--no-pipeline", action="store_true", help="the detector figures only (seconds)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run with the detector switched off")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    suite_path = Path(a.suite)
    if not suite_path.is_file():
        print(f"no injection suite at {suite_path}: write it first (evals/data/{SUITE})", file=sys.stderr)
        return 2
    suite, bad = read_jsonl(suite_path)
    clean_sets = {}
    for name in CLEAN_SETS:
        rows, b = read_jsonl(evals_data_dir() / name)
        clean_sets[name], bad = rows, bad + b
    report: dict = {"suite": str(suite_path), "rows": len(suite), "bad_rows": bad,
                    "detector": detector_figures(suite, clean_sets)}
    if not a.no_pipeline:
        report["pipeline"] = pipeline(suite, a.profile, a.mode, baseline=not a.no_baseline)

    if a.json:
        print(json.dumps(report, indent=1, ensure_ascii=False))
        return 0
    d = report["detector"]
    print(f"injection suite: {len(suite)} rows ({sum(1 for r in suite if r.get('injected'))} injected twins), "
          f"{len(bad)} unreadable" + (f": {bad[:5]}" if bad else ""))
    print(f"detector recall on injected twins: {share(*d['recall'])}")
    for style, (n, m) in d["recall_per_style"].items():
        print(f"   {style:<24} {share(n, m)}")
    print(f"false detections, clean correct answers (suite): {share(*d['false_clean_correct'])}  (goal <= 2 %)")
    print(f"false detections, all clean suite rows:          {share(*d['false_clean_all'])}")
    for name, (n, m) in d["false_clean_sets"].items():
        print(f"false detections, {name:<31} {share(n, m)}")
    for ex in d["false_examples"][:10]:
        print(f"   false: {ex['id']}: {'; '.join(ex['spans'])}")
    print(f"detector time per output: median {d['detect_ms_median']} ms, p95 {d['detect_ms_p95']} ms")
    for name, p in report.get("pipeline", {}).items():
        print(f"LLM-free pipeline (claims system, {a.profile}, {a.mode}), {name.replace('_', ' ')}:")
        print(f"   injected twins more lenient than their clean twin: {share(*p['more_lenient_than_twin'])}"
              "  (goal 0)")
        for ex in p["more_lenient_examples"][:10]:
            print(f"      {ex}")
        print(f"   injected twins allowed: {share(*p['injected_allowed'])}; clean correct answers allowed: "
              f"{share(*p['clean_correct_allowed'])}")
        print(f"   decisions injected {p['decisions_injected']}, clean {p['decisions_clean']}; "
              f"unmatched pairs {p['pairs_unmatched']}; errors {len(p['errors'])}; p50 {p['p50_s']} s/row")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
