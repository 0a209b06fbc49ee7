"""YAML files the user writes (profiles, policy packs, role sets, trainer presets): read by name or path, validated
into pydantic models, every error naming the file, the field and the fix.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "demo.yaml").write_text("a: 1")
    >>> read_named_yaml("demo", d, "profile")[1]
    {'a': 1}
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from mad_guardrails.core.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


def yaml_names(folder: Path) -> list[str]:
    """The names (stems) of the YAML files in ``folder``: what :func:`read_named_yaml` accepts by name."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


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
