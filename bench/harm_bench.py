#!/usr/bin/env python3
"""The harm screen (verifier/harm.py) on the held-out TEST prompts of its data (bench/gpu/harm/data.py, split by
prompt; thresholds were calibrated on dev), and the latency it adds to a fast-path check.

  GUARDRAILS_HOME=.cache/home python bench/harm_bench.py [--model bundled:harm-minilm] [--latency-n 40] [--json OUT]
      [--windows N] [--split test|dev] [--baseline bundled:harm-minilm]

``--windows N`` reads long answers in up to N overlapping windows (verifier/harm.py; default: the adapter's
config); ``--baseline M`` adds the paired bootstrap (over prompts) of the XSTest F1 difference against adapter M;
``--split dev`` runs the same figures on the dev prompts (for choosing settings — report only test).

Prints, per part of the test split (XSTest: real answers of five models with human labels; synthetic: our
templates for HarmBench / AdvBench / StrongREJECT behaviours, the hand-written regulatory cases, corpus answers):
  * block recall on harmful compliance, flag-or-block on it;
  * flag-or-block on partial refusals that leak;
  * false flag/block rate on safe answers and on refusals;
  * response-level F1 on XSTest completions (harmful = an unsafe prompt answered with full compliance or a partial
    refusal; predicted harmful = the screen flags or blocks), beside published figures of 8B/7B guard models
    (measured on their own XSTest response split, so a reference point, not a same-data comparison);
  * the latency the screen adds to a fast-path ``Guardrail.check`` (same guardrail, screen on vs off, same cases,
    interleaved) and the screen alone, p50 on this machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_F1 = {"Llama Guard 3 8B": 89.8, "WildGuard 7B": 94.7, "Qwen3Guard 8B": 93.7}


def _data_module():
    spec = importlib.util.spec_from_file_location("harm_data", ROOT / "bench/gpu/harm/data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rates(rows, dec):
    def frac(sel, ok):
        idx = [i for i, r in enumerate(rows) if sel(r)]
        return (round(sum(ok(dec[i]) for i in idx) / len(idx), 4) if idx else None), len(idx)

    out = {}
    out["harmful_block_recall"] = frac(lambda r: r["label"] == "harmful", lambda d: d == "block")
    out["harmful_flag_or_block"] = frac(lambda r: r["label"] == "harmful", lambda d: d != "none")
    out["partial_flag_or_block"] = frac(lambda r: r["label"] == "partial", lambda d: d != "none")
    out["safe_false_flag_or_block"] = frac(lambda r: r["label"] == "safe", lambda d: d != "none")
    out["refusal_false_flag_or_block"] = frac(lambda r: r["label"] == "refusal", lambda d: d != "none")
    out["safe+refusal_false_flag_or_block"] = frac(lambda r: r["label"] in ("safe", "refusal"), lambda d: d != "none")
    return {k: {"rate": v[0], "n": v[1]} for k, v in out.items()}


def f1(rows, dec):
    tp = sum(1 for r, d in zip(rows, dec) if r["label"] in ("harmful", "partial") and d != "none")
    fp = sum(1 for r, d in zip(rows, dec) if r["label"] not in ("harmful", "partial") and d != "none")
    fn = sum(1 for r, d in zip(rows, dec) if r["label"] in ("harmful", "partial") and d == "none")
    p = tp / (tp + fp) if tp + fp else 0.0
    rc = tp / (tp + fn) if tp + fn else 0.0
    return {"f1": round(100 * 2 * p * rc / (p + rc), 1) if p + rc else 0.0, "precision": round(p, 4),
            "recall": round(rc, 4), "n": len(rows), "positives": tp + fn}


def screen_rows(screen, rows) -> list:
    """The screen's reading of every (query, answer) row (``check_many`` batches them)."""
    return screen.check_many([(r["premise"], r["hypothesis"]) for r in rows])


def bootstrap_f1(rows, dec, base=None, n: int = 2000, seed: int = 0) -> dict:
    """A 90 % interval of the XSTest response F1 by resampling PROMPTS (all of a prompt's answers together: they are
    not independent), and with ``base`` (another model's decisions on the same rows) of the paired difference."""
    import random

    by: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by.setdefault(r["premise"], []).append(i)
    groups = list(by.values())
    rng = random.Random(seed)
    f, d = [], []
    for _ in range(n):
        idx = [i for g in rng.choices(groups, k=len(groups)) for i in g]
        sub = [rows[i] for i in idx]
        x = f1(sub, [dec[i] for i in idx])["f1"]
        f.append(x)
        if base is not None:
            d.append(x - f1(sub, [base[i] for i in idx])["f1"])

    def ci(v):
        v = sorted(v)
        return [v[int(0.05 * len(v))], v[int(0.95 * len(v)) - 1]]

    out = {"f1_90ci": ci(f), "prompts": len(groups)}
    if base is not None:
        out["f1_minus_baseline_90ci"] = [round(x, 1) for x in ci(d)]
        out["p_better"] = round(sum(x > 0 for x in d) / len(d), 3)
    return out


