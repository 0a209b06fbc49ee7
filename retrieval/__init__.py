"""Regulatory retrieval: corpus ingestion into citable units, embedder, FAISS/BM25 hybrid index, relevance filter."""

from retrieval.units import DOC_IDS, Evidence, Unit, id_covers, split_unit_id

__all__ = ["DOC_IDS", "Evidence", "Unit", "id_covers", "split_unit_id"]
