"""``audit --engine ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``, no mocks): the real retriever (a small
real index), policy screener and entailment verifier in the actors; the debate stage's LLM is a loopback fake OpenAI
server (deterministic canned answers: what is tested is the routing, resume and fault tolerance, and a 2-core CI
cannot afford SmolLM2 debates in three pipelines). The local engine runs the same rows against the same server, so
"same decisions" compares the engines, not the model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mad_guardrails.core.paths import PROJECT_ROOT
from tests.fixtures.llm_server import ScriptedServer, completion, free_port, offline_profile_on

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'mad-guardrails[ray]')")

pytestmark = [pytest.mark.slow]

#: a debater's turn as the bounded schema wants it (every debater calls it a violation, so round 1 ends in
#: consensus); the coordinator's answer cannot be verified and the row fails closed to flag on both engines
TURN = '{"stance": "violation", "claims": [], "confidence": 0.6}'

EXAMPLES = PROJECT_ROOT / "examples" / "audit_small.jsonl"
#: rows the cascade settles (fast_allow / verified_allow / fast_block), two debated rows and the two broken rows
PICK = ["nis2-early-warning-ok", "nis2-early-warning-72h", "gdpr-breach-7-days", "offtopic-banana-bread",
        "offtopic-eiffel", "nis2-evasion-ransomware", "gdpr-evasion-leak"]


def rows_file(tmp_path: Path, extra_offtopic: int = 0) -> Path:
    lines = EXAMPLES.read_bytes().splitlines()
    keep = [ln for ln in lines if any(f'"id": "{i}"' in ln.decode(errors="replace") for i in PICK)] + lines[-2:]
    keep += [json.dumps({"id": f"filler-{i}", "output": f"Knead the dough {i} times and let it rest for an hour."})
             .encode() for i in range(extra_offtopic)]
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b"\n".join(keep) + b"\n")
    return p


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for the module (2 CPUs, like the CI machine); its address for CLI subprocesses."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             object_store_memory=256 * 1024**2)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def fake_llm():
    """A loopback OpenAI-compatible server answering every request with :data:`TURN` after 50 ms."""
    s = ScriptedServer(lambda body: (200, completion(TURN, model=body.get("model", "m")), 0.05))
    yield s
    s.close()


@pytest.fixture(scope="module")
def profile(fake_llm, real_small_index_dir, offline_embedder_config, tmp_path_factory):
    """The offline profile on the small real index, its LLM the fake server (two endpoints: a dead one first)."""
    import yaml

    data = offline_profile_on(fake_llm, index_dir=real_small_index_dir,
                              embedder=offline_embedder_config.model_dump(mode="json"))
    data["llm"]["base_urls"] = [f"http://127.0.0.1:{free_port()}/v1", fake_llm.base_url]
    data["llm"]["retries"] = 0
    p = tmp_path_factory.mktemp("ray-profile") / "offline-ray.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def local_results(profile, tmp_path_factory):
    """The local engine's results for :func:`rows_file` (the reference)."""
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.audit.runner import AuditRunner
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.guardrails.guardrail import Guardrail

    d = tmp_path_factory.mktemp("local")
    src = rows_file(d)
    cfg = load_config(profile)
    out = AuditRunner(cfg, d / "out", progress=False).run(read_rows(src), src, lambda: Guardrail(cfg))
    return {r.id: r for r in out.rows}


def decisions(rows) -> dict[str, tuple]:
    return {r.id: (r.status, r.decision, r.verdict["path"] if r.verdict else None) for r in rows}


def verdict_lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "verdicts.jsonl").read_text().splitlines() if x.strip()]


