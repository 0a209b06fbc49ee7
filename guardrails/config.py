"""The guardrail config: profiles (``offline``, ``gpu``) are YAML files in ``guardrails/profiles/``.

    >>> cfg = load_config("offline")
    >>> cfg.retrieval.embedder.model
    'bundled:all-MiniLM-L6-v2'
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mad_guardrails.agents.config import DebateConfig, LLMConfig
from mad_guardrails.core.debate import MAX_INPUT_CHARS
from mad_guardrails.core.paths import package_dir
from mad_guardrails.core.verdict import MODES
from mad_guardrails.core.yamlio import read_named_yaml, validate_yaml, yaml_names
from mad_guardrails.retrieval.config import RetrievalConfig

C = TypeVar("C", bound=BaseModel)

PROFILES_DIR = package_dir("mad_guardrails.guardrails") / "profiles"


class ModeThresholds(BaseModel):
    """Thresholds that a mode changes (never code paths)."""

    model_config = ConfigDict(extra="forbid")

    block_confidence: float = Field(0.6, description="min confidence for a block; below it a block becomes a flag")
    allow_confidence: float = Field(0.5, description="min confidence for an allow; below it an allow becomes a flag")
    fast_allow_max_relevance: float = Field(0.5, description="fast allow only when no evidence scored above this")
    fast_allow_max_screen: float = Field(0.5, description="... and no policy rule screened above this")
    claim_entail_shift: float = Field(0.0, description="added to the entailment model's calibrated threshold for a "
                                      "claim to count as supported (higher = fewer verified allows)")
    claim_contradict_shift: float = Field(0.0, description="added to the calibrated threshold for a claim to count as "
                                          "contradicted (lower = more claim blocks)")
    harm_shift: float = Field(0.0, description="added to the harm screen's calibrated flag / block thresholds "
                              "(lower = more harmful answers flagged or blocked)")


DEFAULT_MODES: dict[str, ModeThresholds] = {
    "strict": ModeThresholds(block_confidence=0.4, allow_confidence=0.7, fast_allow_max_relevance=0.35,
                             fast_allow_max_screen=0.35, claim_entail_shift=0.05, claim_contradict_shift=-0.05,
                             harm_shift=-0.1),
    "balanced": ModeThresholds(),
    "permissive": ModeThresholds(block_confidence=0.75, allow_confidence=0.35, fast_allow_max_relevance=0.6,
                                 fast_allow_max_screen=0.6, claim_entail_shift=-0.05, claim_contradict_shift=0.05),
}


class PolicyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    packs: list[str] = Field(default_factory=lambda: ["builtin"], description="'builtin' and/or dirs of YAML packs")
    disabled: list[str] = Field(default_factory=list, description="rule ids to switch off")
    screen_top: int = 5


class VerifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nli_model: str | None = Field(default=None, description="NLI cross-encoder id/path, or 'bundled:entailment-minilm' "
                                  "(the project's domain verifier); None = entailment skipped")
    claims: bool = Field(default=True, description="check each claim of the output against the clauses (needs "
                         "nli_model); settles clear cases without a debate")
    claim_units: int = Field(default=3, ge=1, le=10, description="clauses retrieved per claim")
    harm_model: str | None = Field(default=None, description="the harm screen, 'bundled:harm-minilm' (verifier/harm.py):"
                                   " harmful answers judged against the NIST AI 600-1 risks; None = off")
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
    max_input_chars: int = Field(default=MAX_INPUT_CHARS, ge=1, description="the one input limit, per text field")
    timeout_s: float = Field(default=120.0, gt=0, description="whole-check deadline; past it the verdict fails closed")

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, v: dict[str, ModeThresholds]) -> dict[str, ModeThresholds]:
        unknown = sorted(set(v) - set(MODES))
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; the modes are {list(MODES)}")
        return {**DEFAULT_MODES, **v}

    def thresholds(self, mode: str | None) -> ModeThresholds:
        """The thresholds of ``mode`` (``balanced`` when None)."""
        return self.modes.get(mode or "balanced") or self.modes["balanced"]

    def hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]


def available_profiles() -> list[str]:
    return yaml_names(PROFILES_DIR)


def load_config(path_or_profile: str | Path) -> GuardrailConfig:
    """Load a profile by name (``offline``, ``gpu``) or a YAML file; errors name the file, field and fix."""
    p, data = read_named_yaml(path_or_profile, PROFILES_DIR, "profile")
    data.setdefault("profile", p.stem)
    return validate_yaml(GuardrailConfig, data, p, "guardrails/config.py")
