"""Policy screening: rank the rules that may apply to an output (and its query), so the debate focuses on them.

Score of a rule, in [0, 1]:

* **dense** — cosine similarity between the output (split into chunks, max over chunks; the query counts at 0.85)
  and the rule's texts (title + summary, and each example output), max over the rule's texts, rescaled from the
  embedder's cosine range to [0, 1] (``(cos - dense_floor) / (dense_ceiling - dense_floor)``, clipped);
* **keyword** — evidence combined as ``1 - prod(1 - w)``: each matched trigger phrase (``w_trigger``), each key fact
  whose terms appear in scope (``w_fact``), a mention of the act by one of its pack aliases (``w_act``), and an
  explicit reference to one of the rule's provisions ("Article 23", "Annex III", "GV.SC-04", "MEASURE 2.11",
  "MG-3.2-005"; ``w_ref``, lower when the act is not named);
* ``score = dense_weight * dense + (1 - dense_weight) * keyword`` (mode ``hybrid``); mode ``dense`` / ``keyword``
  use one part only (the eval compares the three).

Rule-text embeddings are computed once per screener (and cached on disk under ``$GUARDRAILS_HOME/cache`` keyed by
the embedder fingerprint and the rule texts, when the embedder has a fingerprint).

    >>> from mad_guardrails.policies.loader import load_packs
    >>> scr = PolicyScreener(load_packs(), embedder=None)        # keyword-only screener
    >>> [h.rule.id for h in scr.screen("Send the NIS2 early warning to the CSIRT within 24 hours", top=1)]
    ['nis2.art23.incident_reporting']
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mad_guardrails.core.hashing import text_sha256
from mad_guardrails.core.text import collapse_ws
from mad_guardrails.core.unit_ids import find_refs
from mad_guardrails.policies.schema import Rule

log = logging.getLogger(__name__)

__all__ = ["PolicyScreener", "ScreenHit", "ScreenWeights", "normalise_text"]

Mode = Literal["hybrid", "dense", "keyword"]


class EmbedderLike(Protocol):
    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


class ScreenHit(BaseModel):
    """One rule that may apply, with why."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rule: Rule
    score: float = Field(ge=0.0, le=1.0)
    dense: float = 0.0
    keyword: float = 0.0
    matched_triggers: list[str] = Field(default_factory=list)
    matched_facts: list[str] = Field(default_factory=list, description="names of key facts whose terms occur")
    matched_refs: list[str] = Field(default_factory=list, description="provision references found in the text")
    act_mentioned: bool = False


@dataclass(frozen=True)
class ScreenWeights:
    dense_weight: float = 0.6
    dense_floor: float = 0.15
    dense_ceiling: float = 0.7
    query_factor: float = 0.85
    w_trigger: float = 0.3
    w_fact: float = 0.2
    w_act: float = 0.25
    w_ref: float = 0.5
    w_ref_no_act: float = 0.2
    chunk_words: int = 80
    max_chunks: int = 12


# ------------------------------------------------------------------------------------------------ text utils
_SEP = re.compile(r"[\-_/‐-―]+")


def normalise_text(s: str) -> str:
    """Lower case, hyphens/slashes/underscores as spaces, curly quotes straightened, whitespace collapsed.

    Not :func:`mad_guardrails.verifier.normalize.fold` (which keeps ``-``): keyword phrases match word by word, so
    ``incident-notification``, ``incident_notification`` and ``incident notification`` must read the same."""
    s = s.lower().replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return collapse_ws(_SEP.sub(" ", s))


def _phrase_re(phrase: str) -> re.Pattern[str]:
    p = re.escape(normalise_text(phrase)).replace(r"\ ", r"\s+")
    return re.compile(rf"(?<![a-z0-9]){p}(?:s|es)?(?![a-z0-9])")


def _ref_matches(ref: str, local: str) -> bool:
    """True when a referenced id and a provision's local id are the same unit or one contains the other."""
    if ref == local:
        return True
    for a, b in ((ref, local), (local, ref)):
        if a.startswith(b) and a[len(b)] in ".-":
            return True
    return False


