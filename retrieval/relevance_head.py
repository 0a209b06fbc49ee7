"""The trained relevance head: a MiniLM cross-encoder (query and passage read together) with a LoRA adapter and a
one-logit classifier, saying relevant (1) / not relevant (0) per (query, passage) with no threshold to tune
(P(relevant) ≥ 0.5, the decision boundary it was trained for). Trained by ``mad-guardrails train relevance``
(:mod:`mad_guardrails.retrieval.training.relevance_trainer`); shipped, when it beats the dense-threshold filter, as
``retrieval/adapters/relevance-minilm/`` (adapter + classifier, a few MB; the 90 MB base is the bundled MiniLM).

Used by :class:`mad_guardrails.retrieval.relevance.RelevanceFilter` when ``retrieval.relevance_filter: cross-encoder`` and
``retrieval.relevance_model`` is ``bundled`` or a folder with ``adapter_config.json``.

    >>> head = RelevanceHead.load("bundled")                                  # doctest: +SKIP
    >>> head.predict([("How fast must we report a breach?", "In the case of a personal data breach ...")])  # doctest: +SKIP
    [1]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mad_guardrails.core.errors import ConfigError, ModelUnavailableError
from mad_guardrails.core.paths import package_dir

if TYPE_CHECKING:
    from mad_guardrails.core.units import Evidence

BUNDLED_RELEVANCE_DIR = package_dir("mad_guardrails.retrieval") / "adapters" / "relevance-minilm"
HEAD_CONFIG = "relevance_head.json"


def is_head_spec(spec: str | None) -> bool:
    """True for ``bundled`` or a folder holding a trained head (``adapter_config.json`` + ``relevance_head.json``)."""
    if not spec:
        return False
    if spec == "bundled":
        return True
    p = Path(spec).expanduser()
    return (p / "adapter_config.json").exists() and (p / HEAD_CONFIG).exists()


def resolve_head_dir(spec: str) -> Path:
    if spec == "bundled":
        if not (BUNDLED_RELEVANCE_DIR / "adapter_config.json").exists():
            raise ConfigError(
                "relevance_model 'bundled' requested but no trained relevance head ships in this build",
                where="retrieval.relevance_model", fix="train one (`mad-guardrails train relevance`) and point at its "
                "folder, or use relevance_filter: threshold")
        return BUNDLED_RELEVANCE_DIR
    p = Path(spec).expanduser()
    if not (p / "adapter_config.json").exists() or not (p / HEAD_CONFIG).exists():
        raise ConfigError("not a relevance-head folder (needs adapter_config.json and relevance_head.json)",
                          where=f"retrieval.relevance_model={spec}",
                          fix="point at the folder written by `mad-guardrails train relevance`")
    return p


def pair_text(heading: str, text: str) -> str:
    """What the head reads of a passage: heading line + text (as it was trained)."""
    return f"{heading}\n{text}" if heading else text


class RelevanceHead:
    """Base MiniLM + LoRA adapter (merged) + classifier; :meth:`proba` gives P(relevant)."""

    def __init__(self, model: Any, tokenizer: Any, device: str, max_length: int, info: dict[str, Any]):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.info = info

    @classmethod
    def load(cls, spec: str = "bundled", *, device: str = "auto") -> RelevanceHead:
        from mad_guardrails.retrieval.embedder import _auto_device, resolve_model

        d = resolve_head_dir(spec)
        try:
            info = json.loads((d / HEAD_CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ConfigError(f"{HEAD_CONFIG} is unreadable ({e})", where=str(d), fix="retrain the head") from e
        dev = _auto_device(device)
        base = resolve_model(info.get("base_model", "bundled:all-MiniLM-L6-v2"), what="retrieval.relevance_model")
        try:
            model, tok = load_base_classifier(base.path, num_layers=info.get("num_layers"))
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(d)).merge_and_unload()
        except Exception as e:  # noqa: BLE001
            raise ModelUnavailableError(f"could not load the relevance head ({type(e).__name__}: {e})", where=str(d),
                                        fix="retrain it for this base model, or use relevance_filter: threshold") from e
        model.to(dev).eval()
        return cls(model, tok, dev, int(info.get("max_length", 256)), info)

    def proba(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """P(relevant) per pair, in the order given. Pairs run in batches of similar length (sorted by characters),
        so short passages are not padded to the longest: on 2 CPU cores 50 candidates in batches of 16 take ~20 %
        less time than one padded batch (BENCHMARKS.md, "Retrieval: reranker")."""
        import torch

        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        out = np.zeros(len(pairs), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                enc = self.tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="only_second",
                                     max_length=self.max_length, padding=True, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits.float().reshape(-1)
                out[idx] = torch.sigmoid(logits).cpu().numpy()
        return out

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """1 (relevant) / 0 (not relevant) per pair."""
        return [int(p >= 0.5) for p in self.proba(pairs)]


def load_base_classifier(path: str | Path, num_layers: int | None = None):
    """The base encoder as a one-logit sequence classifier (classifier randomly initialised; pooler as saved);
    ``num_layers`` keeps only the first encoder layers (a head trained on a truncated encoder)."""
    import warnings

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    layer_kw = {"num_hidden_layers": int(num_layers)} if num_layers else {}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # 'some weights were newly initialised' is expected for the classifier
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1,
                                                                       **layer_kw,
                                                                       local_files_only=True, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tok


class HeadScorer:
    """:class:`mad_guardrails.retrieval.relevance.RelevanceScorer` over a :class:`RelevanceHead` (name ``cross-encoder``)."""

    name = "cross-encoder"

    def __init__(self, spec: str = "bundled", device: str = "auto", head: RelevanceHead | None = None):
        self.spec = spec
        self.head = head or RelevanceHead.load(spec, device=device)

    def score(self, query: str, evidence: Sequence[Evidence]) -> list[float]:
        if not evidence:
            return []
        return [float(x) for x in self.head.proba([(query, pair_text(e.heading, e.text)) for e in evidence])]