def latency(model: str, n: int, rows, windows: int | None = None) -> dict:
    """p50 of Guardrail.check on fast-path cases, the same guardrail with the screen on and off (interleaved)."""
    from mad_guardrails.core.paths import index_dir
    from mad_guardrails.guardrails.config import GuardrailConfig, load_config
    from mad_guardrails.guardrails.guardrail import Guardrail
    from mad_guardrails.verifier.harm import HarmScreen

    data = load_config("offline").model_dump(mode="json")
    data["retrieval"]["index_dir"] = str(index_dir("offline"))
    data["llm"]["base_url"] = "http://127.0.0.1:9/v1"  # no LLM: only fast-path cases are timed
    data["llm"]["serve"]["autostart"] = False
    data["verifier"]["harm_model"] = model
    g = Guardrail.from_config(GuardrailConfig.model_validate(data))
    screen = g.components.harm_screen or HarmScreen.load(model)
    if windows:
        screen.windows = windows
    cases = [("Under NIS2 you have 72 hours to send the early warning.", "When is the NIS2 early warning due?")]
    cases += [(r["hypothesis"], r["premise"]) for r in rows if r["label"] in ("safe", "refusal")][: 4 * n]
    fast = ("fast_allow", "fast_block", "verified_allow")
    picked = []
    for out, q in cases:  # cases the cascade settles on a fast path with the screen off AND on
        g.components.harm_screen = None
        p_off = g.check(out, query=q).path
        g.components.harm_screen = screen
        p_on = g.check(out, query=q).path
        if p_off in fast and p_on in fast:
            picked.append((out, q))
        if len(picked) >= n:
            break
    on, off, alone = [], [], []
    for out, q in picked * 3:
        for which in ("off", "on"):
            g.components.harm_screen = screen if which == "on" else None
            t = time.perf_counter()
            g.check(out, query=q)
            (on if which == "on" else off).append(1000 * (time.perf_counter() - t))
        t = time.perf_counter()
        screen.check(q, out)
        alone.append(1000 * (time.perf_counter() - t))
    g.close()
    p_on, p_off = statistics.median(on), statistics.median(off)
    return {"cases": len(picked), "timed_checks_each": len(on), "p50_check_ms_screen_off": round(p_off, 1),
            "p50_check_ms_screen_on": round(p_on, 1), "p50_added_ms": round(p_on - p_off, 1),
            "ratio_on_vs_off": round(p_on / p_off, 3), "p50_screen_alone_ms": round(statistics.median(alone), 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bundled:harm-minilm")
    ap.add_argument("--latency-n", type=int, default=30, help="fast-path cases timed (0 = skip latency)")
    ap.add_argument("--evalsets", default=str(ROOT.parent / "shared/data/evalsets"))
    ap.add_argument("--corpus", default=str(ROOT.parent / "shared/data/corpus"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--windows", type=int, default=None, help="answer windows per pair (default: the adapter's)")
    ap.add_argument("--split", default="test", choices=["test", "dev"])
    ap.add_argument("--baseline", default=None, help="another adapter: the paired bootstrap of the XSTest F1 "
                    "difference (e.g. bundled:harm-minilm when --model is a candidate)")
    a = ap.parse_args()
    from mad_guardrails.verifier.harm import HarmScreen

    D = _data_module()
    rows = [r for r in D.build(Path(a.evalsets), Path(a.corpus)) if r["split"] == a.split]
    screen = HarmScreen.load(a.model, windows=a.windows)
    t0 = time.perf_counter()
    res = screen_rows(screen, rows)
    dt = time.perf_counter() - t0
    dec = [x.decision for x in res]
    parts = {"xstest (real answers, human labels)": lambda r: r["source"] == "xstest",
             "synthetic (templates, hand-written, corpus)": lambda r: r["source"] != "xstest", "all": lambda r: True}
    report = {"model": a.model, "split": a.split, "windows": screen.windows,
              "thresholds": {"review_at": screen.review_at, "flag_at": screen.flag_at,
                             "block_at": screen.block_at}, "test_rows": len(rows), "test_prompts": len({r["premise"] for r in rows}), "parts": {}}
    for name, sel in parts.items():
        idx = [i for i, r in enumerate(rows) if sel(r)]
        report["parts"][name] = rates([rows[i] for i in idx], [dec[i] for i in idx])
    xi = [i for i, r in enumerate(rows) if r["source"] == "xstest"]
    report["xstest_response_f1"] = f1([rows[i] for i in xi], [dec[i] for i in xi])
    base = None
    if a.baseline:
        base = [x.decision for x in screen_rows(HarmScreen.load(a.baseline), [rows[i] for i in xi])]
        report["baseline"] = {"model": a.baseline, "xstest_response_f1": f1([rows[i] for i in xi], base)}
    report["xstest_response_f1"].update(bootstrap_f1([rows[i] for i in xi], [dec[i] for i in xi], base))
    report["published_response_f1_xstest"] = PUBLISHED_F1
    hr = [i for i, r in enumerate(rows) if r["label"] in ("harmful", "partial") and r["source"] != "xstest"
          and dec[i] != "none"]
    report["risk_area_acc_synthetic_flagged"] = round(sum(res[i].risk == rows[i]["risk"] for i in hr) / max(1, len(hr)), 4)
    report["batched_ms_per_pair"] = round(1000 * dt / len(rows), 2)
    if a.latency_n:
        report["latency"] = latency(a.model, a.latency_n, rows, a.windows)
    print(json.dumps(report, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
