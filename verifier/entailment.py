"""Entailment: a pluggable NLI check that the quotes support the claims made with them.

With no model configured (the offline profile ships none) the check reports ``skipped`` and the other checks still
run. A model that cannot be loaded is also ``skipped``, with the reason in the detail and a warning in the log: a
missing NLI model never crashes the guardrail. Models are never downloaded at check time (``local_files_only``);
put one in the Hugging Face cache or give a local folder.

Supported: the project's domain verifier (``bundled:entailment-minilm``, :mod:`~mad_guardrails.verifier.domain_nli`;
the offline default), the claim probe on the opt-in 1.5B LLM (``bundled:claim-probe-qwen2.5-1.5b``,
:mod:`~mad_guardrails.verifier.probe_nli`) and sentence-transformers ``CrossEncoder`` NLI classifiers with three labels (contradiction / entailment /
neutral), e.g. ``cross-encoder/nli-deberta-v3-base``. Each (premise = the quotes, hypothesis = the claim) pair is
classified; a claim whose quotes *contradict* it fails the check, the score is the share of claims entailed.

    >>> EntailmentChecker(None).check([EntailmentItem(name="v1", premise="a b c", hypothesis="a b")]).status
    'skipped'
    >>> label_mapping({0: "CONTRADICTION", 1: "ENTAILMENT", 2: "NEUTRAL"})
    {0: 'contradiction', 1: 'entailment', 2: 'neutral'}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mad_guardrails.core.debate import Argument, CoordinatorOutput
from mad_guardrails.core.verdict import CheckResult

log = logging.getLogger(__name__)

NLI_LABELS = ("contradiction", "entailment", "neutral")
#: label order of the cross-encoder/nli-* models when their config only says LABEL_0 … LABEL_2
DEFAULT_ORDER = {0: "contradiction", 1: "entailment", 2: "neutral"}
NAME = "entailment"


def label_mapping(id2label: Mapping[Any, str] | None) -> dict[int, str]:
    """Map a model's ``id2label`` onto the canonical NLI labels; generic names (``LABEL_0``) get the cross-encoder
    order. Raises ValueError when the model is not a three-way NLI classifier.

    >>> label_mapping({"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"})
    {0: 'contradiction', 1: 'entailment', 2: 'neutral'}
    >>> label_mapping({0: "entailment", 1: "neutral", 2: "contradiction"})[2]
    'contradiction'
    """
    if not id2label:
        raise ValueError("the model has no labels")
    items = {int(k): str(v).lower() for k, v in id2label.items()}
    if len(items) != 3:
        raise ValueError(f"expected 3 NLI labels, the model has {len(items)} ({sorted(items.values())})")
    out: dict[int, str] = {}
    for i, name in items.items():
        for canon, stem in (("contradiction", "contradict"), ("entailment", "entail"), ("neutral", "neutral")):
            if stem in name:
                out[i] = canon
    if sorted(out.values()) == sorted(NLI_LABELS) and len(out) == 3:
        return dict(sorted(out.items()))
    if all(v.startswith("label_") for v in items.values()) and set(items) == {0, 1, 2}:
        return dict(DEFAULT_ORDER)
    raise ValueError(f"cannot tell contradiction / entailment / neutral apart in labels {items}")


class EntailmentItem(BaseModel):
    """One claim to check: ``hypothesis`` should follow from ``premise`` (the quotes cited for it)."""

    name: str
    premise: str
    hypothesis: str


def items_from(coord_output: CoordinatorOutput, arguments: Iterable[Argument] = ()) -> list[EntailmentItem]:
    """Claims with their quotes: each debate claim that carries quotes.

    A violation's explanation is not checked this way: it describes the discrepancy between the output and the
    clause ("the output says 72 hours; the clause says 24"), so the clause never entails it — checking it demoted
    correct blocks. Blocks rest on the verbatim and citation checks and, for claim contradictions, on the claim
    check itself."""
    items: list[EntailmentItem] = []
    for a in arguments:
        for i, c in enumerate(a.claims):
            if c.quotes and c.text.strip():
                items.append(EntailmentItem(name=f"{a.role} r{a.round} claim {i + 1}", hypothesis=c.text,
                                            premise=" ".join(q.text for q in c.quotes)))
    return items


def _id2label(model: Any) -> Mapping[Any, str] | None:
    for path in (("config",), ("model", "config"), ("auto_model", "config")):
        obj = model
        try:
            for p in path:
                obj = getattr(obj, p)
        except AttributeError:
            continue
        lab = getattr(obj, "id2label", None)
        if lab:
            return lab
    try:
        return model[0].auto_model.config.id2label  # sentence-transformers module list
    except Exception:
        return None


class EntailmentChecker:
    """NLI over (quotes, claim) pairs; ``model_id=None`` → the check is skipped.

    ``contradiction_threshold``: a claim fails when P(contradiction) is at least this and the largest of the three.
    """

    def __init__(self, model_id: str | None = None, *, device: str = "cpu", contradiction_threshold: float = 0.5,
                 allow_download: bool = False, batch_size: int = 16):
        self.model_id = model_id
        self.device = device
        self.contradiction_threshold = contradiction_threshold
        self.allow_download = allow_download
        self.batch_size = batch_size
        self._model: Any = None
        self._labels: dict[int, str] | None = None
        self._error: str | None = None if model_id else "no NLI model configured (offline profile ships none)"

    @property
    def unavailable_reason(self) -> str | None:
        """Why the check will be skipped (None when a model is loaded or not tried yet)."""
        return self._error

    def load(self) -> bool:
        """Load the model once; on failure remember the reason, warn, and return False."""
        if self._model is not None:
            return True
        if self._error is not None:
            return False
        try:
            from mad_guardrails.verifier.domain_nli import DomainNLI, is_domain_model
            from mad_guardrails.verifier.probe_nli import ProbedNLI, is_probe_model

            # the project's own readers: their labels, their thresholds calibrated on dev (the LLM probe reads the
            # cross-encoder's picks)
            own = ProbedNLI if is_probe_model(self.model_id) else DomainNLI if is_domain_model(self.model_id) else None
            if own is not None:
                self._model = own.load(self.model_id, device=self.device)
                self._labels = None
                return True
            local = Path(self.model_id).expanduser()
            if self.model_id.startswith(("/", ".", "~")) and not local.exists():
                raise FileNotFoundError(f"no such folder {str(local)!r}")
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(self.model_id, device=self.device, local_files_only=not self.allow_download)
            labels = label_mapping(_id2label(model))
        except Exception as e:  # noqa: BLE001 - any loading problem means "skipped", never a crash
            self._error = f"NLI model {self.model_id!r} could not be loaded: {type(e).__name__}: {e}"[:500]
            log.warning("%s; the entailment check is skipped (the other checks still run). Fix: put the model in "
                        "the Hugging Face cache or give a local folder in verifier.nli_model.", self._error)
            return False
        self._model, self._labels = model, labels
        return True

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Probabilities per canonical label for (premise, hypothesis) pairs."""
        import numpy as np

        if self._labels is None:  # the domain verifier answers entailed / contradicted / neutral
            return [{"entailment": p["entailed"], "contradiction": p["contradicted"], "neutral": p["neutral"]}
                    for p in self._model.predict(list(pairs), batch_size=self.batch_size)]
        logits = np.asarray(self._model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False))
        logits = logits.reshape(len(pairs), -1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        return [{self._labels[i]: float(p[i]) for i in range(probs.shape[1])} for p in probs]

    def close(self) -> None:
        """Free what the model holds outside Python (the claim probe's llama.cpp context; after that the check is
        skipped). A model that holds nothing outside Python (the cross-encoder) stays: guardrails may share it."""
        close = getattr(self._model, "close", None)
        if close is not None:
            self._model, self._error = None, "the NLI model was closed with its guardrail"
            close()

    def claim_thresholds(self) -> tuple[float, float]:
        """(entailed, contradicted) thresholds for a claim: the domain verifier's dev-calibrated ones, else 0.5."""
        return (float(getattr(self._model, "entail_threshold", 0.5)),
                float(getattr(self._model, "contradict_threshold", self.contradiction_threshold)))

    def check(self, items: Sequence[EntailmentItem]) -> CheckResult:
        if not self.load():
            return CheckResult(name=NAME, status="skipped", detail=self._error or "NLI model unavailable")
        if not items:
            return CheckResult(name=NAME, status="skipped", detail="no claims with quotes to check")
        try:
            probs = self.predict([(it.premise, it.hypothesis) for it in items])
        except Exception as e:  # noqa: BLE001
            log.warning("NLI prediction failed (%s: %s); entailment check skipped", type(e).__name__, e)
            return CheckResult(name=NAME, status="skipped", detail=f"NLI prediction failed: {type(e).__name__}: {e}")
        failures, entailed = [], 0
        for it, p in zip(items, probs):
            top = max(p, key=p.get)
            entailed += top == "entailment"
            if top == "contradiction" and p["contradiction"] >= self.contradiction_threshold:
                failures.append(f"{it.name}: the quotes contradict the claim (p={p['contradiction']:.2f}): "
                                f"\"{it.hypothesis[:160]}\"")
        return CheckResult(name=NAME, status="fail" if failures else "pass", score=entailed / len(items),
                           failures=failures,
                           detail=f"{entailed}/{len(items)} claims entailed by their quotes ({self.model_id})")


class ClaimScorer:
    """An :class:`EntailmentChecker` as the claim check's model (labels ``entailed`` / ``contradicted`` /
    ``neutral``, and its thresholds)."""

    def __init__(self, checker: EntailmentChecker):
        self.checker = checker

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        return [{"entailed": p["entailment"], "contradicted": p["contradiction"], "neutral": p["neutral"]}
                for p in self.checker.predict(pairs)]

    def claim_thresholds(self) -> tuple[float, float]:
        return self.checker.claim_thresholds()
