"""Hard negatives mined with the *base* embedder: passages it ranks 6–50 for a query that belong to another unit.

Source-aware, as in the seed recipes (SEEDS.md §1, §3): among the base model's ranks ``rank_range`` (1-based,
default 6..50 -- ranks 1–5 are skipped because they are often unlabelled positives), a negative must not be
*related* to the query's positive (same split key -- the same article / framework category --, or an ancestor of
it such as the CSF function above a category), must not be ``banned`` (test passages, for training rows), and is
taken from the **same act first** (similar wording, wrong unit: a DORA query gets a neighbouring DORA article
before a GDPR one), then from other acts. Candidates scoring above the positive's own score minus ``margin`` are
skipped as likely false negatives.

    >>> import numpy as np
    >>> p = np.eye(4, dtype=np.float32); q = np.array([[1.0, 0.9, 0.8, 0.7]], dtype=np.float32)
    >>> mine_rows(q, p, related=[{0}], docs_q=["a"], docs_p=["a", "b", "a", "a"], rank_range=(2, 4), n=2)
    [[2, 3]]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from mad_guardrails.core.units import id_covers
from mad_guardrails.retrieval.training.pairs import PassageRef, TrainPair

RANK_RANGE = (6, 50)


def top_rows(q: np.ndarray, p: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the ``k`` best passages per query (inner product; vectors are normalised), best first."""
    k = min(k, p.shape[0])
    all_s, all_r = [], []
    for s in range(0, q.shape[0], chunk):
        sims = q[s : s + chunk] @ p.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        all_r.append(np.take_along_axis(part, order, axis=1))
        all_s.append(np.take_along_axis(ps, order, axis=1))
    return np.concatenate(all_s), np.concatenate(all_r)


def mine_rows(
    q: np.ndarray,
    p: np.ndarray,
    *,
    related: Sequence[set[int]],
    docs_q: Sequence[str],
    docs_p: Sequence[str],
    rank_range: tuple[int, int] = RANK_RANGE,
    n: int = 1,
    banned: set[int] | None = None,
    margin: float | None = 0.0,
    group_of: Sequence[str] | None = None,
) -> list[list[int]]:
    """Negative passage rows per query (see the module docstring). ``group_of`` (a key per row) keeps at most one
    negative per group, so three negatives are three different units."""
    lo, hi = rank_range
    scores, rows = top_rows(q, p, hi)
    banned = banned or set()
    out: list[list[int]] = []
    for i in range(q.shape[0]):
        rel = related[i]
        pos_score = max((float(q[i] @ p[r]) for r in rel), default=None) if margin is not None else None
        same, other = [], []
        for s, r in zip(scores[i][lo - 1 : hi], rows[i][lo - 1 : hi]):
            r = int(r)
            if r in rel or r in banned:
                continue
            if pos_score is not None and float(s) > pos_score - margin:
                continue
            (same if docs_p[r] == docs_q[i] else other).append(r)
        picked: list[int] = []
        groups: set[str] = set()
        for r in same + other:
            g = group_of[r] if group_of is not None else str(r)
            if g in groups:
                continue
            groups.add(g)
            picked.append(r)
            if len(picked) >= n:
                break
        out.append(picked)
    return out


def related_rows(refs: Sequence[PassageRef], golds: Sequence[str]) -> set[int]:
    """Rows of passages under any of ``golds`` (same split key, or covered by the id) or above them (ancestors)."""
    out = set()
    for i, r in enumerate(refs):
        for g in golds:
            if r.key == g or id_covers(g, r.unit_id) or id_covers(r.unit_id, g) or id_covers(g, r.key):
                out.add(i)
                break
    return out


class RelatedIndex:
    """Cached :func:`related_rows` per key (one scan of the act's passages per distinct key)."""

    def __init__(self, refs: Sequence[PassageRef]):
        self.refs = refs
        self.by_doc: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(refs):
            self.by_doc[r.doc].append(i)
        self._cache: dict[tuple[str, ...], set[int]] = {}

    def rows(self, golds: Sequence[str]) -> set[int]:
        key = tuple(sorted(golds))
        if key not in self._cache:
            out = set()
            for g in golds:
                doc = g.split(":", 1)[0]
                for i in self.by_doc.get(doc, ()):
                    r = self.refs[i]
                    if r.key == g or id_covers(g, r.unit_id) or id_covers(r.unit_id, g) or id_covers(g, r.key):
                        out.add(i)
            self._cache[key] = out
        return self._cache[key]


def mine_for_pairs(
    pairs: list[TrainPair],
    refs: Sequence[PassageRef],
    q_emb: np.ndarray,
    p_emb: np.ndarray,
    *,
    n: int = 3,
    rank_range: tuple[int, int] = RANK_RANGE,
    margin: float | None = 0.0,
) -> list[TrainPair]:
    """Copies of ``pairs`` with ``negatives`` / ``negative_pids`` filled. Train pairs never get a test passage as a
    negative (so no test unit is seen in training at all); test pairs may draw from every passage."""
    rel = RelatedIndex(refs)
    test_rows = {i for i, r in enumerate(refs) if r.key in {p.key for p in pairs if p.split == "test"}}
    out: list[TrainPair] = list(pairs)
    for split in ("train", "test"):
        idx = [i for i, p in enumerate(pairs) if p.split == split]
        if not idx:
            continue
        negs = mine_rows(
            q_emb[idx], p_emb, related=[rel.rows([pairs[i].key]) for i in idx], docs_q=[pairs[i].doc for i in idx],
            docs_p=[r.doc for r in refs], rank_range=rank_range, n=n,
            banned=test_rows if split == "train" else None, margin=margin, group_of=[r.key for r in refs],
        )
        for i, rows in zip(idx, negs):
            out[i] = pairs[i].model_copy(update={"negatives": [refs[r].embed_text for r in rows],
                                                 "negative_pids": [refs[r].pid for r in rows]})
    return out
