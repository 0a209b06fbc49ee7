"""Merging rankings: reciprocal-rank fusion (RRF) and weighted score fusion.

RRF scores an item ``sum_i w_i / (k + rank_i)`` over the rankings it appears in (rank from 1; ``k = 60`` as in
Cormack et al. 2009); it needs no score calibration between retrievers. Weighted fusion min-max normalises each
retriever's scores over its candidates and sums ``w_i * norm_i`` (an item missing from a list gets 0 there).

    >>> sorted(rrf([[1, 2, 3], [3, 1]]).items(), key=lambda kv: -kv[1])[0][0]
    1
    >>> weighted_fusion([{1: 0.9, 2: 0.5}, {2: 10.0, 3: 1.0}], weights=[1.0, 1.0])[2]
    1.0
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

RRF_K = 60


def rrf(rankings: Sequence[Sequence[Hashable]], k: int = RRF_K, weights: Sequence[float] | None = None
        ) -> dict[Hashable, float]:
    """Reciprocal-rank fusion of ranked id lists (best first) → ``{id: fused score}``."""
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    fused: dict[Hashable, float] = {}
    for ranking, w in zip(rankings, weights):
        if w == 0:
            continue
        seen: set[Hashable] = set()
        for rank, item in enumerate(ranking, start=1):
            if item in seen:  # a list may repeat an id (chunks of one unit): count its best rank only
                continue
            seen.add(item)
            fused[item] = fused.get(item, 0.0) + w / (k + rank)
    return fused


def minmax(scores: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """Scale scores to [0, 1] (all equal → all 1.0)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo < 1e-12:
        return {key: 1.0 for key in scores}
    return {key: (v - lo) / (hi - lo) for key, v in scores.items()}


def weighted_fusion(score_maps: Sequence[Mapping[Hashable, float]], weights: Sequence[float] | None = None
                    ) -> dict[Hashable, float]:
    """Sum of min-max-normalised scores times weights → ``{id: fused score}``."""
    if weights is None:
        weights = [1.0] * len(score_maps)
    if len(weights) != len(score_maps):
        raise ValueError(f"{len(weights)} weights for {len(score_maps)} score maps")
    fused: dict[Hashable, float] = {}
    for scores, w in zip(score_maps, weights):
        if w == 0:
            continue
        for key, v in minmax(scores).items():
            fused[key] = fused.get(key, 0.0) + w * v
    return fused


def ranked(fused: Mapping[Hashable, float]) -> list[Hashable]:
    """Ids by fused score, best first (ties keep insertion order)."""
    return [key for key, _ in sorted(fused.items(), key=lambda kv: -kv[1])]
