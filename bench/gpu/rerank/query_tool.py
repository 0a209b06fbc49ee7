"""Writers' tool for the hand-written reranker queries in ``data/queries_*.jsonl`` (reads the prepared passages of
``prepare.py``, never copies them into the repo).

    python bench/gpu/rerank/query_tool.py units --act gdpr [--unused]      # train-split articles and their passages
    python bench/gpu/rerank/query_tool.py show gdpr:art_33                   # the passages of one article
    python bench/gpu/rerank/query_tool.py check data/queries_x.jsonl         # keys exist, train split only, types

A row is ``{"q": "how people ask", "golds": ["gdpr:art_33", ...], "type": "benign_sensitive" | "ambiguous" |
"adversarial"}``; every gold is an article key (``doc:art_N`` / a NIST category) whose passages answer the query.
"""
from __future__ import annotations

import gzip
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

from mad_guardrails.retrieval.training.pairs import assign_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from writer_cli import jsonl_rows, writer_parser  # noqa: E402
PASSAGES = HERE.parents[2] / ".cache" / "rerank" / "data" / "passages.jsonl.gz"
TYPES = ("benign_sensitive", "ambiguous", "adversarial")
TEST_FRACTION, SEED = 0.1, 0  # prepare.py's defaults: the split of build_groups


def split_of(key: str) -> str:
    return assign_split(key, TEST_FRACTION, SEED)


def _articles() -> dict[str, list[dict]]:
    by = defaultdict(list)
    for line in gzip.open(PASSAGES, "rt", encoding="utf-8"):
        p = json.loads(line)
        if p["doc"] != "policy":
            by[p["key"]].append(p)
    return by


def _used() -> Counter:
    return Counter(g for r in jsonl_rows((HERE / "data").glob("queries_*.jsonl")) for g in r["golds"])


def main() -> int:
    a = writer_parser(splits=False).parse_args()
    arts = _articles()
    if a.cmd == "units":
        used = _used()
        for k, ps in arts.items():
            if split_of(k) == "train" and k.startswith(a.act) and not (a.unused and used[k]):
                print(f"{k}\tpassages={len(ps)}\tused={used[k]}\t{ps[0]['text'].splitlines()[0][:90]}")
        return 0
    if a.cmd == "show":
        for p in arts[a.key]:
            print(f"[{p['unit_id']}] {p['text']}\n")
        print(f"(split {split_of(a.key)})")
        return 0
    bad, n = 0, Counter()
    for i, line in enumerate(Path(a.file).open(encoding="utf-8"), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        where = f"{a.file}:{i}"
        if r.get("type") not in TYPES:
            print(f"{where}: type must be one of {TYPES}", file=sys.stderr); bad += 1
        if not r.get("q") or not r.get("golds"):
            print(f"{where}: q and golds are required", file=sys.stderr); bad += 1; continue
        for g in r["golds"]:
            if g not in arts:
                print(f"{where}: unknown article key {g!r} (see `units`)", file=sys.stderr); bad += 1
            elif split_of(g) != "train":
                print(f"{where}: {g} is a test article: write about train articles only", file=sys.stderr); bad += 1
        n[r.get("type")] += 1
    print(f"{a.file}: {sum(n.values())} queries {dict(n)}; problems {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
