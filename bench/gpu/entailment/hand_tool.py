"""Writers' tool for the hand-written claim files in ``data/`` (reads the corpus, never copies it into the repo).

    python bench/gpu/entailment/hand_tool.py units --act nis2 --split train [--unused]   # units, sentences, use counts
    python bench/gpu/entailment/hand_tool.py show nis2:art_23.4                            # one unit's sentences
    python bench/gpu/entailment/hand_tool.py check data/hand_train_style4_x.jsonl          # anchors resolve, split ok

A row is ``{"k": unit key, "a": words locating ONE sentence of that unit, "e": [...], "c": [...], "n": [...]}``;
``check`` fails on an anchor that matches no sentence (several: a warning, the first is used), a unit outside the file's split (train files:
train articles only; dev files: dev only) and a claim that copies its sentence word for word.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
from corpus_utils import load_units, split_of_key  # noqa: E402
from writer_cli import jsonl_rows, writer_parser  # noqa: E402

CORPUS = HERE.parents[2].parent / "shared" / "data" / "corpus"
_N = lambda s: re.sub(r"\s+", "", s).lower()  # noqa: E731


def _units():
    return {u["key"]: u for u in load_units(str(CORPUS))}


def _used() -> Counter:
    return Counter(r["k"] for r in jsonl_rows((HERE / "data").glob("hand_*.jsonl")))


def main() -> int:
    a = writer_parser(splits=True).parse_args()
    units = _units()
    if a.cmd == "units":
        used = _used()
        for k, x in units.items():
            # the split data.py enforces (a hash of the key), as `check` does
            if split_of_key(k) != a.split or not k.startswith(a.act) or (a.unused and used[k]):
                continue
            words = sum(len(t.split()) for t in x["sentences"])
            print(f"{k}\tsentences={len(x['sentences'])}\twords={words}\tused={used[k]}")
        return 0
    if a.cmd == "show":
        x = units[a.key]
        print(f"{a.key} (split {split_of_key(a.key)})")
        for i, t in enumerate(x["sentences"]):
            print(f"[{i}] {t}")
        return 0
    want = "dev" if "hand_dev" in Path(a.file).name else "train"
    bad = 0
    n = Counter()
    for i, line in enumerate(Path(a.file).open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        where = f"{a.file}:{i} ({r.get('k')})"
        if r.get("k") not in units:
            print(f"{where}: unknown unit key", file=sys.stderr); bad += 1; continue
        if split_of_key(r["k"]) != want:
            print(f"{where}: unit is in split {split_of_key(r['k'])}, this file takes {want}", file=sys.stderr)
            bad += 1
        hits = [t for t in units[r["k"]]["sentences"] if _N(r["a"]) in _N(t)]
        if not hits:
            print(f"{where}: anchor {r['a']!r} matches no sentence of the unit (see `show {r['k']}`)",
                  file=sys.stderr)
            bad += 1
        elif len(hits) > 1 and len({_N(t) for t in hits}) > 1:
            print(f"{where}: anchor {r['a']!r} matches {len(hits)} different sentences; the first is used "
                  "(lengthen it to pick one)", file=sys.stderr)
        for lab in "ecn":
            for claim in r.get(lab, []):
                n[lab] += 1
                if hits and _N(claim) == _N(hits[0]):
                    print(f"{where}: a claim copies the sentence", file=sys.stderr); bad += 1
    print(f"{a.file}: rows ok unless listed above; claims e={n['e']} c={n['c']} n={n['n']}; problems {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
