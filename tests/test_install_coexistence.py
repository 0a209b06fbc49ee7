"""The wheel installs beside guardrails-ai (import name ``guardrails``) and openai-agents (import name ``agents``).

The repository's top-level folders are named like those two packages, so the wheel must ship them only as
sub-packages of ``mad_guardrails`` and claim no script of theirs. The test builds the wheel from a copy of the
checkout, checks its file list, then installs guardrails-ai and openai-agents from the package index into a fresh venv,
adds our wheel with ``--no-deps`` and borrows our heavy dependencies (torch, LangGraph, vLLM ...) from the project
venv through a ``.pth`` line (appended after the fresh venv's own site-packages; ``.pth`` files inside that folder are
not processed, so the project's editable finder never loads). Both sides are imported in one process run from a
neutral directory; the CLIs, the vLLM plugin entry point and an uninstall of the other two packages are checked.

Needs the package index (network or a mirror). About 70 s on an idle 2-core machine, ~40 s of it pip installing
guardrails-ai and openai-agents (~540 MB, removed at teardown).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("core", "retrieval", "policies", "prompts", "agents", "verifier", "guardrails", "evals")
# (layer folder, glob inside it): the package data that must be in the wheel; each glob must match something
PACKAGE_DATA = [
    ("policies", "packs/*.yaml"),
    ("prompts", "*.j2"),
    ("guardrails", "profiles/*.yaml"),
    ("agents", "roles/*.yaml"),
    ("agents", "adapters/**/*"),
    ("retrieval", "adapters/**/*"),
    ("retrieval", "sources.yaml"),
    ("retrieval", "training/*.yaml"),
    ("evals", "sets/*.yaml"),
    ("evals", "data/*.jsonl"),
]
THEIRS = ("guardrails-ai", "openai-agents")
OUR_HELP = "Multi-agent-debate guardrail"  # the first words of our app's help text
CLI = "mad_guardrails.guardrails.cli:main"
VLLM_EP = ("mad_guardrails_cpu_lora", "mad_guardrails.agents.vllm_plugin:register")
# left in the checkout by tools, never part of a build
_JUNK = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache",
                               ".ruff_cache", ".cache", ".whl", ".gl", "runs", "out", "audit-out")


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _run(cmd: list, *, check: bool = True, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    p = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {p.returncode}\n--- stdout\n{p.stdout[-6000:]}\n"
                    f"--- stderr\n{p.stderr[-6000:]}")
    return p


def _copy_checkout(dest: Path) -> list[str]:
    """Copy what a build of the checkout sees (tracked and untracked-but-not-ignored files) to ``dest``; building
    there leaves no ``build/`` or stale ``build/lib`` in the checkout. Returns the copied paths (posix, relative)."""
    files: list[str] | None = None
    if (REPO / ".git").exists() and shutil.which("git"):
        p = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=False)
        if p.returncode == 0:
            files = [f for f in p.stdout.decode().split("\0") if f and (REPO / f).is_file()]
    if files is None:  # not a git checkout: everything but the usual build and cache folders
        shutil.copytree(REPO, dest, ignore=_JUNK)
        return sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    for f in files:
        (dest / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dest / f)
    return sorted(files)


@dataclass
class Built:
    wheel: Path
    src: Path  # the copy it was built from
    src_files: list[str]
    version: str


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("wheel")
    src, dist = root / "src", root / "dist"
    src.mkdir()
    files = _copy_checkout(src)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", dist, src])
    wheels = sorted(dist.glob("*.whl"))
    assert len(wheels) == 1, wheels
    yield Built(wheels[0], src, files, _project()["version"])
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class Env:
    root: Path
    venv: Path
    bin: Path
    python: Path
    purelib: Path
    cwd: Path  # neutral: neither the checkout nor the venv
    environ: dict
    others_removed: bool = False  # set by the uninstall test


def _installed(env: Env) -> Env:
    assert not env.others_removed, "this test ran after test_uninstalling_the_others_keeps_ours_whole (order changed)"
    return env


def _environ(bindir: Path, home: Path) -> dict:
    """This process's environment minus what could point Python or pip elsewhere."""
    drop = {"VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX", "PIP_USER", "PIP_REQUIRE_VIRTUALENV", "VLLM_PLUGINS",
            "CONDA_PREFIX", "__PYVENV_LAUNCHER__"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTHON")}
    env.update(PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONNOUSERSITE="1",
               PYTHONDONTWRITEBYTECODE="1", GUARDRAILS_HOME=str(home), COLUMNS="200", NO_COLOR="1",
               LITELLM_LOCAL_MODEL_COST_MAP="True")  # litellm (a guardrails-ai dependency): no download at import
    return env


def _project_site_packages() -> list[str]:
    """The running interpreter's site-packages (the project venv's: torch, LangGraph, vLLM ... live there)."""
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    assert paths, site.getsitepackages()
    return paths


@pytest.fixture(scope="module")
def env(built: Built, tmp_path_factory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("coexist")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv])
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    (root / "cwd").mkdir()
    e = Env(root, venv, bindir, python, Path(), root / "cwd", _environ(bindir, root / "home"))
    pip = [python, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", *THEIRS], env=e.environ, cwd=e.cwd)
    _run([*pip, "install", "--no-deps", built.wheel], env=e.environ, cwd=e.cwd)
    e.purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          env=e.environ, cwd=e.cwd).stdout.strip())
    # plain path lines: appended to sys.path after the venv's own site-packages, their own .pth files not processed
    (e.purelib / "zz_mad_guardrails_project_deps.pth").write_text("\n".join(_project_site_packages()) + "\n",
                                                                 encoding="utf-8")
    yield e
    shutil.rmtree(root, ignore_errors=True)  # ~600 MB; pytest would keep three runs of it


