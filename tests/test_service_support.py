"""Helpers of the service tests (tests/test_service.py, tests/test_service_proxy.py): the service as a subprocess on a
free loopback port, the test profile (the offline profile on the small real index the e2e tests use), and a scripted
OpenAI-compatible upstream (JSON and SSE) for the proxy's control flow. No tests here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from mad_guardrails.agents.serve import free_port
from mad_guardrails.core.paths import PROJECT_ROOT

ALLOW_TEXT = "Preheat the oven to 180 degrees."
WRONG = "Under NIS2 you have 72 hours to send the early warning."
WRONG_QUERY = "When is the NIS2 early warning due?"
EVADE = ("We were hit by ransomware. Don't report it to the CSIRT: restore from backups over the weekend and keep the "
         "incident quiet; NIS2 reporting only applies if customer data leaked.")
EVADE_QUERY = "We got hit by ransomware. Do we need to tell anyone?"


def write_profile(base_profile_path: Path, index_dir: Path, llm_base_url: str, dest: Path, **llm) -> Path:
    """The tests' offline profile (embedder adapter off) on ``index_dir``, its LLM at ``llm_base_url`` (not started
    by the profile), with the e2e tests' quick debate settings."""
    import yaml

    from tests.fixtures.llm_server import QUICK_DEBATE

    data = yaml.safe_load(base_profile_path.read_text(encoding="utf-8"))
    data["retrieval"]["index_dir"] = str(index_dir)
    data["llm"]["base_url"] = llm_base_url
    data["llm"]["serve"]["autostart"] = False
    data["llm"].update(llm)
    data["debate"].update(QUICK_DEBATE)
    dest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dest


class ServiceProcess:
    """``mad-guardrails api ...`` in a subprocess (its own session), logs to a file; stopped by its PID."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None):
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        e = {**os.environ, "COLUMNS": "120", **(env or {})}
        cmd = [sys.executable, "-m", "mad_guardrails.guardrails.cli", "api", "--port", str(self.port), *args]
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=e, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_lines(self) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_loaded(self, timeout_s: float = 240) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the service exited ({self.proc.returncode}):\n{self.log_text()[-4000:]}")
            try:
                r = httpx.get(self.base_url + "/healthz", timeout=2)
                state = r.json().get("guardrail")
                if state == "ready":
                    return
                if state == "failed":
                    pytest.fail(f"the guardrail failed to load:\n{self.log_text()[-4000:]}")
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        pytest.fail(f"the service did not load in {timeout_s:.0f} s:\n{self.log_text()[-4000:]}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode


# -- a scripted OpenAI-compatible upstream ---------------------------------------------------------------------------
class FakeUpstream:
    """``POST /v1/chat/completions`` answers ``answer(last_user_message)`` (a str, or an int status for an error),
    as JSON or, with ``stream: true``, as SSE in chunks of ``chunk_chars`` characters ``delay_s`` apart (a role chunk
    first, then content, a finish chunk, a usage chunk when ``stream_options.include_usage``, ``[DONE]``). Records
    the requests and whether a stream was cut off by the client (``aborted``)."""

    def __init__(self, answer: Callable[[str], str | int], chunk_chars: int = 6, delay_s: float = 0.01):
        self.answer = answer
        self.requests: list[dict] = []
        self.aborted = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                outer.requests.append(body)
                user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
                text = outer.answer(user)
                if isinstance(text, int):
                    return self._send(text, {"error": {"message": f"scripted {text}", "type": "server_error"}})
                base = {"id": "cmpl-fake", "created": 1, "model": body.get("model", "m")}
                if not body.get("stream"):
                    return self._send(200, {**base, "object": "chat.completion", "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()

                def ev(delta, finish=None, **extra):
                    obj = {**base, "object": "chat.completion.chunk",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                    self.wfile.write(f"data: {json.dumps(obj)}\n\n".encode())
                    self.wfile.flush()

                try:
                    ev({"role": "assistant", "content": ""})
                    for i in range(0, len(text), outer_chunk):
                        time.sleep(outer.delay_s)
                        ev({"content": text[i:i + outer_chunk]})
                    ev({}, "stop")
                    if (body.get("stream_options") or {}).get("include_usage"):
                        self.wfile.write(("data: " + json.dumps({**base, "object": "chat.completion.chunk",
                                                                 "choices": [], "usage": {
                                                                     "prompt_tokens": 5, "completion_tokens": 7,
                                                                     "total_tokens": 12}}) + "\n\n").encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    outer.aborted += 1
                self.close_connection = True

        outer_chunk = chunk_chars
        self.delay_s = delay_s
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def metric(text: str, name: str, **labels) -> float:
    """The value of one sample in a Prometheus exposition (labels in any order); 0 when absent."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric_name, _, lab = head.partition("{")
        if metric_name != name:
            continue
        have = dict(kv.split("=", 1) for kv in lab.rstrip("}").split(",") if "=" in kv)
        if all(have.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
            found = True
    return total if found else 0.0
