"""The relevance filter: say "no relevant evidence" instead of handing the agents the nearest junk.

Default scorer (:class:`ThresholdScorer`): each evidence gets ``relevance = sigmoid((dense_cosine - t) / τ)``, so
0.5 sits exactly on the threshold ``t``. The retrieval abstains when no evidence reaches ``relevance_min`` (0.5).
``t`` and ``τ`` are *calibrated* (:func:`calibrate_threshold`) on the best-hit dense cosine of in-domain queries (the
dev split of ``evals/data/regulatory_queries.jsonl``) against off-topic queries (``evals/data/offtopic_queries.jsonl``
dev split), and stored in the index manifest (``manifest.json → relevance``). Fused RRF scores are rank-based and
carry no absolute relevance, so the dense cosine is the signal.

The threshold is biased towards keeping regulatory queries (a missed abstention costs less than dropping evidence
the debate needs): it must pass ≥ ``min_in_domain_pass`` of the in-domain dev queries.

Pluggable: anything with ``score(query, evidence) -> list[float]`` in [0, 1] is a :class:`RelevanceScorer`. With
``retrieval.relevance_filter: cross-encoder``, ``retrieval.relevance_model`` names the model that replaces the
threshold: the project's trained head (``bundled`` or a folder with ``relevance_head.json``, loaded by
:mod:`mad_guardrails.retrieval.relevance_head`) or any sentence-transformers ``CrossEncoder`` (:class:`CrossEncoderScorer`).

    >>> cal = calibrate_threshold([0.62, 0.55, 0.71, 0.48], [0.12, 0.2, 0.25])
    >>> 0.25 < cal.threshold < 0.48, ThresholdScorer(cal).score_values([0.6, 0.1])[0] > 0.5
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field

from mad_guardrails.core.hashing import text_sha256

if TYPE_CHECKING:
    from mad_guardrails.core.units import Evidence
    from mad_guardrails.retrieval.config import RetrievalConfig

#: Uncalibrated fallback thresholds on the dense cosine (per known model family), used only when an index has no
#: calibration; ``mad-guardrails index build`` calibrates whenever the query sets are present.
DEFAULT_THRESHOLDS = {"minilm": 0.30, "qwen3": 0.40, "e5": 0.75}
DEFAULT_THRESHOLD = 0.35


class RelevanceCalibration(BaseModel):
    """A calibrated dense-cosine threshold, as stored in ``manifest.json``."""

    method: Literal["threshold"] = "threshold"
    signal: Literal["dense"] = "dense"
    threshold: float
    temperature: float = Field(gt=0, description="τ of sigmoid((cosine - threshold) / τ)")
    calibrated: bool = Field(description="False = a model-family default, not fitted on queries")
    n_in_domain: int = 0
    n_off_topic: int = 0
    in_domain_pass_rate: float | None = None
    off_topic_abstain_rate: float | None = None
    source: str = ""
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))


def default_calibration(model_id: str) -> RelevanceCalibration:
    low = model_id.lower()
    t = next((v for k, v in DEFAULT_THRESHOLDS.items() if k in low), DEFAULT_THRESHOLD)
    return RelevanceCalibration(threshold=t, temperature=0.05, calibrated=False,
                                source=f"default for {model_id} (not calibrated)")


def is_dev_query(query_id: str, dev_fraction: float = 0.3) -> bool:
    """Deterministic dev/test split by query id (sha256): ~``dev_fraction`` of ids are dev.

    >>> sum(is_dev_query(f"q{i:03d}") for i in range(1000)) in range(250, 350)
    True
    """
    h = int(text_sha256(query_id)[:8], 16)
    return (h % 1000) < dev_fraction * 1000


def calibrate_threshold(
    in_domain: Sequence[float],
    off_topic: Sequence[float],
    *,
    min_in_domain_pass: float = 0.98,
    position: float = 0.4,
    source: str = "",
) -> RelevanceCalibration:
    """Fit ``t`` on best-hit cosines: maximise (in-domain pass rate + off-topic abstain rate) among thresholds that
    pass ≥ ``min_in_domain_pass`` of in-domain queries (ties → the widest gap between neighbouring scores), and sit
    ``position`` of the way into that gap from its low end (biased towards keeping evidence). ``τ`` = a sixth of the
    gap between the in-domain and off-topic medians."""
    ins = np.sort(np.asarray(in_domain, dtype=np.float64))
    offs = np.sort(np.asarray(off_topic, dtype=np.float64))
    if len(ins) == 0 or len(offs) == 0:
        raise ValueError("calibration needs at least one in-domain and one off-topic score")
    # a threshold t passes scores >= t; every t in (c[i-1], c[i]] classifies like c[i]
    cands = np.unique(np.concatenate([ins, offs]))
    best: tuple[float, float, float] | None = None  # (objective, width, threshold)
    for i, c in enumerate(cands):
        tpr = float(np.mean(ins >= c))
        if tpr + 1e-12 < min_in_domain_pass:
            continue
        obj = tpr + float(np.mean(offs < c))
        lo = float(cands[i - 1]) if i > 0 else float(c) - 0.05
        width = float(c) - lo
        t = lo + position * width
        if best is None or obj > best[0] + 1e-12 or (abs(obj - best[0]) <= 1e-12 and width > best[1]):
            best = (obj, width, t)
    threshold = best[2] if best is not None else float(ins[0]) - 1e-6
    gap = float(np.median(ins) - np.median(offs))
    temperature = max(0.01, gap / 6.0)
    return RelevanceCalibration(
        threshold=round(threshold, 5),
        temperature=round(temperature, 5),
        calibrated=True,
        n_in_domain=len(ins),
        n_off_topic=len(offs),
        in_domain_pass_rate=float(np.mean(ins >= threshold)),
        off_topic_abstain_rate=float(np.mean(offs < threshold)),
        source=source,
    )


# --------------------------------------------------------------------------------------------------------------------
# scorers
# --------------------------------------------------------------------------------------------------------------------


@runtime_checkable
class RelevanceScorer(Protocol):
    """Scores (query, evidence) pairs in [0, 1]; ≥ ``relevance_min`` means relevant."""

    name: str

    def score(self, query: str, evidence: Sequence[Evidence]) -> list[float]: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


class ThresholdScorer:
    """``sigmoid((dense - t) / τ)`` per evidence; evidence without a dense score gets 0 (fail closed)."""

    name = "threshold"

    def __init__(self, calibration: RelevanceCalibration):
        self.calibration = calibration

    def score_values(self, dense: Sequence[float | None]) -> list[float]:
        c = self.calibration
        vals = np.array([np.nan if d is None else d for d in dense], dtype=np.float64)
        out = _sigmoid((vals - c.threshold) / c.temperature)
        return [0.0 if math.isnan(v) else float(v) for v in out]

    def score(self, query: str, evidence: Sequence[Evidence]) -> list[float]:
        return self.score_values([e.dense for e in evidence])


class CrossEncoderScorer:
    """A trained cross-encoder relevance head (sentence-transformers ``CrossEncoder``, one logit or two classes)."""

    name = "cross-encoder"

    def __init__(self, model_spec: str, device: str = "auto"):
        from mad_guardrails.retrieval.rerank import load_cross_encoder

        self.model_spec = model_spec
        self.model = load_cross_encoder(model_spec, device=device, what="retrieval.relevance_model")

    def score(self, query: str, evidence: Sequence[Evidence]) -> list[float]:
        if not evidence:
            return []
        raw = np.asarray(self.model.predict([(query, e.text) for e in evidence], show_progress_bar=False))
        if raw.ndim == 2:  # two classes → P(relevant)
            ex = np.exp(raw - raw.max(axis=1, keepdims=True))
            return (ex[:, -1] / ex.sum(axis=1)).astype(float).tolist()
        if raw.min() < 0 or raw.max() > 1:  # logits
            raw = _sigmoid(raw)
        return raw.astype(float).tolist()


class RelevanceFilter:
    """Fills ``Evidence.relevance`` and decides whether a result has any relevant evidence."""

    def __init__(self, scorer: RelevanceScorer, min_score: float = 0.5):
        self.scorer = scorer
        self.min_score = min_score

    @classmethod
    def from_config(cls, cfg: RetrievalConfig, calibration: RelevanceCalibration | None,
                    model_id: str = "") -> RelevanceFilter | None:
        """The filter the config asks for (None for ``relevance_filter: none``)."""
        if cfg.relevance_filter == "none":
            return None
        if cfg.relevance_filter == "cross-encoder":
            if not cfg.relevance_model:
                from mad_guardrails.core.errors import ConfigError

                raise ConfigError("relevance_filter is 'cross-encoder' but no relevance_model is set",
                                  where="retrieval.relevance_model",
                                  fix="set the path of the trained relevance head, or use relevance_filter: threshold")
            from mad_guardrails.retrieval.relevance_head import HeadScorer, is_head_spec

            if is_head_spec(cfg.relevance_model):  # the trained LoRA relevance head (retrieval/relevance_head.py)
                return cls(HeadScorer(cfg.relevance_model, device=cfg.embedder.device), cfg.relevance_min)
            try:  # the project's trained head (LoRA MiniLM cross-encoder), when the spec names one
                from mad_guardrails.retrieval.relevance_head import HeadScorer, is_head_spec
            except ImportError:  # pragma: no cover - head module absent
                is_head_spec = None
            if is_head_spec is not None and is_head_spec(cfg.relevance_model):
                return cls(HeadScorer(cfg.relevance_model, device=cfg.embedder.device), cfg.relevance_min)
            return cls(CrossEncoderScorer(cfg.relevance_model, device=cfg.embedder.device), cfg.relevance_min)
        return cls(ThresholdScorer(calibration or default_calibration(model_id)), cfg.relevance_min)

    def score(self, query: str, evidence: list[Evidence]) -> list[Evidence]:
        """Copies of ``evidence`` with ``relevance`` filled."""
        vals = self.scorer.score(query, evidence)
        return [e.model_copy(update={"relevance": round(float(v), 6)}) for e, v in zip(evidence, vals)]

    def is_relevant(self, evidence: Sequence[Evidence]) -> bool:
        """True when some (scored) evidence reaches ``min_score``."""
        return any(e.relevance is not None and e.relevance >= self.min_score for e in evidence)

    def describe(self) -> str:
        if isinstance(self.scorer, ThresholdScorer):
            c = self.scorer.calibration
            return f"threshold cosine ≥ {c.threshold:.3f} ({'calibrated' if c.calibrated else 'default'})"
        return f"{self.scorer.name} (min {self.min_score})"


# --------------------------------------------------------------------------------------------------------------------
# calibration on the query sets
# --------------------------------------------------------------------------------------------------------------------

#: In-domain queries (with gold ids) and off-topic queries (no relevant passage) used for calibration / evaluation.
def query_data_dir():
    from mad_guardrails.core.paths import evals_data_dir

    return evals_data_dir()


IN_DOMAIN_FILE = "regulatory_queries.jsonl"
OFF_TOPIC_FILES = ("offtopic_queries.jsonl", "offtopic_generic.jsonl")


def read_query_rows(path) -> list[dict]:
    """Rows of a query JSONL file; a bad line raises InputError naming file and line."""
    from mad_guardrails.core.errors import InputError
    from mad_guardrails.core.records import iter_jsonl

    rows = []
    for n, row in iter_jsonl(path, fix="correct that line"):
        if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not row["query"].strip():
            raise InputError(f"line {n} has no 'query' string", where=str(path),
                             fix='each line must be an object like {"id": "q001", "query": "..."}')
        row.setdefault("id", f"line{n}")
        rows.append(row)
    return rows


def calibration_queries(docs: set[str] | None = None, split: str = "dev", data_dir=None
                        ) -> tuple[list[str], list[str], str]:
    """(in-domain queries, off-topic queries, description) of one split; in-domain rows are kept only when their
    act is among ``docs`` (the acts in the index). Missing files give empty lists."""
    from pathlib import Path

    d = Path(data_dir) if data_dir else query_data_dir()
    want_dev = split == "dev"
    ins: list[str] = []
    offs: list[str] = []
    used = []
    if (d / IN_DOMAIN_FILE).exists():
        for r in read_query_rows(d / IN_DOMAIN_FILE):
            doc = r.get("doc") or (r.get("gold") or [":"])[0].split(":")[0]
            if (docs is None or doc in docs) and is_dev_query(r["id"]) == want_dev:
                ins.append(r["query"])
        used.append(IN_DOMAIN_FILE)
    for name in OFF_TOPIC_FILES:
        if (d / name).exists():
            offs += [r["query"] for r in read_query_rows(d / name) if is_dev_query(r["id"]) == want_dev]
            used.append(name)
    return ins, offs, f"{split} split of {', '.join(used)}" if used else "no query files"


def best_dense_scores(index, embedder, queries: list[str]) -> list[float]:
    """Cosine of the best dense hit per query."""
    if not queries:
        return []
    scores, _ = index.search(embedder.encode_queries(queries), 1)
    return [float(s) for s in scores[:, 0]]


def calibrate_index(index, embedder, *, data_dir=None, min_in_domain_pass: float = 0.98) -> RelevanceCalibration:
    """Calibrate the threshold for ``index`` on the dev split of the query sets (default calibration when the
    files or an index act are missing)."""
    docs = set(index.manifest.docs)
    ins, offs, source = calibration_queries(docs, "dev", data_dir)
    if len(ins) < 5 or len(offs) < 5:
        cal = default_calibration(embedder.model_id)
        cal.source += f" — too few calibration queries ({len(ins)} in-domain, {len(offs)} off-topic in {source})"
        return cal
    return calibrate_threshold(best_dense_scores(index, embedder, ins), best_dense_scores(index, embedder, offs),
                               min_in_domain_pass=min_in_domain_pass, source=source)
