"""A second reader of (clause sentence, claim) pairs: a linear probe on a GGUF LLM's last hidden state.

The bundled cross-encoder (:mod:`~mad_guardrails.verifier.domain_nli`) reads pairs in milliseconds but mistakes
paraphrase for difference; a 1.5B chat model reads them better, and a logistic-regression probe on its final hidden
state (the ``claim_probe`` prompt, llama.cpp in process, no generation) turns that reading into the same three
probabilities. The probe ships in ``verifier/adapters/claim-probe-qwen2.5-1.5b`` (a few hundred KB: the scaler and
the 3 × 1536 weights, plus ``config.json`` with the LLM it was trained on, the prompt version and the thresholds
calibrated on the dev articles); the LLM is the opt-in ``mad-guardrails models fetch qwen2.5-1.5b``.

It is slow on CPU (≈ 0.5–1.5 s a pair on 2 cores, less when pairs share their clause), so :class:`ProbedNLI` reads
with it only the few sentences per claim that the cross-encoder finds most relevant; every other pair counts as not
enough information. ``verifier.nli_model: bundled:claim-probe-qwen2.5-1.5b`` selects it; no profile does: it reads
independent (clause, claim) pairs far better than the cross-encoder (AUC 0.947 vs 0.818) but, as the verifier, allows
fewer correct answers (BENCHMARKS.md, "The 1.5B LLM taught to read pairs"). Training: ``bench/claim_probe_bench.py``.

    >>> import numpy as np
    >>> probe = LinearProbe(mean=np.zeros(2), scale=np.ones(2), coef=np.array([[1.0, 0], [0, 1.0], [0, 0]]),
    ...                     intercept=np.zeros(3))
    >>> probe.probabilities(np.array([[2.0, 0.0]])).round(3).tolist()
    [[0.787, 0.107, 0.107]]
    >>> top_per_claim([("s1", "c"), ("s2", "c"), ("s3", "d")], [0.2, 0.9, 0.5], k=1)
    [1, 2]
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.paths import package_dir

log = logging.getLogger(__name__)

LABELS = ("entailed", "contradicted", "neutral")
BUNDLED_NAME = "bundled:claim-probe-qwen2.5-1.5b"
BUNDLED_DIR = package_dir("mad_guardrails.verifier") / "adapters" / "claim-probe-qwen2.5-1.5b"
PROMPT = "claim_probe"
NOTHING = {"entailed": 0.0, "contradicted": 0.0, "neutral": 1.0}  # a pair the probe did not read


def is_probe_model(spec: str | None) -> bool:
    """Whether ``spec`` names a claim probe (the bundled name or a folder holding ``probe.npz``)."""
    return bool(spec) and (spec == BUNDLED_NAME or (Path(spec).expanduser() / "probe.npz").is_file())


@dataclass
class LinearProbe:
    """Standardise, then multinomial logistic regression (sklearn's ``StandardScaler`` + ``LogisticRegression``)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # (labels, features)
    intercept: np.ndarray

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                            coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32))

    @classmethod
    def read(cls, path: Path) -> LinearProbe:
        with np.load(path) as z:
            return cls(*(z[k].astype(np.float64) for k in ("mean", "scale", "coef", "intercept")))


def pair_messages(clause: str, claim: str) -> list[dict]:
    """The chat the probe's features are read from (``prompts/claim_probe.j2``)."""
    from mad_guardrails.prompts import render_messages

    return render_messages(PROMPT, clause=clause, claim=claim)


def hidden_states(engine, pairs: Sequence[tuple[str, str]], *, progress=None) -> np.ndarray:
    """The last-token hidden state of each (clause, claim) pair's prompt, read in clause order so pairs sharing a
    clause share the cached prompt prefix; rows come back in the order of ``pairs``. ``progress(n)`` is called after
    each pair."""
    out: list[np.ndarray] = [np.empty(0)] * len(pairs)
    for i in sorted(range(len(pairs)), key=lambda i: pairs[i][0]):
        out[i] = np.asarray(engine.last_state(pair_messages(*pairs[i])), dtype=np.float32)
        if progress is not None:
            progress(1)
    return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)


def top_per_claim(pairs: Sequence[tuple[str, str]], relevance: Sequence[float], k: int) -> list[int]:
    """Positions of the ``k`` most relevant pairs of each claim (pairs grouped by their claim, the second item)."""
    groups: dict[str, list[int]] = {}
    for i, (_, claim) in enumerate(pairs):
        groups.setdefault(claim, []).append(i)
    return sorted(i for idx in groups.values() for i in sorted(idx, key=lambda i: -relevance[i])[:k])


