#!/usr/bin/env python3
"""Calibrate a harm-screen adapter's thresholds on the DEV prompts, on CPU, reading answers the way the runtime does
(verifier/harm.py: ``max_length`` and answer ``windows`` as configured), and write them into its config.json.

  GUARDRAILS_HOME=.cache/home python bench/gpu/harm/calibrate.py ADAPTER_DIR [--windows N] [--max_length L] [--dry]
      [--review bench/gpu/harm/data/oof_r1.jsonl [--max-false 0.03]]

The grid, objective and decision rule are the trainer's (``train.py``: ``calibrate`` / ``decision``); the objective is
computed separately on the dev split's real answers (XSTest) and its synthetic rows and averaged, so the 400
template rows do not drown the ~165 real ones. Only dev rows are read (split by prompt, data.py); the test split is
never touched here.

``--review READINGS`` also sets the review band's lower edge ``review_at`` (verifier/harm.py: an answer scoring
between it and ``flag_at`` that does not read as a refusal is flagged as uncertain and goes to the debate): the
lowest value on a 0.05 grid below ``flag_at`` at which the false flag/block rate stays <= ``--max-false`` both on the
out-of-fold readings of the recipe's real train answers (``folds.py --export``: 81 harmful or partial, ~970 others —
many more than dev's 12) and on the adapter's own readings of the synthetic dev rows. Recall is what the band buys.
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
    res = s.check_many([(r["premise"], r["hypothesis"]) for r in rows])
    return rows, [[x.probs[k] for k in ("harmful", "partial", "refusal", "safe")] for x in res], s


def calibrate_balanced(rows, probs, T) -> dict:
    """The trainer's grid and objective (``train.calibrate``), averaged over the real (XSTest) and synthetic dev rows."""
    parts = [[i for i, r in enumerate(rows) if r["source"] == "xstest"],
             [i for i, r in enumerate(rows) if r["source"] != "xstest"]]
    return T.calibrate(rows, probs, parts=parts, calibrated_on=(
        "dev split (by prompt), read as at runtime (windows), grid 0.30-0.90: mean over {XSTest, synthetic} dev rows "
        "of block recall(harmful) + flag-or-block(partial) - 2 x false flag/block(safe + refusal); ties -> higher "
        "thresholds (bench/gpu/harm/calibrate.py)"))


def calibrate_review(readings: list[dict], rows, probs, T, flag_at: float, block_at: float,
                     max_false: float = 0.03) -> tuple[float, list[dict]]:
    """``review_at`` (see the module doc) and the grid it was chosen on."""
    oof = [(r["label"], r["p"]) for r in readings if r["part"] == "train"]
    syn = [(r["label"], p) for r, p in zip(rows, probs) if r["source"] != "xstest"]

    def rates(pairs, t):
        pos = [T.decision(p, flag_at, block_at, t) != "none" for lab, p in pairs if lab in ("harmful", "partial")]
        neg = [T.decision(p, flag_at, block_at, t) != "none" for lab, p in pairs if lab in ("safe", "refusal")]
        return sum(pos) / max(1, len(pos)), sum(neg) / max(1, len(neg))

    grid, best = [], flag_at
    for i in range(int(round(flag_at / 0.05))):
        t = round(flag_at - 0.05 * i, 2)
        (rec, fp), (srec, sfp) = rates(oof, t), rates(syn, t)
        grid.append({"review_at": t, "oof_recall": round(rec, 4), "oof_false": round(fp, 4),
                     "synthetic_dev_recall": round(srec, 4), "synthetic_dev_false": round(sfp, 4)})
        if fp > max_false or sfp > max_false:
            break
        best = t
    return best, grid


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("adapter")
    ap.add_argument("--windows", type=int, default=None)
    ap.add_argument("--max_length", type=int, default=None)
    ap.add_argument("--evalsets", default=str(HERE.parents[3] / "shared/data/evalsets"))
    ap.add_argument("--corpus", default=str(HERE.parents[3] / "shared/data/corpus"))
    ap.add_argument("--dry", action="store_true", help="print, do not write config.json")
    ap.add_argument("--review", type=Path, default=None, help="out-of-fold readings (folds.py --export): set review_at")
    ap.add_argument("--max-false", type=float, default=0.03)
    a = ap.parse_args()
    T = _trainer()
    rows, probs, s = dev_probs(T.D, a.adapter, a.windows, a.max_length, Path(a.evalsets), Path(a.corpus))
    th = calibrate_balanced(rows, probs, T)
    if a.review:
        readings = [json.loads(x) for x in a.review.read_text(encoding="utf-8").splitlines() if x.strip()]
        th["review_at"], grid = calibrate_review(readings, rows, probs, T, th["flag_at"], th["block_at"], a.max_false)
        for g in grid:
            print(json.dumps(g))
        th["review_calibrated_on"] = (
            f"lowest review_at (grid step 0.05 below flag_at) with false flag/block <= {a.max_false} on the "
            f"out-of-fold readings of the recipe's real train answers ({a.review.name}) and on the synthetic dev "
            "rows (bench/gpu/harm/calibrate.py --review)")
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
