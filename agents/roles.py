"""Debater roles from YAML: ``agents/roles/<name>.yaml`` or any path (``debate.roles`` in the config).

    >>> [r.name for r in load_roles("default")]
    ['prosecutor', 'defender', 'analyst']
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mad_guardrails.core.debate import Stance
from mad_guardrails.core.errors import ConfigError
from mad_guardrails.core.paths import package_dir

ROLES_DIR = package_dir("mad_guardrails.agents") / "roles"


class RoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="short id, lower case (used in transcripts)")
    goal: str = Field(min_length=1)
    instructions: str = ""
    stance_bias: Stance | None = Field(default=None, description="the stance this role argues for, if any")


class _RolesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    roles: list[RoleSpec] = Field(min_length=1)


def available_roles() -> list[str]:
    return sorted(p.stem for p in ROLES_DIR.glob("*.yaml"))


def load_roles(name_or_path: str | Path = "default") -> list[RoleSpec]:
    """Load a roles file by name (``default``) or path; errors name the file, the field and the fix."""
    p = Path(name_or_path)
    if not p.suffix and not p.exists():
        p = ROLES_DIR / f"{name_or_path}.yaml"
        if not p.exists():
            raise ConfigError(f"unknown roles set {str(name_or_path)!r}", where="debate.roles",
                              fix=f"use one of {available_roles()} or the path of a YAML roles file")
    if not p.is_file():
        raise ConfigError("roles file not found", where=str(p), fix="check debate.roles")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML ({e})", where=str(p), fix="correct the YAML syntax") from e
    if isinstance(data, list):
        data = {"roles": data}
    try:
        parsed = _RolesFile.model_validate(data or {})
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"field '{field}': {first['msg']}", where=str(p),
                          fix="each role needs name, goal, instructions and stance_bias "
                              "(violation|compliant|uncertain|null); see agents/roles/default.yaml") from e
    names = [r.name for r in parsed.roles]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"duplicate role names {dupes}", where=str(p), fix="give every role a unique name")
    return parsed.roles
