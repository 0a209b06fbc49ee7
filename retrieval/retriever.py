"""Hybrid retrieval over the regulatory index: dense (FAISS) + BM25, fused by RRF, optionally re-ranked, filtered
for relevance.

    >>> r = Retriever.from_config(load_config("offline").retrieval, "offline")        # doctest: +SKIP
    >>> res = r.search("How fast must an essential entity report a significant incident?", k=5)   # doctest: +SKIP
    >>> res.evidence[0].unit_id, res.abstained                                          # doctest: +SKIP
    ('nis2:art_23', False)

Modes (``retrieval.mode``): ``hybrid`` (default), ``dense``, ``bm25``. Every evidence carries its dense cosine, BM25
score, fused score and relevance score; chunks of one unit are collapsed to the best one. When no evidence passes
the relevance filter the result is ``abstained`` with ``reason="no relevant evidence"`` and no evidence.

**Clauses and rules are ranked apart.** Regulation units (``evidence`` = ``clauses``, ``kind="clause"``) and policy-rule
passages of the index (``rules``, ``kind="rule"``, at most ``rules_k``) are different things: rules never take a slot of
the clause top ``k``; a retrieved rule names the units it cites (``cites``) and, with ``rule_units``, pulls those the
clause top ``k`` lacks in after it. With a trained reranker (:mod:`~mad_guardrails.retrieval.rerank`) the clause
candidates are re-scored, the best clause of each act the reranker finds relevant is kept in the top ``k``
(``act_diversity``: an ambiguous question gets each plausible act) and ``relevance_filter: reranker`` abstains when
no clause scores relevant.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mad_guardrails.core.errors import ConfigError, IndexError_, InputError
from mad_guardrails.core.unit_ids import names_identifier
from mad_guardrails.core.units import Evidence, id_covers
from mad_guardrails.retrieval.config import RetrievalConfig
from mad_guardrails.retrieval.domain import DomainHead
from mad_guardrails.retrieval.fusion import ranked, rrf, weighted_fusion
from mad_guardrails.retrieval.index import RegIndex
from mad_guardrails.retrieval.relevance import RelevanceFilter
from mad_guardrails.retrieval.rerank import diversify_acts

Mode = Literal["hybrid", "dense", "bm25"]
NO_EVIDENCE = "no relevant evidence"
OFF_DOMAIN = "the question is not about the regulated domain (domain head)"
MAX_QUERY_CHARS = 20_000
RULE_DOC = "policy"
_PROVISIONS = re.compile(r"^Provisions:\s*(.+?)\.?\s*$", re.MULTILINE)


def rule_cites(text: str) -> list[str]:
    r"""The unit ids a policy-rule passage cites (its ``Provisions:`` line).

    >>> rule_cites("Notify within 24 hours.\nProvisions: nis2:art_23.1, nis2:art_23.4.a.\nKind: obligation")
    ['nis2:art_23.1', 'nis2:art_23.4.a']
    """
    m = _PROVISIONS.search(text)
    return [x.strip().rstrip(".") for x in m.group(1).split(",") if ":" in x] if m else []


class RetrievalResult(BaseModel):
    """What one query retrieved: evidence best first (rank from 1), or an abstention with its reason."""

    query: str
    mode: Mode
    evidence: list[Evidence] = Field(default_factory=list, description="clauses (regulation units), best first")
    rules: list[Evidence] = Field(default_factory=list, description="policy-rule passages, ranked apart")
    abstained: bool = False
    reason: str | None = None
    best_relevance: float | None = Field(default=None, description="highest relevance score seen (also on abstain)")
    domain: float | None = Field(default=None, description="the domain head's P(the query is about the corpus's "
                                 "domain); None without a head (retrieval.domain_head)")
    off_domain: bool = Field(default=False, description="the domain head reads the query as off-domain")
    timings: dict[str, float] = Field(default_factory=dict, description="milliseconds per stage")

    @property
    def ids(self) -> list[str]:
        return [e.unit_id for e in self.evidence]

    @property
    def clauses(self) -> list[Evidence]:
        return self.evidence

    def labelled(self) -> list[Evidence]:
        """Clauses then rules, one list (rules ranked after the clauses), as the graph hands them on."""
        n = len(self.evidence)
        return list(self.evidence) + [e.model_copy(update={"rank": n + e.rank}) for e in self.rules]


class Retriever:
    """Search an index: ``search``, ``search_many`` (one embedder batch), ``lookup`` (full text of a unit)."""

    def __init__(self, index: RegIndex, embedder, config: RetrievalConfig | None = None, *,
                 relevance: RelevanceFilter | None | Literal["auto"] = "auto", reranker=None, corpus=None,
                 domain: DomainHead | None | Literal["auto"] = "auto"):
        self.index = index
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.reranker = reranker
        self.domain: DomainHead | None = self._domain_from_config() if domain == "auto" else domain
        if relevance == "auto":
            relevance = self._relevance_from_config(index)
        self.relevance: RelevanceFilter | None = relevance
        self._corpus = corpus

    @classmethod
    def from_config(cls, cfg: RetrievalConfig, profile: str = "offline", *, index_dir: str | Path | None = None
                    ) -> Retriever:
        """Load embedder, index (``index_dir`` > ``cfg.index_dir`` > ``$GUARDRAILS_HOME/index/<profile>``),
        relevance filter and reranker as the config says."""
        from mad_guardrails.core import paths
        from mad_guardrails.retrieval.embedder import Embedder
        from mad_guardrails.retrieval.rerank import Reranker

        directory = Path(index_dir or cfg.index_dir or paths.index_dir(profile)).expanduser()
        if not (directory / "manifest.json").exists():  # fail before loading a model
            RegIndex.load(directory)
        embedder = Embedder.from_config(cfg.embedder)
        index = RegIndex.load(directory, embedder, use_gpu=cfg.use_gpu)
        return cls(index, embedder, cfg, reranker=Reranker.from_config(cfg))

    # -- public API ---------------------------------------------------------------------------------------------
    def search(self, query: str, k: int | None = None, *, mode: Mode | None = None,
               docs: Sequence[str] | None = None, under: Sequence[str] | None = None) -> RetrievalResult:
        """Top ``k`` evidence for ``query`` (``docs`` restricts to some doc ids, e.g. ``["nis2"]``; ``under`` to some
        units and their paragraphs, e.g. ``["gdpr:art_33"]``)."""
        return self.search_many([query], k, mode=mode, docs=docs, under=under)[0]

    def search_many(self, queries: Sequence[str], k: int | None = None, *, mode: Mode | None = None,
                    docs: Sequence[str] | None = None, under: Sequence[str] | None = None) -> list[RetrievalResult]:
        """Like :meth:`search` for many queries, embedding them in one batch."""
        t_all = time.perf_counter()
        queries = [self._check_query(q, i) for i, q in enumerate(queries)]
        if not queries:
            return []
        k = k or self.config.k
        mode = mode or self.config.mode
        if mode not in ("hybrid", "dense", "bm25"):
            raise InputError(f"unknown retrieval mode {mode!r}", fix="use hybrid, dense or bm25")
        if mode != "dense" and self.index.bm25 is None:
            raise IndexError_(f"mode {mode!r} needs BM25 but this index was built without it",
                              where=str(self.index.dir),
                              fix="rebuild with `mad-guardrails index build` or use --mode dense")
        need_dense = mode != "bm25" or self._relevance_needs_dense() or self.domain is not None
        allowed = self._allowed_rows(docs, under)
        n_cand = self.config.candidates
        if allowed is not None:
            n_cand = min(len(self.index), max(n_cand, n_cand * len(self.index) // max(1, len(allowed))))

        t = time.perf_counter()
        qv = self.embedder.encode_queries(list(queries)) if need_dense else None
        embed_ms = (time.perf_counter() - t) * 1000 / len(queries)
        domain_p = self.domain.proba(qv) if self.domain is not None and qv is not None else None
        dense_ms = 0.0
        if qv is not None and mode != "bm25":
            t = time.perf_counter()
            d_scores, d_rows = self.index.search(qv, n_cand)
            dense_ms = (time.perf_counter() - t) * 1000 / len(queries)
        else:
            d_scores = d_rows = None

        results = []
        for qi, query in enumerate(queries):
            timings = {"embed": embed_ms, "dense": dense_ms}
            dense_map: dict[int, float] = {}
            if d_rows is not None:
                for s, r in zip(d_scores[qi], d_rows[qi]):
                    if r >= 0 and (allowed is None or r in allowed):
                        dense_map[int(r)] = float(s)
            t = time.perf_counter()
            bm_all = self.index.bm25.scores(query) if self.index.bm25 is not None else None
            bm_map: dict[int, float] = {}
            if bm_all is not None and mode != "dense":
                bm_map = self._bm25_top(bm_all, n_cand, allowed)
            timings["bm25"] = (time.perf_counter() - t) * 1000

            t = time.perf_counter()
            if mode == "hybrid":
                w = [self.config.dense_weight, self.config.bm25_weight]
                if names_identifier(query):
                    # exact ids are BM25's strength and the dense model's blind spot: BM25 leads, by score (an
                    # exact id match stands far above the rest, which ranks alone would not show)
                    fused = weighted_fusion([dense_map, bm_map], weights=[min(w), max(w)])
                elif self.config.fusion == "rrf":
                    fused = rrf([list(dense_map), list(bm_map)], k=self.config.rrf_k, weights=w)
                else:
                    fused = weighted_fusion([dense_map, bm_map], weights=w)
            elif mode == "dense":
                fused = dict(dense_map)
            else:
                fused = dict(bm_map)
            if self.config.kind_weights:
                kw = self.config.kind_weights
                fused = {r: (s * kw.get(self.index.passages[r].kind, 1.0) if s > 0 else s) for r, s in fused.items()}
            spread = self.config.act_diversity is not None and self.config.act_pool > k
            limit = max(k, self.reranker.top if self.reranker else 0, self.config.act_pool if spread else 0)
            order = ranked(fused)
            if self._rules_apart:
                rows = self._dedupe([r for r in order if self.index.passages[r].doc != RULE_DOC], limit)
                rule_rows = self._dedupe([r for r in order if self.index.passages[r].doc == RULE_DOC],
                                         self.config.rules_k, cap=0) if self.config.rules_k else []
            else:  # a rules-only index (no regulation text): the rules are the evidence
                rows, rule_rows = self._dedupe(order, limit), []
            if qv is not None:
                missing = [r for r in rows + rule_rows if r not in dense_map]
                if missing:
                    vecs = self.index.vectors(missing)
                    dense_map.update({r: float(v) for r, v in zip(missing, vecs @ qv[qi])})

            def ev(rs: list[int]) -> list[Evidence]:
                return [self._evidence(r, rank, fused[r], dense_map.get(r), None if bm_all is None else float(bm_all[r]))
                        for rank, r in enumerate(rs, start=1)]

            evidence, rules = ev(rows), ev(rule_rows)
            timings["fuse"] = (time.perf_counter() - t) * 1000

            if self.reranker is not None and evidence:
                t = time.perf_counter()
                evidence = self.reranker.rerank(query, evidence)
                if self.reranker.calibrated and self.config.act_diversity is not None:
                    evidence = diversify_acts(evidence, k, self.config.act_diversity)
                timings["rerank"] = (time.perf_counter() - t) * 1000
            elif spread and self.relevance is not None and len(evidence) > k:  # no reranker: the filter's score
                pool = self.relevance.score(query, evidence[: self.config.act_pool])
                evidence = diversify_acts(pool, k, self.config.act_diversity, signal="relevance")
            evidence = evidence[:k]

            abstained, reason, best = False, None, None
            if self.relevance is not None:
                t = time.perf_counter()
                evidence = self.relevance.score(query, evidence)
                best = max((e.relevance for e in evidence if e.relevance is not None), default=None)
                if not self.relevance.is_relevant(evidence):
                    abstained, reason, evidence = True, NO_EVIDENCE, []
                if rules and not abstained:
                    rules = [e for e in self.relevance.score(query, rules) if e.relevance >= self.relevance.min_score]
                timings["relevance"] = (time.perf_counter() - t) * 1000
            elif not evidence:
                abstained, reason = True, NO_EVIDENCE
            p_domain = None if domain_p is None else round(float(domain_p[qi]), 4)
            off_domain = p_domain is not None and not self.domain.in_domain(p_domain)
            if off_domain and self.config.domain_abstain and not abstained:
                abstained, reason, evidence = True, OFF_DOMAIN, []
            if abstained:
                rules = []
            rules = [e.model_copy(update={"rank": i}) for i, e in enumerate(rules, 1)]
            if rules and self.config.rule_units:
                evidence = evidence + self._cited_units(rules, evidence, len(evidence))
            timings["total"] = sum(v for key, v in timings.items())
            results.append(RetrievalResult(
                query=query, mode=mode, evidence=evidence, rules=rules, abstained=abstained, reason=reason,
                best_relevance=best, domain=p_domain, off_domain=off_domain,
                timings={key: round(v, 3) for key, v in timings.items()},
            ))
        if len(results) > 1:  # wall time of the whole batch, for reference
            results[-1].timings["batch_total"] = round((time.perf_counter() - t_all) * 1000, 3)
        return results

    def lookup(self, unit_id: str) -> str | None:
        """Full text of a unit: its stored passage(s), else the corpus unit, else its indexed sub-units joined;
        None when the id is unknown."""
        rows = self.index.rows_of(unit_id)
        if rows:
            return "\n".join(self.index.passages[r].text for r in rows)
        corpus = self._get_corpus()
        if corpus is not None:
            try:
                unit = corpus.get(unit_id)
            except (KeyError, LookupError):
                unit = None
            if unit is not None:
                return unit.text
        parts = [p.text for p in self.index.passages if id_covers(unit_id, p.unit_id)]
        return "\n".join(parts) if parts else None

    # -- internals ----------------------------------------------------------------------------------------------
    @staticmethod
    def _check_query(q: Any, i: int) -> str:
        if not isinstance(q, str):
            raise InputError(f"query {i} is {type(q).__name__}, not text", fix="pass the question as a string")
        q = q.strip()
        if not q:
            raise InputError(f"query {i} is empty", fix="pass a non-empty question")
        if len(q) > MAX_QUERY_CHARS:
            raise InputError(f"query {i} has {len(q)} characters (max {MAX_QUERY_CHARS})",
                             fix="shorten the query (retrieve per sentence or per claim)")
        return q

    @property
    def _rules_apart(self) -> bool:
        """Rules are ranked apart when the index holds regulation text too (a rules-only index ranks its rules)."""
        return any(d != RULE_DOC for d in self.index.manifest.docs)

    def _domain_from_config(self) -> DomainHead | None:
        """The configured domain head, checked against this retriever's embedder (a head reads only the vectors of
        the embedder it was trained on)."""
        spec = self.config.domain_head
        if not spec:
            return None
        head = DomainHead.load(spec)
        fp = getattr(self.embedder, "fingerprint", None)
        why = head.mismatch(fp()) if callable(fp) else None
        if why:
            raise ConfigError(f"the domain head {spec!r} can't read this embedder's vectors: {why}",
                              where="retrieval.domain_head",
                              fix="set retrieval.domain_head: null for this embedder, or train a head for it "
                                  "(bench/domain_head.py)")
        return head

    def _relevance_from_config(self, index: RegIndex) -> RelevanceFilter | None:
        if self.config.relevance_filter == "reranker":
            from mad_guardrails.core.errors import ConfigError
            from mad_guardrails.retrieval.rerank import RerankerScorer

            if self.reranker is None or not self.reranker.calibrated:
                raise ConfigError("relevance_filter 'reranker' needs a trained reranker",
                                  where="retrieval.reranker", fix="set reranker: bundled:reranker-minilm, or use "
                                  "relevance_filter: threshold")
            return RelevanceFilter(RerankerScorer(self.reranker), self.config.relevance_min)
        return RelevanceFilter.from_config(self.config, index.manifest.relevance,
                                           index.manifest.embedder.get("model_id", ""))

    def _cited_units(self, rules: list[Evidence], clauses: list[Evidence], after: int) -> list[Evidence]:
        """Clause evidence for the units the rules cite that ``clauses`` lacks (score 0, ranked after them)."""
        have = {e.unit_id for e in clauses}
        out: list[Evidence] = []
        for rule in rules:
            for uid in rule.cites:
                if uid in have or any(id_covers(h, uid) for h in have):
                    continue
                rows = self.index.rows_of(uid)
                if not rows:
                    continue
                have.add(uid)
                out.append(self._evidence(rows[0], after + len(out) + 1, 0.0, None, None))
        return out

    def _relevance_needs_dense(self) -> bool:
        from mad_guardrails.retrieval.relevance import ThresholdScorer

        return self.relevance is not None and isinstance(self.relevance.scorer, ThresholdScorer)

    def _allowed_rows(self, docs: Sequence[str] | None, under: Sequence[str] | None = None) -> set[int] | None:
        if not docs and not under:
            return None
        wanted = set(docs or ())
        return {i for i, p in enumerate(self.index.passages) if (not wanted or p.doc in wanted)
                and (not under or any(id_covers(u, p.unit_id) for u in under))}

    def has_units(self, unit_ids: Sequence[str]) -> list[str]:
        """Those of ``unit_ids`` the index holds (as a passage or through their paragraphs)."""
        return [u for u in unit_ids if self._allowed_rows(None, [u])]

    @staticmethod
    def _bm25_top(scores: np.ndarray, n: int, allowed: set[int] | None) -> dict[int, float]:
        from mad_guardrails.retrieval.bm25 import top_k

        if allowed is not None:
            scores = scores.copy()
            mask = np.ones(scores.shape[0], dtype=bool)
            mask[list(allowed)] = False
            scores[mask] = 0.0
        rows, vals = top_k(scores, n)
        return {int(r): float(v) for r, v in zip(rows, vals)}

    def _dedupe(self, rows: list[int], limit: int, cap: int | None = None) -> list[int]:
        """One passage per unit id (chunks of a long unit collapse to the best), at most ``max_per_top`` per
        structural unit; what a cap skips fills the tail when too little is left."""
        seen: set[str] = set()
        per_top: dict[str, int] = {}
        cap = self.config.max_per_top if cap is None else cap
        out: list[int] = []
        spill: list[int] = []
        for r in rows:
            p = self.index.passages[r]
            if p.unit_id in seen:
                continue
            seen.add(p.unit_id)
            if cap and per_top.get(p.top, 0) >= cap:
                spill.append(r)
                continue
            per_top[p.top] = per_top.get(p.top, 0) + 1
            out.append(r)
            if len(out) >= limit:
                break
        return out + spill[: max(0, limit - len(out))]

    def _evidence(self, row: int, rank: int, fused: float, dense: float | None, bm25: float | None) -> Evidence:
        p = self.index.passages[row]
        rule = p.doc == RULE_DOC
        return Evidence(
            unit_id=p.unit_id, doc=p.doc, heading=p.heading, text=p.text, rank=rank, score=round(float(fused), 6),
            dense=None if dense is None else round(dense, 6), bm25=None if bm25 is None else round(bm25, 6),
            source="policy" if rule else "regulation", kind="rule" if rule else "clause",
            passage_id=p.passage_id, cites=rule_cites(p.text) if rule else [],
        )

    def _get_corpus(self):
        if self._corpus is None and self.config.corpus_dir:
            try:
                from mad_guardrails.retrieval.corpus import load_corpus

                self._corpus = load_corpus(self.config.corpus_dir)
            except Exception:  # noqa: BLE001 -- lookup falls back to the stored passages
                self._corpus = False
        return self._corpus or None


def merge_results(results: Sequence[RetrievalResult]) -> tuple[list[Evidence], bool, str | None]:
    """One labelled evidence list from several retrievals (windows of a long output): clauses, each unit once with
    its best score, best first, as many as the longest result had; then the rules the same way; abstained only when
    every retrieval abstained."""
    if len(results) == 1 and isinstance(results[0], RetrievalResult):
        r = results[0]
        return r.labelled(), bool(r.abstained), r.reason

    def best_of(lists: list[list[Evidence]], start: int = 0) -> list[Evidence]:
        best: dict[str, Evidence] = {}
        for ev in lists:
            for e in ev:
                if e.unit_id not in best or e.score > best[e.unit_id].score:
                    best[e.unit_id] = e
        n = max((len(ev) for ev in lists), default=0)
        ranked_ = list(lists[0]) if len(lists) == 1 else sorted(best.values(), key=lambda e: -e.score)[:n]
        return [e.model_copy(update={"rank": start + i}) for i, e in enumerate(ranked_, 1)]

    clauses = best_of([list(r.evidence) for r in results])
    rules = best_of([list(getattr(r, "rules", None) or []) for r in results], len(clauses))
    abstained = all(r.abstained for r in results)
    return clauses + rules, abstained, next((r.reason for r in results if r.reason), None) if abstained else None