class ProbeNLI:
    """(clause sentence, claim) → probabilities of ``entailed`` / ``contradicted`` / ``neutral`` from the probe."""

    def __init__(self, engine, probe: LinearProbe, config: dict, path: Path):
        self.engine, self.probe, self.config, self.path = engine, probe, config, path
        self._lock = threading.Lock()  # one llama.cpp context: concurrent checks take turns
        self.labels = tuple(config.get("labels", LABELS))
        th = config.get("thresholds") or {}
        self.entail_threshold = float(th.get("tau_entail", 0.5))
        self.contradict_threshold = float(th.get("tau_contra", 0.5))

    @classmethod
    def load(cls, spec: str = BUNDLED_NAME, *, threads: int | None = None, engine=None) -> ProbeNLI:
        """The probe folder and the LLM its ``config.json`` names (loaded here unless ``engine`` is given: an
        :class:`~mad_guardrails.agents.backends.llamacpp.IkEngine` built with ``hidden_states=True``)."""
        from mad_guardrails.prompts import prompt_version

        path = BUNDLED_DIR if spec == BUNDLED_NAME else Path(spec).expanduser()
        if not (path / "probe.npz").is_file() or not (path / "config.json").is_file():
            raise ModelUnavailableError("the claim probe's files are missing", where=str(path),
                                        fix="reinstall mad-guardrails (the probe ships in the package) or point "
                                            "verifier.nli_model at a folder with config.json and probe.npz")
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        if str(cfg.get("prompt_version")) != prompt_version(PROMPT):
            raise ModelUnavailableError(
                f"the claim probe was trained on prompt {PROMPT}@{cfg.get('prompt_version')}, this install has "
                f"{PROMPT}@{prompt_version(PROMPT)}", where=str(path / "config.json"),
                fix="retrain the probe (bench/claim_probe_bench.py --save) or restore the prompt it was trained on")
        if engine is None:
            from mad_guardrails.agents.backends.llamacpp import INSTALL_FIX, IkEngine, binding, resolve_gguf

            if binding() != "ik":
                raise ModelUnavailableError("the claim probe reads hidden states through ik-llama-cpp-python, which "
                                            "is not installed", where=str(path), fix=INSTALL_FIX.split(" or ")[0])
            engine = IkEngine(resolve_gguf(cfg["llm"]), n_ctx=int(cfg.get("n_ctx", 1024)), n_threads=threads,
                              hidden_states=True)
        return cls(engine, LinearProbe.read(path / "probe.npz"), cfg, path)

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 0) -> list[dict[str, float]]:
        if not pairs:
            return []
        with self._lock:
            states = hidden_states(self.engine, pairs)
        probs = self.probe.probabilities(states.astype(np.float64))
        return [{lab: float(p) for lab, p in zip(self.labels, row)} for row in probs]

    def close(self) -> None:
        self.engine.close()


class ProbedNLI:
    """The cross-encoder picks, the probe reads: for each claim, the ``per_claim`` pairs the cross-encoder finds
    most relevant (P(entailed) + P(contradicted)) are read by the probe; the others count as not enough information.
    The probe's thresholds are the ones that apply."""

    def __init__(self, first, probe: ProbeNLI, per_claim: int):
        self.first, self.probe, self.per_claim = first, probe, per_claim
        self.labels = probe.labels
        self.entail_threshold, self.contradict_threshold = probe.entail_threshold, probe.contradict_threshold
        self.config, self.path = probe.config, probe.path

    @classmethod
    def load(cls, spec: str = BUNDLED_NAME, *, device: str = "cpu", threads: int | None = None) -> ProbedNLI:
        from mad_guardrails.verifier.domain_nli import DomainNLI

        probe = ProbeNLI.load(spec, threads=threads)
        cfg = probe.config
        return cls(DomainNLI.load(cfg.get("first_reader", "bundled:entailment-minilm"), device=device), probe,
                   int(cfg.get("per_claim", 3)))

    def predict(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> list[dict[str, float]]:
        if not pairs:
            return []
        first = self.first.predict(list(pairs), batch_size=batch_size)
        chosen = top_per_claim(pairs, [p["entailed"] + p["contradicted"] for p in first], self.per_claim)
        read = self.probe.predict([pairs[i] for i in chosen])
        out = [dict(NOTHING) for _ in pairs]
        for i, p in zip(chosen, read):
            out[i] = p
        return out

    def close(self) -> None:
        self.probe.close()
