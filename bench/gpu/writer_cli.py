"""The command line both writers' tools share (``entailment/hand_tool.py``, ``rerank/query_tool.py``): ``units`` (what
a writer may write about, with how often it is already used), ``show KEY`` and ``check FILE``; and the rows of the
hand-written JSON-lines files they read."""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path


def writer_parser(*, splits: bool) -> argparse.ArgumentParser:
    """``units [--act PREFIX] [--split …] [--unused]``, ``show KEY``, ``check FILE`` (``--split`` only when the tool
    serves more than the train split)."""
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("units")
    u.add_argument("--act", default="")
    if splits:
        u.add_argument("--split", default="train", choices=["train", "dev", "test"])
    u.add_argument("--unused", action="store_true")
    sub.add_parser("show").add_argument("key")
    sub.add_parser("check").add_argument("file")
    return ap


def jsonl_rows(paths) -> Iterator[dict]:
    """The rows of JSON-lines files, blank lines skipped."""
    for p in paths:
        for line in Path(p).open(encoding="utf-8"):
            if line.strip():
                yield json.loads(line)