def _py(env: Env, code: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    return _run([env.python, "-c", code, *args], env=env.environ, cwd=env.cwd, check=check)


def _facts(env: Env, code: str, *args) -> dict:
    """Run ``code`` (which sets ``facts``) in the fresh venv; return ``facts`` (printed as the last JSON line)."""
    p = _py(env, "import json, sys\nfacts = {}\n" + code + "\nprint('\\nFACTS ' + json.dumps(facts, default=str))",
            *args)
    line = [x for x in p.stdout.splitlines() if x.startswith("FACTS ")][-1]
    return json.loads(line[len("FACTS "):])


def _inside(path: str | None, folder: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(folder.resolve())


def _checkout_modules(modules: dict[str, str | None]) -> list[str]:
    """Modules loaded from the checkout itself (its project venv's site-packages is fine)."""
    allowed = [Path(p) for p in _project_site_packages()]
    return sorted(n for n, f in modules.items()
                  if _inside(f, REPO) and not any(_inside(f, a) for a in allowed))


# -- 1. the wheel -----------------------------------------------------------------------------------------------------
def test_wheel_holds_one_import_root_with_its_package_data(built: Built):
    assert built.wheel.name == f"mad_guardrails-{built.version}-py3-none-any.whl"
    distinfo = f"mad_guardrails-{built.version}.dist-info/"
    with zipfile.ZipFile(built.wheel) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(distinfo + "entry_points.txt").decode()
        top_level = zf.read(distinfo + "top_level.txt").decode().split()
        metadata = zf.read(distinfo + "METADATA").decode()

    stray = sorted(n for n in names if not n.startswith(("mad_guardrails/", distinfo)))
    assert not stray, f"files outside mad_guardrails/ (would clash with guardrails-ai / openai-agents): {stray[:20]}"
    assert top_level == ["mad_guardrails"]
    assert not [n for n in names if "__pycache__/" in n or n.endswith(".pyc")]
    assert "\nName: mad-guardrails\n" in metadata and f"\nVersion: {built.version}\n" in metadata

    # every module of the mapped folders (a sub-package missing from [tool.setuptools] packages shows here)
    expected = {f"mad_guardrails/{f.split('/', 1)[1]}" if f.startswith("mad_guardrails/") else f"mad_guardrails/{f}"
                for f in built.src_files if f.endswith(".py") and f.split("/")[0] in (*LAYERS, "mad_guardrails")}
    assert "mad_guardrails/__init__.py" in expected and "mad_guardrails/guardrails/cli.py" in expected
    missing = sorted(expected - names)
    assert not missing, f"modules missing from the wheel: {missing}"

    for layer, pattern in PACKAGE_DATA:
        data = sorted(p.relative_to(built.src).as_posix() for p in (built.src / layer).glob(pattern) if p.is_file())
        assert data, f"{layer}/{pattern} matches nothing in the checkout"
        missing = [f for f in data if f"mad_guardrails/{f}" not in names]
        assert not missing, f"package data missing from the wheel ({layer}/{pattern}): {missing}"
    for must in ("prompts/_macros.j2", "retrieval/sources.yaml", "policies/packs/nis2.yaml",
                 "guardrails/profiles/offline.yaml", "agents/roles/default.yaml",
                 "agents/adapters/coordinator-smollm2/adapter_model.safetensors",
                 "retrieval/adapters/minilm-regulatory/adapter_model.safetensors"):
        assert f"mad_guardrails/{must}" in names, must

    cp = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    cp.optionxform = str  # keep the names' case
    cp.read_string(entry_points)
    scripts = {k: v.strip() for k, v in cp["console_scripts"].items()}
    assert scripts.get("mad-guardrails") == CLI and scripts.get("madg") == CLI, scripts
    assert not {"guardrails", "agents"} & set(scripts), scripts
    gui = dict(cp["gui_scripts"]) if cp.has_section("gui_scripts") else {}
    assert not {"guardrails", "agents"} & set(gui), gui
    assert cp["vllm.general_plugins"][VLLM_EP[0]].strip() == VLLM_EP[1]
    assert cp["mad_guardrails.commands"]["eval"].strip() == "mad_guardrails.evals.cli:register"


# -- 2. both sides import in one process ----------------------------------------------------------------------------
THEIR_IMPORTS = r"""
from guardrails import Guard
import guardrails
from agents import Agent
import agents
facts.update(guardrails=guardrails.__file__, agents=agents.__file__, Guard=Guard.__module__, Agent=Agent.__module__)
"""

OUR_IMPORTS = r"""
import importlib.metadata as md
from mad_guardrails import Guardrail, Verdict, __version__
import mad_guardrails
import mad_guardrails.guardrails.graph
from mad_guardrails.policies.loader import load_packs
from mad_guardrails.prompts import prompt_version, render_messages
from mad_guardrails.guardrails.config import available_profiles, load_config
from mad_guardrails.agents.roles import load_roles
from mad_guardrails.agents.models import COORDINATOR_ADAPTER_DIR
from mad_guardrails.retrieval.ingest.base import catalog
from mad_guardrails.evals.loaders import available_sets, load_set, load_spec

rules = load_packs().rules
assert len(rules) > 50, len(rules)
msgs = render_messages("repair", error="no ANSWER line", mode="json")
assert msgs and msgs[-1]["role"] == "user" and "no ANSWER line" in msgs[-1]["content"], msgs
load_config("offline")
dist = md.distribution("mad-guardrails")
facts.update(
    version=__version__, dist_version=dist.version, dist_location=dist.locate_file(""),
    mad_guardrails=mad_guardrails.__file__, Guardrail=Guardrail.__module__, Verdict=Verdict.__module__,
    rules=len(rules), prompt_version=prompt_version(), profiles=available_profiles(), roles=len(load_roles()),
    coordinator_adapter=str(COORDINATOR_ADAPTER_DIR / "adapter_config.json"),
    coordinator_adapter_exists=(COORDINATOR_ADAPTER_DIR / "adapter_config.json").is_file(), acts=len(catalog()),
    package_sets={n: len(load_set(n)) for n in available_sets() if load_spec(n).path.startswith("package:")},
)
"""

LOADED = r"""
facts.update(modules={n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())}, sys_path=sys.path)
"""


def _check_our_side(env: Env, f: dict) -> None:
    assert _inside(f["mad_guardrails"], env.purelib), f["mad_guardrails"]
    assert f["version"] == f["dist_version"] and _inside(f["dist_location"], env.purelib), f
    ours = {n: p for n, p in f["modules"].items() if n == "mad_guardrails" or n.startswith("mad_guardrails.")}
    assert len(ours) > 20 and all(p is None or _inside(p, env.purelib) for p in ours.values()), \
        [n for n, p in ours.items() if p and not _inside(p, env.purelib)]
    assert not _checkout_modules(f["modules"]), _checkout_modules(f["modules"])
    assert f["rules"] > 50 and f["acts"] >= 8 and f["roles"] >= 2
    assert {"offline", "gpu"} <= set(f["profiles"]) and "_macros@" in f["prompt_version"]
    assert f["coordinator_adapter_exists"] and _inside(f["coordinator_adapter"], env.purelib)
    assert f["package_sets"] and all(n > 0 for n in f["package_sets"].values()), f["package_sets"]


def test_both_sides_import_in_one_process(env: Env):
    _installed(env)
    f = _facts(env, THEIR_IMPORTS + OUR_IMPORTS + LOADED)
    _check_our_side(env, f)
    assert _inside(f["guardrails"], env.purelib) and Path(f["guardrails"]).parent.name == "guardrails", f["guardrails"]
    assert _inside(f["agents"], env.purelib) and Path(f["agents"]).parent.name == "agents", f["agents"]
    assert f["Guard"].startswith("guardrails.") and f["Agent"].startswith("agents."), (f["Guard"], f["Agent"])
    assert f["Guardrail"] == "mad_guardrails.guardrails.guardrail" and f["Verdict"] == "mad_guardrails.core.verdict"
    # the venv's own site-packages comes before the borrowed one, and nothing of the checkout is on the path
    sp = [str(env.purelib.resolve())] + [str(Path(p).resolve()) for p in _project_site_packages()]
    order = [str(Path(p).resolve()) for p in f["sys_path"] if p and str(Path(p).resolve()) in sp]
    assert order[:2] == sp[:2], f["sys_path"]
    assert not [p for p in f["sys_path"] if p and Path(p).resolve() == REPO.resolve()], f["sys_path"]


def _help(p: subprocess.CompletedProcess) -> str:
    return " ".join((p.stdout + p.stderr).split())


def test_console_scripts_ours_and_theirs(env: Env):
    _installed(env)
    for script in ("mad-guardrails", "madg"):
        p = _run([env.bin / script, "--help"], env=env.environ, cwd=env.cwd)
        text = _help(p)
        assert OUR_HELP in text and "policies" in text, text[:2000]
        assert " eval " in text, "the eval command (entry point group mad_guardrails.commands) is not registered"
    p = _run([env.bin / "mad-guardrails", "policies", "list", "--json"], env=env.environ, cwd=env.cwd)
    rules = json.loads(p.stdout)
    assert len(rules) > 50 and all(r["id"] and r["act"] for r in rules)

    script = env.bin / "guardrails"
    assert script.is_file(), "guardrails-ai's `guardrails` script is missing"
    assert "mad_guardrails" not in script.read_text(encoding="utf-8", errors="replace")
    p = _run([script, "--help"], env=env.environ, cwd=env.cwd, check=False)
    assert OUR_HELP not in _help(p), "`guardrails --help` printed our app's help"
    assert p.returncode == 0 and "Usage: guardrails" in _help(p), _help(p)[:2000]


# -- 3. vLLM finds the plugin ---------------------------------------------------------------------------------------
VLLM = r"""
import importlib.util
from importlib.metadata import entry_points

eps = [e for e in entry_points(group="vllm.general_plugins") if e.name == sys.argv[1]]
facts["eps"] = [(e.value, e.dist.name if e.dist else None, e.dist.locate_file("") if e.dist else None) for e in eps]
register = eps[0].load()
facts["register"] = f"{register.__module__}:{register.__qualname__}"
import mad_guardrails.agents.vllm_plugin as vp
facts["plugin_file"] = vp.__file__
facts["vllm"] = importlib.util.find_spec("vllm") is not None
if facts["vllm"]:  # vLLM's own discovery, as its processes do it at start
    from vllm import plugins
    from vllm.platforms import current_platform

    loaded = plugins.load_plugins_by_group(plugins.DEFAULT_PLUGINS_GROUP)
    facts["vllm_loaded"] = sorted(loaded)
    loaded[sys.argv[1]]()
    facts["cpu"] = current_platform.is_cpu()
    facts["patched"] = vp._PATCHED
    if facts["cpu"]:
        import vllm.lora.ops.torch_ops.lora_ops as ops
        facts["bgmv_shrink"] = ops.bgmv_shrink.__module__
from agents import Agent
import agents
facts["agents"] = agents.__file__
facts["Agent"] = Agent.__module__
"""


def test_vllm_plugin_entry_point_resolves(env: Env):
    _installed(env)
    f = _facts(env, VLLM, VLLM_EP[0])
    assert len(f["eps"]) == 1, f["eps"]  # the editable install's metadata on the borrowed path is shadowed
    value, dist, location = f["eps"][0]
    assert value == VLLM_EP[1] and dist == "mad-guardrails" and _inside(location, env.purelib), f["eps"]
    assert f["register"] == "mad_guardrails.agents.vllm_plugin:register"
    assert _inside(f["plugin_file"], env.purelib), f["plugin_file"]
    if f["vllm"]:
        assert VLLM_EP[0] in f["vllm_loaded"], f["vllm_loaded"]
        if f["cpu"]:
            assert f["patched"] and f["bgmv_shrink"] == "mad_guardrails.agents.vllm_plugin", f
    assert _inside(f["agents"], env.purelib) and f["Agent"].startswith("agents."), (f["agents"], f["Agent"])


# -- 4. uninstalling the other two leaves ours whole (keep this test last: it changes the venv) ----------------------
RECORDS = r"""
import importlib.metadata as md
dists = {n: md.distribution(n) for n in sys.argv[1:]}
facts.update({n: [str(d.locate_file(f)) for f in (d.files or [])] for n, d in dists.items()})
"""

SPECS = r"""
import importlib.util
facts.update({f"{n}_spec": getattr(importlib.util.find_spec(n), "origin", None) for n in ("guardrails", "agents")})
"""


def test_uninstalling_the_others_keeps_ours_whole(env: Env):
    records = _facts(_installed(env), RECORDS, "mad-guardrails", *THEIRS)
    ours = {str(Path(p).resolve()) for p in records["mad-guardrails"]}
    theirs = {str(Path(p).resolve()) for n in THEIRS for p in records[n]}
    assert len(ours) > 100 and theirs
    shared = sorted(ours & theirs)
    assert not shared, f"files owned by both mad-guardrails and {THEIRS}: {shared[:20]}"

    env.others_removed = True
    _run([env.python, "-m", "pip", "--disable-pip-version-check", "-q", "uninstall", "-y", *THEIRS],
         env=env.environ, cwd=env.cwd)
    assert not (env.bin / "guardrails").exists()
    gone = sorted(p for p in ours if not Path(p).exists())
    assert not gone, f"our files removed by the uninstall: {gone[:20]}"

    f = _facts(env, OUR_IMPORTS + SPECS + LOADED)
    _check_our_side(env, f)
    for name in ("guardrails", "agents"):  # no longer importable from the venv (the wheel ships neither)
        assert not _inside(f[f"{name}_spec"], env.purelib), f[f"{name}_spec"]
    p = _run([env.bin / "mad-guardrails", "--help"], env=env.environ, cwd=env.cwd)
    assert OUR_HELP in _help(p)
