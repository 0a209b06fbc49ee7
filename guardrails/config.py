"""The guardrail config: profiles (``offline``, ``gpu``) are YAML files in ``guardrails/profiles/``.

    >>> cfg = load_config("offline")
    >>> cfg.retrieval.embedder.model
    'bundled:all-MiniLM-L6-v2'
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.config import DebateConfig, LLMConfig
from guardrails.errors import ConfigError
from retrieval.config import RetrievalConfig

C = TypeVar("C", bound=BaseModel)

PROFILES_DIR = Path(__file__).parent / "profiles"
Mode = Literal["strict", "balanced", "permissive"]


class ModeThresholds(BaseModel):
    """Thresholds that a mode changes (never code paths)."""

    model_config = ConfigDict(extra="forbid")

    block_confidence: float = Field(0.6, description="min confidence for a block; below it a block becomes a flag")
    allow_confidence: float = Field(0.5, description="min confidence for an allow; below it an allow becomes a flag")
    fast_allow_max_relevance: float = Field(0.5, description="fast allow only when no evidence scored above this")
    fast_allow_max_screen: float = Field(0.5, description="... and no policy rule screened above this")


DEFAULT_MODES: dict[str, ModeThresholds] = {
    "strict": ModeThresholds(block_confidence=0.4, allow_confidence=0.7, fast_allow_max_relevance=0.35,
                             fast_allow_max_screen=0.35),
    "balanced": ModeThresholds(),
    "permissive": ModeThresholds(block_confidence=0.75, allow_confidence=0.35, fast_allow_max_relevance=0.6,
                                 fast_allow_max_screen=0.6),
}


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    packs: list[str] = Field(default_factory=lambda: ["builtin"], description="'builtin' and/or dirs of YAML packs")
    disabled: list[str] = Field(default_factory=list, description="rule ids to switch off")
    screen_top: int = 5


class VerifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nli_model: str | None = Field(default=None, description="NLI cross-encoder id/path; None = entailment skipped")
    check_numbers: bool = True
    repair_rounds: int = Field(default=1, ge=0, le=3)


class GuardrailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = "custom"
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    debate: DebateConfig = Field(default_factory=DebateConfig)
    verifier: VerifierConfig = Field(default_factory=VerifierConfig)
    policies: PolicyConfig = Field(default_factory=PolicyConfig)
    modes: dict[str, ModeThresholds] = Field(default_factory=lambda: dict(DEFAULT_MODES))
    fail_action: Literal["flag", "block"] = "flag"
    max_input_chars: int = 20_000
    timeout_s: float = Field(default=120.0, description="whole-check deadline; past it the verdict fails closed")

    def hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def yaml_names(folder: Path) -> list[str]:
    """The names (stems) of the YAML files in ``folder``: what :func:`read_named_yaml` accepts by name."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def available_profiles() -> list[str]:
    return yaml_names(PROFILES_DIR)


def read_named_yaml(name_or_path: str | Path, folder: Path, kind: str) -> tuple[Path, dict]:
    """A YAML mapping given by name (``<folder>/<name>.yaml``) or path, as ``(path, data)``; a missing file, bad YAML
    or a non-mapping is a :class:`ConfigError` that names the file and the fix."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = folder / f"{name_or_path}.yaml"
        if not p.exists():
            raise ConfigError(f"unknown {kind} {str(name_or_path)!r}",
                              fix=f"use one of {yaml_names(folder)} or the path of a {kind} YAML file")
    if not p.is_file():
        raise ConfigError(f"{kind} file not found", where=str(p), fix="check the path")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML ({e})", where=str(p), fix="correct the YAML syntax") from e
    if not isinstance(data, dict):
        raise ConfigError(f"a {kind} file must be a YAML mapping", where=str(p), fix="write key: value pairs")
    return p, data


def validate_yaml(model: type[C], data: dict, where: Path, schema_doc: str) -> C:
    """``model.model_validate(data)``; the first error becomes a :class:`ConfigError` naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"field '{field}': {first['msg']} ({len(e.errors())} error(s) in all)", where=str(where),
                          fix=f"correct '{field}'; the schema is in {schema_doc}") from e


def load_config(path_or_profile: str | Path) -> GuardrailConfig:
    """Load a profile by name (``offline``, ``gpu``) or a YAML file; errors name the file, field and fix."""
    p, data = read_named_yaml(path_or_profile, PROFILES_DIR, "profile")
    data.setdefault("profile", p.stem)
    return validate_yaml(GuardrailConfig, data, p, "guardrails/config.py")


def resolve_preset(cls: type[C], presets: dict[str, dict], preset: str | None = None,
                   overrides: dict | None = None) -> C:
    """A trainer's config: the named preset's values with ``overrides`` on top (``None`` values ignored).

    >>> class T(BaseModel):
    ...     lr: float = 1e-3
    ...     epochs: int = 1
    >>> resolve_preset(T, {"seed": {"lr": 2e-5, "epochs": 3}}, "seed", {"epochs": 1, "lr": None})
    T(lr=2e-05, epochs=1)
    """
    base: dict = {}
    if preset:
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}", where="--preset", fix=f"use one of {sorted(presets)}")
        base.update(presets[preset])
    base.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return cls(**base)
