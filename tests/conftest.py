"""Shared fixtures live in ``tests/fixtures/<topic>.py`` (one owner each); they are plugged in here."""

from __future__ import annotations

from pathlib import Path

_here = Path(__file__).parent
pytest_plugins = [
    f"tests.fixtures.{p.stem}" for p in sorted((_here / "fixtures").glob("*.py")) if not p.stem.startswith("_")
]
