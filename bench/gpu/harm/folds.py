#!/usr/bin/env python3
"""Prompt-grouped K-fold data for comparing harm-screen RECIPES on many more real answers than the dev split holds.

  python bench/gpu/harm/folds.py DATA_DIR OUT_DIR [--k 3]
  # device, per recipe and fold:  train.py --data OUT_DIR/f<k> ...  (its probs_dev.jsonl.gz = out-of-fold readings)
  python bench/gpu/harm/folds.py --report OUT_DIR RUN_PROBS_DIR RECIPE[=NAME] ...
  python bench/gpu/harm/folds.py --export OUT.jsonl OUT_DIR RUN_PROBS_DIR RECIPE[=NAME]

The dev split has 12 real harmful-or-partial answers (XSTest), so two adapters of the SAME recipe and data, trained
with different seeds, differ there by up to 8 F1 points: it cannot choose between recipes. Here fold ``k`` trains on
the train rows of the other folds and its "dev" file is the dev split plus fold ``k``'s train rows (each marked with
``fold``), so the trainer's ``probs_dev`` are out-of-fold readings of every real train answer (81 harmful or partial,
979 safe or refusals in round 1's data). Folds are by PROMPT (bits 8-16 of the same sha256 as the split rule), so all
five models' answers to one XSTest prompt stay in one fold. The test split is never read.

``--report`` prints, per recipe, the AUC of P(harmful)+P(partial) for harmful-or-partial vs the rest on the
out-of-fold XSTest answers, and F1 / recall / false-flag rate at 0.3 and 0.5; RUN_PROBS_DIR holds
``<RECIPE>-f<k>.probs.jsonl.gz``; ``RECIPE=NAME`` reads the fold data of ``OUT_DIR/NAME``.

``--export`` writes one recipe's readings of every real (XSTest) answer of the train and dev prompts as JSONL — train
answers out of fold, dev answers as the mean of the fold models — keyed by :func:`row_key` (a hash, no text), so
``calibrate.py --review`` can set the review band from them without the device.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
from pathlib import Path


def fold_of(prompt: str, k: int) -> int:
    return int(hashlib.sha256(" ".join(prompt.lower().split()).encode()).hexdigest()[8:16], 16) % k


def read_rows(p: Path) -> list[dict]:
    return [json.loads(x) for x in gzip.open(p, "rt", encoding="utf-8")]


def _write(p: Path, rows) -> None:
    with gzip.open(p, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_folds(data: Path, out: Path, k: int = 3) -> None:
    tr, dev = read_rows(data / "train.jsonl.gz"), read_rows(data / "dev.jsonl.gz")
    for i in range(k):
        d = out / f"f{i}"
        d.mkdir(parents=True, exist_ok=True)
        _write(d / "train.jsonl.gz", (r for r in tr if fold_of(r["premise"], k) != i))
        _write(d / "dev.jsonl.gz", [{**r, "fold": "dev"} for r in dev]
               + [{**r, "fold": i} for r in tr if fold_of(r["premise"], k) == i])
        shutil.copy(data / "stats.json", d / "stats.json")  # the trainer records its counts
        n = sum(fold_of(r["premise"], k) == i and r["source"] == "xstest" and r["label"] in ("harmful", "partial")
                for r in tr)
        print(f"fold {i}: {sum(fold_of(r['premise'], k) != i for r in tr)} train rows; {n} real harmful/partial held out")


def auc(pos: list[float], neg: list[float]) -> float:
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / max(1, len(pos) * len(neg))


def at(rows: list[tuple[bool, float]], t: float) -> tuple[float, float, float]:
    tp = sum(h and s >= t for h, s in rows)
    fp = sum((not h) and s >= t for h, s in rows)
    fn = sum(h and s < t for h, s in rows)
    p, r = (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn) if tp + fn else 0.0)
    return (2 * p * r / (p + r) if p + r else 0.0), r, fp / max(1, sum(not h for h, _ in rows))


def row_key(r: dict) -> str:
    """A row's key in exported readings: a hash of (prompt, answer), so no text of the public sets is copied."""
    return hashlib.sha256(f"{r['premise']}\n{r['hypothesis']}".encode()).hexdigest()[:16]


def fold_readings(folds: Path, probs: Path, spec: str, k: int = 3):
    """Per fold: (its dev rows, the fold model's probabilities of them), for ``RECIPE[=NAME]`` (see the module doc)."""
    name, _, sub = spec.partition("=")
    for i in range(k):
        rows = read_rows(folds / (sub or name) / f"f{i}" / "dev.jsonl.gz")
        pr = read_rows(probs / f"{name}-f{i}.probs.jsonl.gz")
        if len(rows) != len(pr):
            raise SystemExit(f"{probs / f'{name}-f{i}.probs.jsonl.gz'}: {len(pr)} rows, the fold's dev file has "
                             f"{len(rows)}; was it trained on {folds / (sub or name) / f'f{i}'}?")
        yield rows, pr


def readings(folds: Path, probs: Path, spec: str, k: int = 3) -> list[dict]:
    """Out-of-fold readings of the real answers (see the module doc): ``key``, ``label``, ``part`` (train / dev) and
    ``p`` = [harmful, partial, refusal, safe]."""
    seen: dict[str, dict] = {}
    for rows, pr in fold_readings(folds, probs, spec, k):
        for r, q in zip(rows, pr):
            if r["source"] != "xstest":
                continue
            x = seen.setdefault(row_key(r), {"key": row_key(r), "label": r["label"],
                                             "part": "dev" if r["fold"] == "dev" else "train", "ps": []})
            x["ps"].append(q["p"])
    return [{"key": x["key"], "label": x["label"], "part": x["part"],
             "p": [round(sum(c) / len(c), 5) for c in zip(*x.pop("ps"))]} for x in seen.values()]


def report(folds: Path, probs: Path, recipes: list[str], k: int = 3) -> None:
    for spec in recipes:
        name = spec.partition("=")[0]
        oof = []
        for rows, pr in fold_readings(folds, probs, spec, k):
            oof += [(r["label"] in ("harmful", "partial"), q["p"][0] + q["p"][1]) for r, q in zip(rows, pr)
                    if r["source"] == "xstest" and r["fold"] != "dev"]
        pos = [s for h, s in oof if h]
        neg = [s for h, s in oof if not h]
        cells = "  ".join(f"@{t}: F1 {100 * f:.1f} R {r:.2f} FP {fp:.3f}" for t in (0.3, 0.5) for f, r, fp in [at(oof, t)])
        print(f"{name:6s} out-of-fold XSTest {len(pos)} harmful-or-partial / {len(neg)} other: AUC {auc(pos, neg):.3f}  "
              f"{cells}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--export", type=Path, default=None, help="write one recipe's out-of-fold readings (JSONL)")
    a = ap.parse_args()
    if a.export:
        rows = readings(Path(a.paths[0]), Path(a.paths[1]), a.paths[2], a.k)
        a.export.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"{a.export}: {len(rows)} readings ({sum(r['part'] == 'train' for r in rows)} out of fold)")
    elif a.report:
        report(Path(a.paths[0]), Path(a.paths[1]), a.paths[2:], a.k)
    else:
        write_folds(Path(a.paths[0]), Path(a.paths[1]), a.k)


if __name__ == "__main__":
    main()
