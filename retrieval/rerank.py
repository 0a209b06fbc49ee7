"""Optional second stage: a sentence-transformers ``CrossEncoder`` re-scores the top fused candidates.

Off unless ``retrieval.reranker`` names a model (a local folder or a hub id; none ships offline). A model that
cannot be loaded fails fast with :class:`~mad_guardrails.core.errors.ModelUnavailableError` -- it is never silently skipped.

    >>> Reranker.from_config(RetrievalConfig()) is None      # off by default
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.units import Evidence
from mad_guardrails.retrieval.config import RetrievalConfig


def load_cross_encoder(spec: str, *, device: str = "auto", what: str = "retrieval.reranker") -> Any:
    """Load a CrossEncoder from a local folder or hub id (hub: fail fast when offline)."""
    from mad_guardrails.retrieval.embedder import _auto_device, resolve_model

    resolved = resolve_model(spec, what=what)
    try:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(str(resolved.path), device=_auto_device(device), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelUnavailableError(
            f"could not load cross-encoder {spec!r} ({type(e).__name__}: {e})", where=what,
            fix="point at a sentence-transformers CrossEncoder folder, or set it to null to switch the stage off",
        ) from e


class Reranker:
    """Re-orders evidence by cross-encoder score (the fused score is kept; ``score`` becomes the CE score)."""

    def __init__(self, model: Any, model_id: str, top: int = 20):
        self.model = model
        self.model_id = model_id
        self.top = top

    @classmethod
    def from_config(cls, cfg: RetrievalConfig) -> Reranker | None:
        if not cfg.reranker:
            return None
        return cls(load_cross_encoder(cfg.reranker, device=cfg.embedder.device), cfg.reranker, cfg.rerank_top)

    def rerank(self, query: str, evidence: Sequence[Evidence]) -> list[Evidence]:
        """The first ``top`` items re-scored and re-ordered; the rest keep their order after them."""
        head, tail = list(evidence[: self.top]), list(evidence[self.top :])
        if not head:
            return list(evidence)
        scores = np.asarray(self.model.predict([(query, e.text) for e in head], show_progress_bar=False))
        if scores.ndim == 2:
            scores = scores[:, -1]
        order = np.argsort(-scores, kind="stable")
        out = [head[i].model_copy(update={"score": float(scores[i])}) for i in order] + tail
        return [e.model_copy(update={"rank": r}) for r, e in enumerate(out, start=1)]
