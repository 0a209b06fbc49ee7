"""Start nothing that is not needed: the LLM backend (and the vLLM server a profile autostarts) starts on the first
debate, never for a check settled on a fast path; every option and input is validated before anything loads.

The CLI tests run the real offline profile (real index, embedder, verifier) with ``llm.serve`` pointed at a model path
that does not exist on a port nobody uses: had anything tried to start the server, the check would fail closed and the
port / pid file would show it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mad_guardrails.agents.config import LLMConfig
from mad_guardrails.guardrails.components import LazyBackend, status_listener

ROOT = Path(__file__).resolve().parents[1]


def test_lazy_backend_starts_on_first_chat_only_and_reports_it():
    b = LazyBackend(LLMConfig(backend="fake"), coordinator_model="coordinator")
    started = []

    def on_start(lb):
        started.append(lb.backend.name)
        lb.backend.push("hello", "again")

    b.on_start = on_start
    assert not b.started and b.supports_grammar  # answered without building anything
    heard = []
    with status_listener(heard.append):
        r = asyncio.run(b.chat([{"role": "user", "content": "hi"}]))
    assert b.started and started == ["fake"] and isinstance(r.text, str)
    assert any("LLM backend" in m for m in heard)
    asyncio.run(b.chat([{"role": "user", "content": "again"}]))
    assert started == ["fake"]  # once
    asyncio.run(b.aclose())


def _free_port() -> int:
    from mad_guardrails.agents.serve import free_port

    return free_port()


@pytest.fixture(scope="module")
def cold_profile(tmp_path_factory, request) -> tuple[Path, int]:
    """The offline profile with an autostarting server that cannot start (missing model, unused port)."""
    import yaml

    from mad_guardrails.guardrails.config import load_config

    data = load_config("offline").model_dump(mode="json")
    data["retrieval"]["index_dir"] = str(request.getfixturevalue("real_small_index_dir"))
    data["retrieval"]["embedder"] = request.getfixturevalue("offline_embedder_config").model_dump(mode="json")
    data["retrieval"]["domain_head"] = None  # tied to the adapter embedder
    if "harm_model" in data["verifier"]:  # another screen, not what this test is about (and it may not ship yet)
        data["verifier"]["harm_model"] = None
    port = _free_port()
    data["llm"]["base_url"] = f"http://127.0.0.1:{port}/v1"
    data["llm"]["serve"].update({"model": "/nonexistent/model-for-lazy-test", "port": port, "autostart": True,
                                 "lora_modules": {}, "startup_timeout_s": 5})
    p = tmp_path_factory.mktemp("lazy") / "cold.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p, port


def _cli(*args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-P", "-m", "mad_guardrails.guardrails.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


def test_a_fast_path_check_from_cold_does_not_start_the_llm_server(cold_profile):
    from mad_guardrails.agents.serve import _port_open, pid_file

    profile, port = cold_profile
    r = _cli("check", "Preheat the oven to 180 degrees and bake the bread for forty minutes.", "--profile",
             str(profile), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    v = json.loads(r.stdout)
    assert v["decision"] == "allow" and v["path"] in ("fast_allow", "verified_allow") and v["usage"]["llm_calls"] == 0
    assert "starting the LLM server" not in r.stderr
    assert not _port_open("127.0.0.1", port) and not pid_file(port).exists()
    # the audit trail is stamped
    assert v["input_hash"] and v["created"] and v["version"] and v["trace_id"] and v["config_hash"]


def test_the_python_api_builds_no_llm_backend_for_a_fast_path(cold_profile):
    from mad_guardrails.guardrails.guardrail import Guardrail

    profile, port = cold_profile
    with Guardrail.from_config(profile) as g:
        v = g.check("Preheat the oven to 180 degrees and bake the bread for forty minutes.")
        assert v.path in ("fast_allow", "verified_allow") and v.usage.llm_calls == 0
        assert not g.components.llm_started and g.components.backend.server is None
        (a, b) = list(g.check_many([{"id": "a1", "output": "Bake the bread."}, {"id": "b2", "output": "Boil eggs."}]))
        assert (a.item_id, b.item_id) == ("a1", "b2") and a.input_hash != b.input_hash
        assert not g.components.llm_started


@pytest.mark.parametrize("args, needle", [
    (["check", "hello", "--mode", "lenient"], "unknown mode 'lenient'"),
    (["check", "hello", "--policy", "no-such-pack"], "unknown policy 'no-such-pack'"),
    (["check", "hello", "--packs", "/no/such/pack.yaml"], "does not exist"),
    (["check", "   "], "output is empty"),
])
def test_bad_options_fail_before_anything_loads(args, needle, tmp_path):
    # the profile's index does not exist: had anything loaded before validation, the error would be about the index
    import yaml

    from mad_guardrails.guardrails.config import load_config

    data = load_config("offline").model_dump(mode="json")
    data["retrieval"]["index_dir"] = str(tmp_path / "no-index")
    if "harm_model" in data["verifier"]:
        data["verifier"]["harm_model"] = None
    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump(data))
    r = _cli(*args, "--profile", str(prof))
    assert r.returncode == 2, r.stdout + r.stderr
    assert needle in " ".join(r.stderr.split()), r.stderr
    assert "index" not in r.stderr.lower()


def test_the_check_deadline_does_not_count_the_llm_server_start():
    """The first debate of a cold process waits for the server (minutes on CPU); that wait is not held against the
    check's deadline, any other slowness is."""
    import time

    from mad_guardrails.guardrails.trail import within_deadline

    class Starting:  # a backend that spent 1.5 s of this check starting
        def start_overlap(self, since):
            return 1.5

    async def slow():
        await asyncio.sleep(1.0)
        return "verdict"

    assert asyncio.run(within_deadline(slow(), 0.5, Starting(), time.monotonic())) == "verdict"
    with pytest.raises(TimeoutError):
        asyncio.run(within_deadline(slow(), 0.5, None, time.monotonic()))
    b = LazyBackend(LLMConfig(backend="fake"))
    t0 = time.monotonic()
    asyncio.run(asyncio.to_thread(b.start))
    assert 0.0 <= b.start_overlap(t0) < 5 and b.start_overlap(time.monotonic() + 10) == 0.0
