"""Second stage: a cross-encoder re-scores the top fused clause candidates.

Two kinds of model:

* ``bundled:reranker-minilm`` (or a folder with ``adapter_config.json`` + ``relevance_head.json``): the project's
  trained clause reranker -- the bundled all-MiniLM-L6-v2 read as a cross-encoder with a LoRA adapter and a one-logit
  head (the same machinery as the relevance head, :class:`~mad_guardrails.retrieval.relevance_head.RelevanceHead`),
  trained listwise on synthetic queries with hard negatives from the retriever's own wrong hits
  (``bench/gpu/rerank/``). Its output is P(relevant) (sigmoid of the logit, trained with a pointwise term too), stored
  on each evidence as ``rerank``, so it can also decide abstention (``retrieval.relevance_filter: reranker``). On CPU it
  runs int8 (dynamic quantization of the linear layers) unless ``rerank_int8: false``.
* any sentence-transformers ``CrossEncoder`` (a local folder or a hub id).

A model that cannot be loaded fails fast with :class:`~mad_guardrails.core.errors.ModelUnavailableError` -- it is
never silently skipped.

    >>> Reranker.from_config(RetrievalConfig()) is None      # off by default
    True
    >>> bundled_reranker_dir("bundled:reranker-minilm").name
    'reranker-minilm'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mad_guardrails.core.errors import ConfigError, ModelUnavailableError
from mad_guardrails.core.units import Evidence
from mad_guardrails.retrieval.config import RetrievalConfig

ADAPTERS_DIR = Path(__file__).with_name("adapters")
BUNDLED_RERANKER = "bundled:reranker-minilm"


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


def bundled_reranker_dir(spec: str) -> Path:
    """``bundled:<name>`` → ``retrieval/adapters/<name>`` (the folder need not exist yet)."""
    return ADAPTERS_DIR / spec.split(":", 1)[1]


def head_dir(spec: str) -> Path | None:
    """The trained-head folder a spec names (``bundled:<name>`` or a folder with ``relevance_head.json``), else None."""
    from mad_guardrails.retrieval.relevance_head import is_head_spec

    if spec.startswith("bundled:") and spec != "bundled:all-MiniLM-L6-v2":
        d = bundled_reranker_dir(spec)
        if not (d / "adapter_config.json").exists():
            raise ConfigError(f"reranker {spec!r} requested but {d} holds no trained adapter",
                              where="retrieval.reranker", fix="train it (bench/gpu/rerank/README.md) or set null")
        return d
    return Path(spec).expanduser() if spec != "bundled" and is_head_spec(spec) else None


def quantize_int8(model: Any) -> Any:
    """``model`` with its linear layers quantized to int8 (dynamic quantization: the CPU reranker's form)."""
    import warnings

    import torch

    with warnings.catch_warnings():  # torch.ao's "migrate to torchao" notices: the eager API still works
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class HeadModel:
    """A trained :class:`RelevanceHead` as a reranker model: ``proba(pairs)``, int8 on CPU when asked."""

    def __init__(self, directory: Path, device: str = "auto", *, int8: bool = True, max_length: int | None = None):
        from mad_guardrails.retrieval.relevance_head import RelevanceHead

        self.head = RelevanceHead.load(str(directory), device=device)
        if max_length:
            self.head.max_length = max_length
        if int8 and self.head.device == "cpu":
            self.head.model = quantize_int8(self.head.model)

    def proba(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.head.proba(pairs, batch_size=16)  # length-sorted batches: less padding


class Reranker:
    """Re-orders evidence by cross-encoder score (``score`` becomes the CE score; a trained head also fills
    ``rerank`` = P(relevant))."""

    def __init__(self, model: Any, model_id: str, top: int = 20):
        self.model = model
        self.model_id = model_id
        self.top = top

    @property
    def calibrated(self) -> bool:
        """True when scores are probabilities the reranker was trained to give (abstention, act diversity)."""
        return isinstance(self.model, HeadModel)

    @classmethod
    def from_config(cls, cfg: RetrievalConfig) -> Reranker | None:
        if not cfg.reranker:
            return None
        d = head_dir(cfg.reranker)
        if d is not None:
            model: Any = HeadModel(d, cfg.embedder.device, int8=cfg.rerank_int8, max_length=cfg.rerank_max_length)
        else:
            model = load_cross_encoder(cfg.reranker, device=cfg.embedder.device)
        return cls(model, cfg.reranker, cfg.rerank_top)

    def scores(self, query: str, evidence: Sequence[Evidence]) -> np.ndarray:
        """Scores of (query, evidence) pairs (a trained head: P(relevant); a CrossEncoder: its raw score)."""
        from mad_guardrails.retrieval.relevance_head import pair_text

        if not evidence:
            return np.zeros(0)
        if isinstance(self.model, HeadModel):
            return self.model.proba([(query, pair_text(e.heading, e.text)) for e in evidence])
        s = np.asarray(self.model.predict([(query, e.text) for e in evidence], show_progress_bar=False))
        return s[:, -1] if s.ndim == 2 else s

    def rerank(self, query: str, evidence: Sequence[Evidence]) -> list[Evidence]:
        """The first ``top`` items re-scored and re-ordered; the rest keep their order after them."""
        head, tail = list(evidence[: self.top]), list(evidence[self.top :])
        if not head:
            return list(evidence)
        scores = self.scores(query, head)
        order = np.argsort(-scores, kind="stable")
        prob = self.calibrated
        out = [head[i].model_copy(update={"score": round(float(scores[i]), 6),
                                          "rerank": round(float(scores[i]), 6) if prob else None}) for i in order]
        return [e.model_copy(update={"rank": r}) for r, e in enumerate(out + tail, start=1)]


class RerankerScorer:
    """:class:`~mad_guardrails.retrieval.relevance.RelevanceScorer` reading the reranker's P(relevant) off the
    evidence (scoring what the reranker has not seen), for ``relevance_filter: reranker``."""

    name = "reranker"

    def __init__(self, reranker: Reranker):
        self.reranker = reranker

    def score(self, query: str, evidence: Sequence[Evidence]) -> list[float]:
        missing = [i for i, e in enumerate(evidence) if e.rerank is None]
        vals = [e.rerank for e in evidence]
        if missing:
            fresh = self.reranker.scores(query, [evidence[i] for i in missing])
            for i, v in zip(missing, fresh):
                vals[i] = float(v)
        return [float(v) for v in vals]


def diversify_acts(evidence: Sequence[Evidence], k: int, min_score: float, signal: str = "rerank") -> list[Evidence]:
    """The first ``k`` of ``evidence`` (best first), changed so that every act whose best clause has
    ``signal`` (``rerank`` or ``relevance``) ``≥ min_score`` has that clause in them: a missing act's best takes the
    place of the lowest item of an act that has more than one and goes after the items kept (their order is kept).
    Items it displaces follow.

    >>> ev = [Evidence(unit_id=f"{d}:art_{i}", doc=d, text="t", rank=i, score=s, rerank=s)
    ...       for i, (d, s) in enumerate([("a", .9), ("a", .8), ("a", .7), ("b", .6)], 1)]
    >>> [e.unit_id for e in diversify_acts(ev, 3, 0.5)]
    ['a:art_1', 'a:art_2', 'b:art_4', 'a:art_3']
    """
    ev = list(evidence)
    top, rest = ev[:k], ev[k:]
    present = {e.doc for e in top}
    wanted = []
    for e in rest:
        v = getattr(e, signal)
        if e.doc not in present and v is not None and v >= min_score:
            present.add(e.doc)
            wanted.append(e)
    for w in wanted:
        counts: dict[str, int] = {}
        for e in top:
            counts[e.doc] = counts.get(e.doc, 0) + 1
        victim = next((i for i in range(len(top) - 1, 0, -1) if counts[top[i].doc] > 1), None)
        if victim is None:
            break
        rest.insert(0, top.pop(victim))
        rest.remove(w)
        top.append(w)
    return [e.model_copy(update={"rank": r}) for r, e in enumerate(top + rest, start=1)]
