"""Where the project keeps what it builds: ``$GUARDRAILS_HOME`` (default ``~/.cache/mad-guardrails``)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    p = Path(os.environ.get("GUARDRAILS_HOME", Path.home() / ".cache" / "mad-guardrails")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def corpus_dir() -> Path:
    """Default folder of ingested corpus (units JSONL per act), filled by ``guardrails corpus fetch/add``."""
    return home() / "corpus"


def index_dir(profile: str = "offline") -> Path:
    return home() / "index" / profile


def models_dir() -> Path:
    return home() / "models"


def shared_corpus() -> Path | None:
    """The regulatory corpus shipped beside a checkout (../shared/data/corpus), when present (tests, quickstart)."""
    for cand in (PROJECT_ROOT.parent / "shared" / "data" / "corpus", PROJECT_ROOT / "shared" / "data" / "corpus"):
        if cand.is_dir():
            return cand
    return None
