"""Where the project keeps what it builds: ``$GUARDRAILS_HOME`` (default ``~/.cache/mad-guardrails``)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

#: the repository root in a checkout (editable install); in a wheel install, the site-packages folder of the package
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_dir(package: str) -> Path:
    """The folder of an installed sub-package (``"mad_guardrails.policies"``), found through ``importlib.resources``:
    the same in a checkout, an editable install and a wheel. Packaged data (packs, profiles, templates, adapters)
    is located from here, never from the repository layout."""
    return Path(str(resources.files(package)))


def evals_data_dir() -> Path:
    """The project's hand-written query and case sets (``evals/data``, package data of the evals layer; read as data
    only, by lower layers' calibration and training code)."""
    return package_dir("mad_guardrails.evals") / "data"


def home() -> Path:
    p = Path(os.environ.get("GUARDRAILS_HOME", Path.home() / ".cache" / "mad-guardrails")).expanduser()
    p.mkdir(parents=True, exist_ok=True)
    return p


def corpus_dir() -> Path:
    """Default folder of ingested corpus (units JSONL per act), filled by ``mad-guardrails corpus fetch/add``."""
    return home() / "corpus"


def index_dir(profile: str = "offline") -> Path:
    """``$GUARDRAILS_HOME/index/<profile>``; a profile given as a YAML file is named by its stem (as the loaded
    config names it), so ``--profile my/profile.yaml`` builds and finds ``index/profile``."""
    name = Path(profile).stem if str(profile).endswith((".yaml", ".yml")) else profile
    return home() / "index" / name


def models_dir() -> Path:
    return home() / "models"


def shared_corpus() -> Path | None:
    """The regulatory corpus shipped beside a checkout (../shared/data/corpus), when present (tests, quickstart)."""
    for cand in (PROJECT_ROOT.parent / "shared" / "data" / "corpus", PROJECT_ROOT / "shared" / "data" / "corpus"):
        if cand.is_dir():
            return cand
    return None
