"""Server supervision without the session server: the command line, stop by PID (process group), a failed start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mad_guardrails.agents.config import LLMConfig, ServeConfig
from mad_guardrails.agents.serve import VLLMServer, ensure_server, pid_file, server_status, stop_server
from mad_guardrails.core.errors import BackendError
from tests.fixtures.llm_server import VLLM_AVAILABLE, VLLM_TEST_ENV, free_port


def test_command_line_of_the_offline_profile(monkeypatch, tmp_path):
    import mad_guardrails.agents.models as models

    monkeypatch.setattr(models, "COORDINATOR_ADAPTER_DIR", tmp_path / "missing")
    monkeypatch.setattr(models, "smollm2_dir", lambda: tmp_path / "smollm2")
    from mad_guardrails.guardrails.config import load_config

    sc = load_config("offline").llm.serve
    s = VLLMServer(sc)
    cmd = s.command()
    assert cmd[1:4] == ["-u", "-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--model") + 1] == str(tmp_path / "smollm2")
    assert cmd[cmd.index("--served-model-name") + 1] == "smollm2"
    assert "--enable-lora" not in cmd and s.missing_adapters == ["coordinator"]  # adapter not trained yet
    adapter = tmp_path / "coord"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    monkeypatch.setattr(models, "COORDINATOR_ADAPTER_DIR", adapter)
    cmd = VLLMServer(sc).command()
    assert cmd[cmd.index("--lora-modules") + 1] == f"coordinator={adapter}" and "--enable-lora" in cmd
    assert VLLMServer(sc).env()["VLLM_CPU_KVCACHE_SPACE"] == "1"


def _state(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_stop_by_pid_kills_the_whole_process_group(guardrails_home):
    port = free_port()
    # a stand-in process tree with 'vllm' on its command line: a parent and a child in a new session
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess,sys,time; subprocess.Popen([sys.executable,'-c',"
                             "'import time; time.sleep(120)']); time.sleep(120)", "vllm-standin"],
                            start_new_session=True)
    pid_file(port).write_text(json.dumps({"pid": proc.pid, "port": port, "host": "127.0.0.1"}))
    time.sleep(0.5)
    children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2
    info = server_status(port)
    assert info["alive"] and not info["healthy"]
    t0 = time.perf_counter()
    assert stop_server(port, grace_s=5)
    assert proc.wait(timeout=10) is not None and time.perf_counter() - t0 < 8
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert all(_state(p) in ("Z", "gone") for p in left)  # no live process left in the group (zombies await init)
    assert not pid_file(port).exists() and server_status(port) is None


def test_stop_never_signals_a_pid_that_is_not_vllm(guardrails_home):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    pid_file(port).write_text(json.dumps({"pid": proc.pid, "port": port}))
    try:
        assert stop_server(port) is False and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_cli_status_and_stop_without_a_server(guardrails_home):
    from mad_guardrails.guardrails.cli import app

    port = str(free_port())
    r = CliRunner().invoke(app, ["serve", "--profile", "offline", "--status", "--port", port, "--json"])
    assert r.exit_code == 1 and json.loads(r.stdout)["alive"] is False
    r = CliRunner().invoke(app, ["serve", "--profile", "offline", "--stop", "--port", port])
    assert r.exit_code == 0


def test_ensure_server_does_nothing_when_not_asked_or_already_answered(scripted_server):
    assert ensure_server(LLMConfig()) is None  # no serve section
    sc = ServeConfig(model="x", autostart=False)
    assert ensure_server(LLMConfig(serve=sc)) is None  # not asked to
    srv = scripted_server(lambda body: (200, {}, 0))  # something answers GET /v1/models at base_url
    assert ensure_server(LLMConfig(base_url=srv.base_url, serve=sc.model_copy(update={"autostart": True}))) is None


def test_start_refuses_a_busy_port(scripted_server):
    srv = scripted_server(lambda body: (200, {}, 0))
    port = int(srv.base_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(BackendError, match="already in use"):
        VLLMServer(ServeConfig(model="x", port=port)).start()


@pytest.mark.vllm
@pytest.mark.skipif(not VLLM_AVAILABLE, reason="vLLM not installed")
def test_failed_start_reports_the_log(tmp_path, guardrails_home):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    (bad / "config.json").write_text('{"model_type": "no-such-architecture"}')
    s = VLLMServer(ServeConfig(model=str(bad), port=free_port(), env=VLLM_TEST_ENV, startup_timeout_s=600),
                   log_path=tmp_path / "vllm.log")
    with pytest.raises(BackendError, match="exited with code") as ei:
        s.start(wait=True)
    assert "last log lines" in str(ei.value) and s.proc is None
    assert not pid_file(s.cfg.port).exists()
    assert os.path.getsize(tmp_path / "vllm.log") > 0


def test_start_refuses_while_another_server_is_recorded_for_the_port(guardrails_home):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "vllm-standin"],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30  # under load the child may not have exec'd yet (its cmdline is still ours)
        while b"vllm-standin" not in Path(f"/proc/{proc.pid}/cmdline").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid_file(port).write_text(json.dumps({"pid": proc.pid, "port": port}))
        with pytest.raises(BackendError, match=f"pid {proc.pid}"):
            VLLMServer(ServeConfig(model="x", port=port)).start()
    finally:
        proc.kill()
        proc.wait()
    assert server_status(port)["alive"] is False  # a stale pid file no longer blocks a start


@pytest.mark.vllm
@pytest.mark.skipif(not VLLM_AVAILABLE, reason="vLLM not installed")
def test_a_closed_terminal_stops_the_server_the_serve_command_started(guardrails_home):
    """SIGHUP (the terminal closed) used to kill `mad-guardrails serve` on the spot and orphan vLLM on its port."""
    port = free_port()
    cli = subprocess.Popen([sys.executable, "-m", "mad_guardrails.guardrails.cli", "serve", "--profile", "offline",
                            "--port", str(port)], start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "120"})
    try:
        deadline = time.monotonic() + 180
        while not pid_file(port).exists() and cli.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file(port).exists(), cli.stdout.read() if cli.poll() is not None else "no pid file in 180 s"
        vllm_pid = json.loads(pid_file(port).read_text())["pid"]
        cli.send_signal(signal.SIGHUP)  # while it is still starting: the worst moment to leave an orphan
        out, _ = cli.communicate(timeout=90)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
    assert "stopping" in out, out[-2000:]
    assert not Path(f"/proc/{vllm_pid}").exists() or server_status(port) is None, out[-2000:]
    assert not pid_file(port).exists()