def _chunks(text: str, words: int, limit: int) -> list[str]:
    sents = re.split(r"(?<=[.!?;:])\s+|\n+", text.strip())
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for s in sents:
        w = len(s.split())
        if cur and n + w > words:
            out.append(" ".join(cur))
            cur, n = [], 0
        cur.append(s)
        n += w
    if cur:
        out.append(" ".join(cur))
    out = [c for c in out if c.strip()]
    if len(out) > limit:  # keep the first chunks and the whole text (truncated by the model) as a summary view
        out = out[: limit - 1] + [text]
    return out or [text]


# ------------------------------------------------------------------------------------------------ screener
@dataclass
class _RuleIndex:
    rule: Rule
    triggers: list[tuple[str, re.Pattern[str]]]
    facts: list[tuple[str, list[re.Pattern[str]], Any]]
    locals: list[str]


class PolicyScreener:
    """Rank the rules of a :class:`~mad_guardrails.policies.loader.PolicySet` for an output; ``embedder=None`` = keyword only."""

    def __init__(self, policy_set, embedder: EmbedderLike | None = None, *, weights: ScreenWeights | None = None,
                 cache_dir: str | Path | None | Literal["auto"] = "auto"):
        self.policy_set = policy_set
        self.embedder = embedder
        self.weights = weights or ScreenWeights()
        self._cache_dir = cache_dir
        aliases_by_pack = {p.id: [_phrase_re(a) for a in getattr(p, "aliases", [])] for p in policy_set.packs}
        self._aliases_by_pack = aliases_by_pack
        self._index: list[_RuleIndex] = []
        for r in policy_set.rules:
            trig = [(t, _phrase_re(t)) for t in dict.fromkeys(r.triggers) if t.strip()]
            facts = [(f.name, [_phrase_re(t) for t in f.terms if t.strip()], f) for f in r.key_facts]
            locs = [pid.split(":", 1)[1] for pid in r.provisions if ":" in pid]
            self._index.append(_RuleIndex(r, trig, facts, locs))
        self._texts: list[str] = []
        self._owner: np.ndarray | None = None
        self._emb: np.ndarray | None = None
        self._lock = threading.Lock()

    # -- rule texts and their embeddings
    @staticmethod
    def rule_texts(rule: Rule) -> list[str]:
        """The texts a rule is matched against: title + summary, then each example output."""
        return [f"{rule.title}. {rule.summary.strip()}"] + [e.text.strip() for e in rule.examples]

    def warm(self) -> None:
        """Compute (or load) the rule-text embeddings now (thread-safe; a no-op once done)."""
        if self.embedder is None or self._emb is not None:
            return
        with self._lock:
            if self._emb is None:
                self._warm()

    def _warm(self) -> None:
        texts: list[str] = []
        owner: list[int] = []
        for i, ri in enumerate(self._index):
            for t in self.rule_texts(ri.rule):
                texts.append(t)
                owner.append(i)
        self._texts, self._owner = texts, np.asarray(owner, dtype=np.int64)
        cache = self._cache_path(texts)
        if cache is not None and cache.exists():
            try:
                arr = np.load(cache)
                if arr.shape[0] == len(texts):
                    self._emb = arr.astype(np.float32)
                    return
            except (OSError, ValueError) as e:  # a corrupt cache file: recompute
                log.warning("ignoring policy embedding cache %s: %s", cache, e)
        emb = np.asarray(self.embedder.encode_passages(texts), dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(texts):
            raise ValueError(f"embedder returned shape {emb.shape} for {len(texts)} rule texts")
        self._emb = emb
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
                np.save(tmp, emb)
                tmp.replace(cache)
            except OSError as e:
                log.warning("cannot write policy embedding cache %s: %s", cache, e)

    def _cache_path(self, texts: list[str]) -> Path | None:
        if self._cache_dir is None:
            return None
        fp = getattr(self.embedder, "fingerprint", None)
        if not callable(fp):
            return None
        if self._cache_dir == "auto":
            from mad_guardrails.core.paths import home

            root = home() / "cache" / "policy-embeddings"
        else:
            root = Path(self._cache_dir)
        h = text_sha256(json.dumps([fp(), texts], sort_keys=True, default=str))[:20]
        return root / f"{h}.npy"

    # -- screening
    def screen(self, output: str, query: str | None = None, top: int = 5, *, mode: Mode = "hybrid",
               min_score: float = 0.0) -> list[ScreenHit]:
        """The ``top`` rules most likely to apply to ``output`` (given ``query``), best first."""
        scores = self.score_all(output, query, mode=mode)
        hits = [h for h in scores if h.score >= min_score]
        return hits[: max(0, top)]

    def score_all(self, output: str, query: str | None = None, *, mode: Mode = "hybrid") -> list[ScreenHit]:
        """Every enabled rule with its score, best first (ties keep pack order)."""
        w = self.weights
        if mode != "keyword" and self.embedder is None:
            mode = "keyword"
        text = "\n".join(x for x in (query, output) if x)
        norm = normalise_text(text)
        refs = find_refs(text)
        named = {pid for pid, rxs in self._aliases_by_pack.items() if any(rx.search(norm) for rx in rxs)}
        dense = self._dense(output, query) if mode != "keyword" else np.zeros(len(self._index), dtype=np.float32)
        hits: list[ScreenHit] = []
        for i, ri in enumerate(self._index):
            trig = [t for t, rx in ri.triggers if rx.search(norm)]
            facts = [name for name, rxs, f in ri.facts if any(rx.search(norm) for rx in rxs) and f.in_scope(text)]
            act = ri.rule.pack in named
            mrefs = sorted({ref for ref in refs for loc in ri.locals if _ref_matches(ref, loc)})
            parts = [w.w_trigger] * len(trig) + [w.w_fact] * len(facts)
            if act:
                parts.append(w.w_act)
            if mrefs:
                parts.append(w.w_ref if act or not (named - {ri.rule.pack}) else w.w_ref_no_act)
            kw = 1.0 - math.prod(1.0 - p for p in parts)
            d = float(dense[i])
            if mode == "hybrid":
                s = w.dense_weight * d + (1 - w.dense_weight) * kw
            elif mode == "dense":
                s = d
            else:
                s = kw
            hits.append(ScreenHit(rule=ri.rule, score=min(1.0, max(0.0, s)), dense=d, keyword=kw,
                                  matched_triggers=trig, matched_facts=facts, matched_refs=mrefs,
                                  act_mentioned=act))
        order = sorted(range(len(hits)), key=lambda k: (-hits[k].score, -hits[k].dense, k))
        return [hits[k] for k in order]

    def _dense(self, output: str, query: str | None) -> np.ndarray:
        w = self.weights
        self.warm()
        assert self._emb is not None and self._owner is not None
        pieces = _chunks(output, w.chunk_words, w.max_chunks) if output.strip() else []
        qtexts = pieces + ([query] if query else [])
        if not qtexts:
            return np.zeros(len(self._index), dtype=np.float32)
        q = np.asarray(self.embedder.encode_queries(qtexts), dtype=np.float32)  # type: ignore[union-attr]
        sims = q @ self._emb.T  # (n_queries, n_texts)
        if query:
            sims[-1] *= w.query_factor
        per_text = sims.max(axis=0)
        best = np.full(len(self._index), -1.0, dtype=np.float32)
        np.maximum.at(best, self._owner, per_text)
        return np.clip((best - w.dense_floor) / (w.dense_ceiling - w.dense_floor), 0.0, 1.0)

    def explain(self, hits: Sequence[ScreenHit]) -> str:
        lines = []
        for h in hits:
            why = []
            if h.matched_triggers:
                why.append("triggers: " + ", ".join(h.matched_triggers))
            if h.matched_facts:
                why.append("facts: " + ", ".join(h.matched_facts))
            if h.matched_refs:
                why.append("refs: " + ", ".join(h.matched_refs))
            lines.append(f"{h.score:.2f}  {h.rule.id}  (dense {h.dense:.2f}, keyword {h.keyword:.2f}"
                         + (f"; {'; '.join(why)}" if why else "") + ")")
        return "\n".join(lines)
