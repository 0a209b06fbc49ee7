"""Is a question about the corpus's domain at all? A logistic head on the retriever's own query embedding.

The dense-threshold filter (:mod:`~mad_guardrails.retrieval.relevance`) asks whether the *best passage* is close
enough; everyday questions that share one word with the acts ("how do I kill a Python process?", "what does a stage
actor do?" -- NIST's "AI actors") often pass it. This head asks the question itself: trained on the project's own
regulatory questions (people-written and generated, train articles only) against everyday, off-topic and harmful
requests (train splits only), it gives P(about the regulated domain) from the 384 numbers the retriever computes
anyway -- one dot product, no model call. It is tied to the embedder it was trained on (model and adapter hash): with
another embedder the head does not apply and the retriever says so.

    >>> import numpy as np
    >>> head = DomainHead(weights=[1.0, -1.0], bias=0.0, threshold=0.2, embedder={"model_id": "m"})
    >>> [float(round(p, 3)) for p in head.proba(np.array([[2.0, 0.0], [0.0, 2.0]]))]
    [0.881, 0.119]
    >>> [head.in_domain(p) for p in head.proba(np.array([[2.0, 0.0], [0.0, 2.0]]))]
    [True, False]

Used by the retriever (``RetrievalResult.domain``) when ``retrieval.domain_head`` is set (``bundled``: the head in
``retrieval/adapters/domain-head/``); the cascade asks it whether a case is about regulation at all
(``guardrails.graph.regulatory_context``). Trained by ``bench/domain_head.py`` (figures in BENCHMARKS.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.paths import package_dir

BUNDLED_DOMAIN_HEAD = package_dir("mad_guardrails.retrieval") / "adapters" / "domain-head" / "head.json"
# what in the embedder's fingerprint changes the query vectors the head reads
_TIED = ("model_id", "adapter", "dim", "truncate_dim", "normalize", "pooling", "query_prompt")


class DomainHead(BaseModel):
    """P(in domain) = sigmoid(w · query_embedding + b); in domain when P ≥ ``threshold``."""

    model_config = ConfigDict(extra="forbid")

    weights: list[float]
    bias: float
    threshold: float = Field(ge=0.0, le=1.0, description="P below this reads as 'not about the domain'")
    embedder: dict[str, Any] = Field(description="the fingerprint of the embedder whose query vectors it reads")
    trained_on: dict[str, Any] = Field(default_factory=dict, description="counts and sources of the training queries")
    calibration: dict[str, Any] = Field(default_factory=dict, description="how the threshold was chosen")

    @classmethod
    def load(cls, spec: str = "bundled") -> DomainHead:
        """``bundled`` (the shipped head) or the path of a ``head.json``."""
        path = BUNDLED_DOMAIN_HEAD if spec == "bundled" else Path(spec).expanduser()
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"no domain head at {path} ({e.strerror})", where="retrieval.domain_head",
                              fix="use 'bundled', the path of a head.json written by bench/domain_head.py, or null "
                                  "(no domain head)") from e
        except ValueError as e:
            raise ConfigError(f"{path} is not a domain head ({str(e).splitlines()[0]})", where="retrieval.domain_head",
                              fix="retrain it with bench/domain_head.py") from e

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.model_dump(), indent=1) + "\n", encoding="utf-8")
        return p

    def mismatch(self, fingerprint: dict[str, Any]) -> str | None:
        """Why the head can't read this embedder's vectors (``None`` when it can)."""
        diff = [k for k in _TIED if k in self.embedder and self.embedder.get(k) != fingerprint.get(k)]
        return f"trained on another embedder ({', '.join(diff)} differ)" if diff else None

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """P(in domain) per row of ``vectors`` (query embeddings, as the retriever computes them)."""
        z = np.asarray(vectors, dtype=np.float64) @ np.asarray(self.weights, dtype=np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def in_domain(self, p: float) -> bool:
        return bool(p >= self.threshold)
