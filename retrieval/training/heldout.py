"""The held-out sets, never trained on: their queries and gold units, and the :class:`Decontaminator` that drops
generated texts whose word sets overlap a held-out query (``evals/data/*.jsonl``) with Jaccard ≥ ``max_overlap``,
so the hand-written test set is never trained on, not even by accident."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from mad_guardrails.core.records import read_jsonl
from mad_guardrails.retrieval.training.passage_text import content_words


def heldout_queries(data_dir: str | Path | None = None) -> list[str]:
    """Every query of the hand-written evaluation sets (regulatory, off-topic, policy screening, cases)."""
    from mad_guardrails.retrieval.relevance import query_data_dir

    d = Path(data_dir) if data_dir else query_data_dir()
    out = []
    for f in sorted(d.glob("*.jsonl")):
        for row in read_jsonl(f, tolerant=True):
            for key in ("query", "output", "text"):
                if isinstance(row.get(key), str):
                    out.append(row[key])
    return out


def heldout_gold_keys(data_dir: str | Path | None = None) -> list[str]:
    """Gold unit ids of the hand-written regulatory query set (for a strict split that holds their units out)."""
    from mad_guardrails.retrieval.relevance import IN_DOMAIN_FILE, query_data_dir, read_query_rows

    p = (Path(data_dir) if data_dir else query_data_dir()) / IN_DOMAIN_FILE
    if not p.exists():
        return []
    return sorted({g for r in read_query_rows(p) for g in r.get("gold", [])})


class Decontaminator:
    """Drops texts that come close (word-set Jaccard ≥ ``max_overlap``) to a held-out query."""

    def __init__(self, heldout: Sequence[str], max_overlap: float = 0.5):
        self.sets = [content_words(h) for h in heldout if h.strip()]
        self.max_overlap = max_overlap
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sets):
            for w in s:
                self.index[w].append(i)
        # a close text shares most words, so some less common one: candidates come from words in < 3 % of rows
        limit = max(5, len(self.sets) // 33)
        self.rare = {w: ids for w, ids in self.index.items() if len(ids) <= limit}

    def overlap(self, text: str) -> float:
        s = content_words(text)
        if not s:
            return 0.0
        cands = {i for w in s for i in self.rare.get(w, ())}
        if not cands and len(s) <= 3:  # short texts of common words only: check them all
            cands = {i for w in s for i in self.index.get(w, ())}
        best = 0.0
        for i in cands:
            h = self.sets[i]
            union = len(s | h)
            best = max(best, len(s & h) / union if union else 0.0)
        return best

    def keep(self, text: str) -> bool:
        return self.overlap(text) < self.max_overlap
