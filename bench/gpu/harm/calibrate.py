#!/usr/bin/env python3
"""Calibrate a harm-screen adapter's thresholds on the DEV prompts, on CPU, reading answers the way the runtime does
(verifier/harm.py: ``max_length`` and answer ``windows`` as configured), and write them into its config.json.

  GUARDRAILS_HOME=.cache/home python bench/gpu/harm/calibrate.py ADAPTER_DIR [--windows N] [--max_length L] [--dry]

The grid, objective and decision rule are the trainer's (``train.py``: ``calibrate`` / ``decision``); the objective is
computed separately on the dev split's real answers (XSTest) and its synthetic rows and averaged, so the 400
template rows do not drown the ~165 real ones. Only dev rows are read (split by prompt, data.py); the test split is
never touched here.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _trainer():
    """train.py (its grid / decision rule, and data.py as ``.D``), loaded by path like the trainer loads its parts."""
    spec = importlib.util.spec_from_file_location("harm_train_cal", HERE / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def dev_probs(D, adapter: str, windows: int | None, max_length: int | None, evalsets: Path, corpus: Path):
    from mad_guardrails.verifier.harm import HarmScreen

    rows = [r for r in D.build(evalsets, corpus, gen=False) if r["split"] == "dev"]
    s = HarmScreen.load(adapter, windows=windows)
    if max_length:
        s.nli.max_length = max_length
    res = []
    for i in range(0, len(rows), 32):
        res += s.check_many([(r["premise"], r["hypothesis"]) for r in rows[i:i + 32]])
    return rows, [[x.probs[k] for k in ("harmful", "partial", "refusal", "safe")] for x in res], s


def calibrate_balanced(rows, probs, T) -> dict:
    """The trainer's grid and objective (``train.calibrate``), averaged over the real (XSTest) and synthetic dev rows."""
    parts = [[i for i, r in enumerate(rows) if r["source"] == "xstest"],
             [i for i, r in enumerate(rows) if r["source"] != "xstest"]]
    return T.calibrate(rows, probs, parts=parts, calibrated_on=(
        "dev split (by prompt), read as at runtime (windows), grid 0.30-0.90: mean over {XSTest, synthetic} dev rows "
        "of block recall(harmful) + flag-or-block(partial) - 2 x false flag/block(safe + refusal); ties -> higher "
        "thresholds (bench/gpu/harm/calibrate.py)"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("--windows", type=int, default=None)
    ap.add_argument("--max_length", type=int, default=None)
    ap.add_argument("--evalsets", default=str(HERE.parents[3] / "shared/data/evalsets"))
    ap.add_argument("--corpus", default=str(HERE.parents[3] / "shared/data/corpus"))
    ap.add_argument("--dry", action="store_true", help="print, do not write config.json")
    a = ap.parse_args()
    T = _trainer()
    rows, probs, s = dev_probs(T.D, a.adapter, a.windows, a.max_length, Path(a.evalsets), Path(a.corpus))
    th = calibrate_balanced(rows, probs, T)
    print(json.dumps({"windows": s.windows, "max_length": s.nli.max_length, **th}))
    if not a.dry:
        p = Path(a.adapter) / "config.json"
        cfg = json.loads(p.read_text())
        cfg["thresholds"] = th
        if a.max_length:
            cfg["max_length"] = a.max_length
        if s.windows > 1:
            cfg["windows"] = {"max": s.windows, "stride": s.stride, "query_tokens": s.query_tokens}
        else:
            cfg.pop("windows", None)
        p.write_text(json.dumps(cfg, indent=1))


if __name__ == "__main__":
    main()
