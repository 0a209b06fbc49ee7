"""The quality ladder (issue 12, item 5): what model size the debate needs to add value over the claim verifier.

Five rungs on the SAME 12 held-out cases (``regulatory_cases_heldout``: 4 allow / 4 flag / 4 block, 4 per query
type, fixed by id in :data:`CASE_IDS`), offline profile, mode ``balanced``:

* ``A`` — SmolLM2-135M debate alone: profile ``offline`` with ``verifier.claims`` off (the key-fact check, the harm
  screen and the fast paths stay as shipped), system ``mad``;
* ``B`` — Qwen2.5-Coder-1.5B debate alone: profile ``offline`` with the ``llm``, ``debate`` and ``timeout_s`` of
  ``offline-qwen`` (so retrieval, verifier and harm screen are the same as A's), ``verifier.claims`` off, system ``mad``;
* ``C`` — claim verification alone, no LLM: profile ``offline``, system ``claims`` (unsettled → ``flag``);
* ``D`` — claim check + SmolLM2 debate: profile ``offline``, system ``mad`` (as shipped);
* ``E`` — claim check + Qwen2.5-1.5B debate: as B with ``verifier.claims`` on, system ``mad``.

Each rung runs through the eval harness's systems (:func:`mad_guardrails.evals.baselines.make_system`), one case at a
time, and appends each case's :class:`~mad_guardrails.evals.metrics.CaseRecord` to ``.cache/ladder/<rung>.jsonl`` as
soon as it is done, so a rung resumes where it stopped (``--fresh`` starts it again). Run one rung per process
(the Qwen model and the vLLM server are not held together):

    export GUARDRAILS_HOME=$PWD/.cache/home
    .venv/bin/pip install ik-llama-cpp-python==0.1.5        # rungs B and E (the prebuilt llama.cpp binding)
    for r in B E A D C; do flock /tmp/madg-heavy.lock .venv/bin/python -P bench/ladder.py --rung $r; done
    .venv/bin/python -P bench/ladder.py --table               # the table from the cached records

Per rung: decision accuracy (3-way), false refusals on the allow cases, block recall, flag-or-block recall on the
violations, p50 seconds per case, LLM calls and prompt / completion tokens per case, the verdict paths, and the
sha256 (first 12) of the entailment adapter each record was made with.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "ladder"
SET = "regulatory_cases_heldout"
ADAPTER = ROOT / "verifier" / "adapters" / "entailment-minilm" / "adapter_model.safetensors"

#: rung -> (profile, claim check on, eval system, label)
RUNGS: dict[str, tuple[str, bool, str, str]] = {
    "A": ("offline", False, "mad", "SmolLM2-135M debate alone"),
    "B": ("offline-qwen", False, "mad", "Qwen2.5-1.5B debate alone"),
    "C": ("offline", True, "claims", "claim verification alone (no LLM)"),
    "D": ("offline", True, "mad", "claim check + SmolLM2-135M debate"),
    "E": ("offline-qwen", True, "mad", "claim check + Qwen2.5-1.5B debate"),
}

#: the 12 cases, fixed: :func:`pick_cases` (seed 0) on the 120-case set of 2026-12-06 gave these; ordered allow,
#: flag, block, allow, ... so that a rung stopped early is still balanced by label
CASE_IDS: tuple[str, ...] = (
    "regulatory_cases_heldout:h076",
    "regulatory_cases_heldout:h021",
    "regulatory_cases_heldout:h015",
    "regulatory_cases_heldout:h093",
    "regulatory_cases_heldout:h054",
    "regulatory_cases_heldout:h088",
    "regulatory_cases_heldout:h003",
    "regulatory_cases_heldout:h053",
    "regulatory_cases_heldout:h074",
    "regulatory_cases_heldout:h106",
    "regulatory_cases_heldout:h097",
    "regulatory_cases_heldout:h118",
)

LABELS = ("allow", "flag", "block")


def pick_cases(cases, seed: int = 0) -> list:
    """One case per (expected label, query type) cell, then a 4th per label from a different type each (allow →
    1st type, flag → 2nd, block → 3rd): 4 / 4 / 4 by label and 4 / 4 / 4 by type."""
    from mad_guardrails.evals.loaders import QUERY_TYPES

    rng = random.Random(seed)
    out = []
    for i, label in enumerate(LABELS):
        for j, qtype in enumerate(QUERY_TYPES):
            pool = sorted((c for c in cases if c.expected == label and c.type == qtype), key=lambda c: c.id)
            rng.shuffle(pool)
            out += pool[: 2 if i == j else 1]
    return out


def ladder_cases() -> list:
    from mad_guardrails.evals.loaders import load_set

    cases = load_set(SET)
    if not CASE_IDS:
        return pick_cases(cases)
    by_id = {c.id: c for c in cases}
    missing = [i for i in CASE_IDS if i not in by_id]
    if missing:
        raise SystemExit(f"bench/ladder.py: case ids {missing} are not in {SET}; fix CASE_IDS")
    return [by_id[i] for i in CASE_IDS]


def adapter_sha() -> str:
    return hashlib.sha256(ADAPTER.read_bytes()).hexdigest()[:12] if ADAPTER.exists() else "missing"


def rung_config(rung: str):
    from mad_guardrails.guardrails.config import load_config

    profile, claims, _, _ = RUNGS[rung]
    cfg = load_config("offline")
    if profile != "offline":  # the offline profile with only the LLM swapped: its llm, debate and check deadline
        llm = load_config(profile)
        cfg = cfg.model_copy(update={"profile": llm.profile, "llm": llm.llm, "debate": llm.debate,
                                     "timeout_s": llm.timeout_s})
    return cfg.model_copy(update={"verifier": cfg.verifier.model_copy(update={"claims": claims})})


def cache_path(rung: str) -> Path:
    return CACHE / f"{rung}.jsonl"


def load_rows(rung: str) -> list[dict]:
    p = cache_path(rung)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def run_rung(rung: str, *, fresh: bool = False, deadline_s: float | None = None) -> None:
    """Run the rung's cases not yet cached (errors are re-run), appending each record as it is done."""
    from mad_guardrails.evals.baselines import EvalResources, make_system

    profile, _, system_name, label = RUNGS[rung]
    cases = ladder_cases()
    CACHE.mkdir(parents=True, exist_ok=True)
    if fresh and cache_path(rung).exists():
        cache_path(rung).unlink()
    done = {r["case_id"] for r in load_rows(rung) if r.get("decision") is not None}
    todo = [c for c in cases if c.id not in done]
    print(f"rung {rung} ({label}): {len(todo)} of {len(cases)} cases to run", flush=True)
    if not todo or (deadline_s is not None and deadline_s <= 0):
        return
    cfg = rung_config(rung)
    res = EvalResources(cfg, need_llm=system_name != "claims")
    t_start = time.monotonic()
    try:
        res.warm_up()
        system = make_system(system_name, res)
        sha = adapter_sha()
        for c in todo:
            if deadline_s is not None and time.monotonic() - t_start > deadline_s:
                print(f"rung {rung}: --deadline {deadline_s:.0f} s reached; rerun to resume", flush=True)
                break
            rec = asyncio.run(system.evaluate(c))
            row = rec.model_dump(mode="json") | {"rung": rung, "profile": profile, "claims": cfg.verifier.claims,
                                                 "adapter_sha": sha, "load1": round(os.getloadavg()[0], 2),
                                                 "finished_utc": time.strftime(
                                                     "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            with cache_path(rung).open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  {c.id} [{c.type}] expected {c.expected} -> {rec.decision} via {rec.path} "
                  f"({rec.latency_s:.1f} s, {rec.llm_calls} calls){' ERROR ' + rec.error if rec.error else ''}",
                  flush=True)
    finally:
        res.close()


def metrics(rows: list[dict]) -> dict:
    def share(xs, pred):
        xs = list(xs)
        return f"{sum(1 for x in xs if pred(x))}/{len(xs)}" if xs else "–"

    rows = [r for r in rows if r.get("decision") is not None]
    n = len(rows) or 1
    viol = [r for r in rows if r["expected"] != "allow"]
    paths: dict[str, int] = {}
    for r in rows:
        paths[r["path"]] = paths.get(r["path"], 0) + 1
    return {
        "n": len(rows),
        "accuracy": share(rows, lambda r: r["decision"] == r["expected"]),
        "false_refusals": share([r for r in rows if r["expected"] == "allow"], lambda r: r["decision"] != "allow"),
        "block_recall": share([r for r in rows if r["expected"] == "block"], lambda r: r["decision"] == "block"),
        "flag_or_block_recall": share(viol, lambda r: r["decision"] != "allow"),
        "p50_s": round(statistics.median(r["latency_s"] for r in rows), 2) if rows else None,
        "llm_calls": round(sum(r["llm_calls"] for r in rows) / n, 2),
        "prompt_tokens": round(sum(r["prompt_tokens"] for r in rows) / n),
        "completion_tokens": round(sum(r["completion_tokens"] for r in rows) / n),
        "failed_closed": sum(1 for r in rows if r.get("failure")),
        "paths": paths,
        "adapters": sorted({r.get("adapter_sha", "?") for r in rows}),
    }


def print_table(as_json: bool = False) -> None:
    cases = ladder_cases()
    report = {r: metrics(load_rows(r)) for r in RUNGS}
    ran = [r for r in RUNGS if report[r]["n"]]
    common = set.intersection(*({x["case_id"] for x in load_rows(r) if x.get("decision")} for r in ran)) if ran else set()
    if common and any(report[r]["n"] > len(common) for r in ran):  # a rung stopped early: the same cases for all
        report |= {f"{r} on the {len(common)} common cases": metrics([x for x in load_rows(r) if x["case_id"] in common])
                   for r in ran}
    if as_json:
        print(json.dumps(report, indent=1))
        return
    print(f"{SET}, n = {len(cases)} cases, mode balanced:")
    for c in cases:
        print(f"  {c.id}  {c.type:17s} {c.expected}")
    print("| rung | system | n | accuracy | false refusals (allow) | block recall | flag-or-block recall | p50 s "
          "| LLM calls / case | tokens in / out per case | failed closed | paths | adapter |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    labels = {r: label for r, (_, _, _, label) in RUNGS.items()}
    for r, m in report.items():
        label = labels.get(r[0], "") + r[1:]
        paths = ", ".join(f"{k} {v}" for k, v in sorted(m["paths"].items()))
        print(f"| {r[0]} | {label} | {m['n']} | {m['accuracy']} | {m['false_refusals']} | {m['block_recall']} | "
              f"{m['flag_or_block_recall']} | {m['p50_s']} | {m['llm_calls']} | "
              f"{m['prompt_tokens']:,} / {m['completion_tokens']:,} | {m['failed_closed']} | {paths} | "
              f"{', '.join(m['adapters'])} |")
    print("\nper case (decision by rung):")
    rows = {r: {x["case_id"]: x for x in load_rows(r)} for r in RUNGS}
    print(f"  {'case':34s} {'expected':8s} " + " ".join(f"{r:>6s}" for r in RUNGS))
    for c in cases:
        print(f"  {c.id:34s} {c.expected:8s} "
              + " ".join(f"{(rows[r].get(c.id) or {}).get('decision') or '-':>6s}" for r in RUNGS))
    loads = {r: [x["load1"] for x in load_rows(r) if "load1" in x] for r in RUNGS}
    print("load average (1 min) at each case's end: " + "; ".join(
        f"{r} {min(v)}–{max(v)}" for r, v in loads.items() if v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rung", choices=sorted(RUNGS), help="run this rung (resumes from .cache/ladder/<rung>.jsonl)")
    ap.add_argument("--fresh", action="store_true", help="drop the rung's cached records first")
    ap.add_argument("--deadline", type=float, default=None, help="start no new case after this many seconds")
    ap.add_argument("--until", default=None, help="start no new case after this UTC time (HH:MM, today)")
    ap.add_argument("--table", action="store_true", help="print the table from the cached records")
    ap.add_argument("--ids", action="store_true", help="print the fixed case ids")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("GUARDRAILS_HOME", str(ROOT / ".cache" / "home"))
    if args.ids:
        for c in ladder_cases():
            print(c.id, c.type, c.expected)
    if args.rung:
        import torch

        torch.set_num_threads(2)
        deadline = args.deadline
        if args.until:  # seconds from now to that UTC time (the rung's clock starts after loading, so it is a bound)
            h, m = map(int, args.until.split(":"))
            now = time.gmtime()
            left = (h * 3600 + m * 60) - (now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec)
            deadline = max(0.0, min(left, deadline if deadline is not None else left))
        run_rung(args.rung, fresh=args.fresh, deadline_s=deadline)
    if args.table or not (args.rung or args.ids):
        print_table(args.json)


if __name__ == "__main__":
    main()
