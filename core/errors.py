"""Errors that say what to fix. Each names the file / field / input at fault and the remedy."""

from __future__ import annotations


class GuardrailError(Exception):
    """Base class. ``str(err)`` is a complete sentence for the user: what is wrong, where, and how to fix it."""

    def __init__(self, message: str, *, where: str | None = None, fix: str | None = None):
        self.where = where
        self.fix = fix
        parts = [f"{where}: {message}" if where else message]
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__(" ".join(parts))


class InputError(GuardrailError):
    """Bad input to check (empty, huge, wrong encoding, bad JSONL row)."""


class ConfigError(GuardrailError):
    """A config / profile / policy file is invalid or names something unknown."""


class CorpusError(GuardrailError):
    """A corpus file cannot be ingested (empty, binary, wrong encoding, unknown format)."""


class IndexError_(GuardrailError):
    """An index cannot be loaded (missing, corrupted, built with another embedder)."""


class ModelUnavailableError(GuardrailError):
    """A model cannot be loaded (hub unreachable, no local copy)."""


class BackendError(GuardrailError):
    """An LLM backend failed (timeout, connection, HTTP error, unparseable output)."""
