"""The project's domain entailment verifier: the bundled all-MiniLM-L6-v2 with a LoRA adapter (merged at load) and
a three-way head, trained on regulatory clause sentences against assistant-style claims (paraphrased restatements,
paraphrased contradictions, lexically close neutrals), split by article. It ships in ``verifier/adapters/
entailment-minilm`` (a few MB) and runs on CPU in milliseconds per pair; ``config.json`` beside it holds the label
order and the thresholds calibrated on the dev articles.

    >>> m = DomainNLI.load()                                               # doctest: +SKIP
    >>> m.predict([("Member States shall ensure that ... within 24 hours",
    ...             "The early warning is due in a day.")])                # doctest: +SKIP
    [{'entailed': 0.9..., 'contradicted': ..., 'neutral': ...}]

Training (GPU) and the data builder: ``bench/gpu/entailment/`` (see BENCHMARKS.md, "Entailment verifier").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.paths import package_dir

LABELS = ("entailed", "contradicted", "neutral")
BUNDLED_NAME = "bundled:entailment-minilm"
BUNDLED_DIR = package_dir("mad_guardrails.verifier") / "adapters" / "entailment-minilm"
BASE_MODEL = "bundled:all-MiniLM-L6-v2"


def is_domain_model(spec: str | None) -> bool:
    """Whether ``spec`` names the domain verifier (the bundled name, a folder holding its head, or an ensemble
    folder whose ``config.json`` lists ``members``)."""
    if not spec:
        return False
    p = Path(spec).expanduser()
    return spec == BUNDLED_NAME or (p / "head.safetensors").is_file() or bool(_read_config(p).get("members"))


def _read_config(path: Path) -> dict:
    """A verifier folder's ``config.json`` ({} when missing or unreadable)."""
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _thresholds(config: dict) -> tuple[float, float]:
    """(entailed, contradicted) bars calibrated on the dev claims and stored in ``config.json`` (0.5 when absent)."""
    th = config.get("thresholds") or {}
    return float(th.get("tau_entail", 0.5)), float(th.get("tau_contra", 0.5))


def _head(hidden: int, n: int):
    import torch.nn as nn

    class Head(nn.Module):
        """Masked mean pooling → dropout → dense (tanh) → dropout → logits."""

        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.1)
            self.dense = nn.Linear(hidden, hidden)
            self.out = nn.Linear(hidden, n)

        def forward(self, h, mask):
            import torch

            m = mask.unsqueeze(-1).to(h.dtype)
            mean = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.out(self.drop(torch.tanh(self.dense(self.drop(mean)))))

    return Head()


class DomainNLI:
    """(clause sentence, claim) → probabilities of ``entailed`` / ``contradicted`` / ``neutral``."""

    def __init__(self, encoder: Any, head: Any, tokenizer: Any, config: dict, path: Path):
        self.encoder, self.head, self.tok, self.config, self.path = encoder, head, tokenizer, config, path
        self.labels = tuple(config.get("labels", LABELS))
        self.max_length = int(config.get("max_length", 256))
        self.truncation = "only_first" if "only_first" in str(config.get("input", "")) else "longest_first"
        self.entail_threshold, self.contradict_threshold = _thresholds(config)

    @classmethod
    def load(cls, spec: str = BUNDLED_NAME, *, device: str = "cpu") -> DomainNLI:
        """Load the adapter folder (``bundled:entailment-minilm`` or a path) on the bundled MiniLM."""
        path = BUNDLED_DIR if spec == BUNDLED_NAME else Path(spec).expanduser()
        has_config = (path / "config.json").is_file()
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8")) if has_config else {}
        if cfg.get("members"):  # seeds of one recipe, read together: their probabilities averaged
            return EnsembleNLI([cls.load(str(path / m), device=device) for m in cfg["members"]], cfg, path)
        if not (path / "head.safetensors").is_file() or not has_config:
            raise ModelUnavailableError("the entailment verifier's files are missing", where=str(path),
                                        fix="reinstall mad-guardrails (the adapter ships in the package) or point "
                                            "verifier.nli_model at a folder with config.json and head.safetensors")
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from mad_guardrails.retrieval.embedder import resolve_model

        base = resolve_model(BASE_MODEL, what="entailment base").path
        tok = AutoTokenizer.from_pretrained(str(base))
        enc = AutoModel.from_pretrained(str(base), add_pooling_layer=False).float()
        if (path / "adapter_config.json").is_file():
            from peft import PeftModel

            enc = PeftModel.from_pretrained(enc, str(path)).merge_and_unload()
        head = _head(enc.config.hidden_size, len(cfg.get("labels", LABELS)))
        head.load_state_dict(load_file(str(path / "head.safetensors")))
        enc.eval().to(device)
        head.eval().to(device)
        return cls(enc, head, tok, cfg, path)

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 32) -> list[dict[str, float]]:
        """Probabilities per label for (premise, hypothesis) pairs (length-sorted batches: less padding on CPU)."""
        import torch

        out: list[dict[str, float]] = [{}] * len(pairs)
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        with torch.inference_mode():
            for i in range(0, len(order), batch_size):
                ids = order[i:i + batch_size]
                t = self.tok([pairs[j][0] for j in ids], [pairs[j][1] for j in ids], truncation=self.truncation,
                             max_length=self.max_length, padding=True, return_tensors="pt")
                h = self.encoder(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
                                 token_type_ids=t.get("token_type_ids")).last_hidden_state
                probs = torch.softmax(self.head(h, t["attention_mask"]).float(), -1).tolist()
                for j, row in zip(ids, probs):
                    out[j] = {lab: float(p) for lab, p in zip(self.labels, row)}
        return out


class EnsembleNLI(DomainNLI):
    """Several adapters of one recipe (different seeds) read together: the mean of their probabilities, with the
    ensemble's own calibrated thresholds (``config.json``: ``members`` and ``thresholds``)."""

    def __init__(self, members: list[DomainNLI], config: dict, path: Path):
        self.members, self.config, self.path = members, config, path
        self.labels = members[0].labels
        self.entail_threshold, self.contradict_threshold = _thresholds(config)

    def predict(self, pairs: list[tuple[str, str]], batch_size: int = 32) -> list[dict[str, float]]:
        each = [m.predict(pairs, batch_size) for m in self.members]
        return [{lab: sum(e[i][lab] for e in each) / len(each) for lab in self.labels} for i in range(len(pairs))]
