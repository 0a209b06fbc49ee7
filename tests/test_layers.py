"""The structure holds: one import root, and layers that import one way only.

    core (+ prompts) ← retrieval ← policies ← agents ← verifier ← guardrails (app) ← evals

Every import in every module counts (function-local and TYPE_CHECKING imports included): a lower layer that needs
something of a higher one takes it as an argument. The packaging list in pyproject.toml names every package folder.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import mad_guardrails

ROOT = Path(__file__).resolve().parent.parent
LEVEL = {"core": 0, "prompts": 0, "retrieval": 1, "policies": 2, "agents": 3, "verifier": 4, "guardrails": 5,
         "evals": 6}
CARD_FOLDERS = ("guardrails", "agents", "retrieval", "prompts", "policies", "evals")
#: import names other distributions own (guardrails-ai, openai-agents, OpenAI evals): never ours
FOREIGN = {"guardrails", "agents", "evals", "retrieval", "policies", "prompts", "core", "verifier"}


def _modules():
    for layer in LEVEL:
        for path in sorted((ROOT / layer).rglob("*.py")):
            yield layer, path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "mad_guardrails":
                for a in node.names:
                    yield node.lineno, f"mad_guardrails.{a.name}"
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            yield node.lineno, "." * node.level + (node.module or "")


def test_no_layer_imports_one_above_it():
    upward = []
    for layer, path in _modules():
        for line, mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "mad_guardrails" or len(parts) < 2 or parts[1] not in LEVEL:
                continue
            if LEVEL[parts[1]] > LEVEL[layer]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_every_import_goes_through_the_one_root():
    bare = []
    for _layer, path in _modules():
        for line, mod in _imports(path):
            if mod.startswith("."):
                bare.append(f"{path.relative_to(ROOT)}:{line} relative import {mod}")
            elif mod.split(".")[0] in FOREIGN:
                bare.append(f"{path.relative_to(ROOT)}:{line} imports {mod} (not under mad_guardrails)")
    for path in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py")):
        for line, mod in _imports(path):
            if mod.split(".")[0] in FOREIGN - {"tests"}:
                bare.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bare, "\n".join(bare)


def test_pyproject_packages_name_every_package_folder():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = {"mad_guardrails"}
    for layer in LEVEL:
        assert mapping[f"mad_guardrails.{layer}"] == layer
        for init in (ROOT / layer).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT)
            found.add("mad_guardrails." + ".".join(rel.parts))
    assert found == listed, f"missing from pyproject: {sorted(found - listed)}; stale: {sorted(listed - found)}"
    for folder in CARD_FOLDERS:  # the card's folders stay at the top of the repository
        assert (ROOT / folder / "__init__.py").is_file()


def test_the_installed_package_is_what_runs():
    """Tests import the installed package, never a folder of the checkout found on sys.path by accident."""
    import sys

    import mad_guardrails.guardrails as app

    assert str(ROOT) not in [str(Path(p).resolve()) for p in sys.path if p]
    assert mad_guardrails.__version__ != "0+unknown"
    assert Path(app.__file__).resolve().parent == ROOT / "guardrails" or "site-packages" in app.__file__
    for name in ("guardrails", "agents", "evals"):  # our folders do not pose as those top-level packages
        mod = sys.modules.get(name)
        assert mod is None or not str(getattr(mod, "__file__", "") or "").startswith(str(ROOT)), name


@pytest.mark.parametrize("name", ["Guardrail", "Verdict"])
def test_public_api_from_the_root(name):
    assert getattr(mad_guardrails, name).__name__ == name
