"""Regulatory retrieval: corpus ingestion into citable units, embedder, FAISS/BM25 hybrid index, relevance filter."""

from mad_guardrails.core.units import DOC_IDS, Evidence, Unit, id_covers, split_unit_id

__all__ = ["DOC_IDS", "Evidence", "Unit", "id_covers", "split_unit_id"]