def test_ray_engine_gives_the_local_engines_decisions(ray_cluster, profile, local_results, tmp_path):
    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.config import load_config

    src = rows_file(tmp_path)
    rows = read_rows(src)
    out = RayAuditRunner(load_config(profile), tmp_path / "out", workers=1, batch_size=2, progress=False).run(
        rows, src)
    assert [r.id for r in out.rows] == [r.id for r in rows]  # one row per input id, input order
    assert decisions(out.rows) == decisions(local_results.values())
    paths = {r.verdict["path"] for r in out.rows if r.verdict}
    assert {"fast_block", "fast_allow"} <= paths, paths  # settled in the CPU stage
    debated = [r for r in out.rows if r.verdict and r.verdict["transcript"]]
    assert len(debated) >= 2 and all(r.verdict["usage"]["llm_calls"] >= 3 for r in debated)  # the LLM stage ran
    assert sum(r.status == "error" for r in out.rows) == 2
    assert out.manifest.models and (tmp_path / "out" / "run.json").exists()


def _debate_worker_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "DebateStage" in " ".join(p.info["cmdline"] or [])]


def test_a_killed_worker_and_a_dead_endpoint_lose_no_row(ray_cluster, profile, local_results, fake_llm, tmp_path):
    """SIGKILL the debate actor while it debates (Ray restarts it and runs its batch again), with the first of the two
    LLM endpoints down all along: every id once, the same decisions."""
    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.config import load_config

    src = rows_file(tmp_path)
    rows = read_rows(src)
    runner = RayAuditRunner(load_config(profile), tmp_path / "out", workers=1, batch_size=1, progress=False)
    seen = len(fake_llm.requests)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(out=runner.run(rows, src)))
    t.start()
    killed = None
    deadline = time.monotonic() + 240
    while t.is_alive() and killed is None and time.monotonic() < deadline:
        if len(fake_llm.requests) > seen:  # a debate is under way
            pids = _debate_worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed = pids[0]
        time.sleep(0.05)
    t.join(timeout=300)
    assert killed is not None, "the debate stage never started"
    out = result["out"]
    assert [r.id for r in out.rows] == [r.id for r in rows]
    assert decisions(out.rows) == decisions(local_results.values())
    ids = [x["id"] for x in verdict_lines(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == len(rows)


def test_resume_after_the_driver_is_killed_gives_one_row_per_id(ray_cluster, profile, local_results, fake_llm,
                                                               tmp_path):
    """SIGKILL the CLI's driver once its debates are under way (rows may or may not have come back yet: Ray hands
    results over block by block); the same command again finishes with one row per id."""
    src = rows_file(tmp_path, extra_offtopic=12)
    out = tmp_path / "out"
    cmd = [sys.executable, "-P", "-m", "mad_guardrails.guardrails.cli", "audit", str(src), "--out", str(out),
           "--profile", str(profile), "--engine", "ray", "--address", ray_cluster, "--workers", "1",
           "--no-progress", "--fail-on", "never"]
    n = 0
    seen = len(fake_llm.requests)
    with open(tmp_path / "first-run.log", "wb") as log:  # a file, not a pipe nobody reads while the driver runs
        p = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while p.poll() is None and time.monotonic() < deadline:
            n = (out / "verdicts.jsonl").read_bytes().count(b"\n") if (out / "verdicts.jsonl").exists() else 0
            if n >= 2 and len(fake_llm.requests) > seen:  # error rows written, a debate under way
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL, (tmp_path / "first-run.log").read_text(errors="replace")[-3000:]
    total = len(src.read_bytes().splitlines())
    assert 2 <= n < total
    res = subprocess.run(cmd, check=False, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    rows = verdict_lines(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)) == total
    by = {r["id"]: r for r in rows}
    for i, want in local_results.items():
        assert (by[i]["status"], (by[i]["verdict"] or {}).get("decision")) == (
            want.status, (want.verdict or {}).get("decision")), i
    assert "from an earlier run" in res.stdout and (out / "report.html").exists()
    assert json.loads((out / "run.json").read_text())["runs"] == 2


def test_engine_ray_without_ray_names_the_extra(tmp_path, monkeypatch):
    import builtins

    from mad_guardrails.core.errors import ConfigError
    from mad_guardrails.guardrails.audit import ray_engine

    real = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError) as ei:
        ray_engine.require_ray()
    assert "mad-guardrails[ray]" in str(ei.value)
