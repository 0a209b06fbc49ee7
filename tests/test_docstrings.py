"""The docstrings' examples run (the sentence-transformers convention: every module's docstring shows it in use).
Examples that need a model, a server or the index carry ``# doctest: +SKIP``."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

LAYERS = ("core", "retrieval", "policies", "agents", "verifier", "guardrails", "evals")


def _all_modules() -> list[str]:
    names = []
    for layer in LAYERS:
        pkg = importlib.import_module(f"mad_guardrails.{layer}")
        names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"{pkg.__name__}.")]
    return sorted(names)


@pytest.mark.parametrize("name", _all_modules())
def test_docstring_examples_run(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples fail (run " \
                               f"`python -m doctest -v` on its file to see which)"
