"""``audit --engine ray`` on a real local Ray cluster (``ray.init(num_cpus=2)``, no mocks): the real retriever (a small
real index), policy screener and entailment verifier in the actors; the debate stage's LLM is a loopback fake OpenAI
server (deterministic canned answers: what is tested is the routing, resume and fault tolerance, and a 2-core CI
cannot afford SmolLM2 debates in three pipelines). The local engine runs the same rows against the same server, so
"same decisions" compares the engines, not the model. One test sends its debated row to the session's real vLLM CPU
server instead (the ``vllm_server`` fixture: no extra server start)."""

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


def test_the_driver_streams_and_a_resume_keeps_input_order(ray_cluster, profile, local_results, tmp_path):
    """The driver feeds the cluster from a RowSource (the input re-read, never listed), two rows per block; an earlier
    run left four results in reverse order and one for an id no longer in the input: only the rest is checked, and
    the file ends in input order with one row per id and the local engine's decisions."""
    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.audit.runner import ResultRow
    from mad_guardrails.guardrails.audit.streaming import RowSource
    from mad_guardrails.guardrails.config import load_config

    src = rows_file(tmp_path)
    ids = [r.id for r in read_rows(src)]
    out = tmp_path / "out"
    out.mkdir()
    earlier = [local_results[i] for i in reversed(ids[:4])] + [ResultRow(id="gone", status="error", error="line 9: x")]
    (out / "verdicts.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in earlier))
    runner = RayAuditRunner(load_config(profile), out, workers=1, batch_size=1, block_rows=2, progress=False)
    outcome = runner.run(RowSource(src), src)
    assert (outcome.resumed, outcome.checked, outcome.counts.total) == (4, len(ids) - 4, len(ids))
    assert [r.id for r in outcome.rows] == ids == [x["id"] for x in verdict_lines(out)]
    assert decisions(outcome.rows) == decisions(local_results.values())
    assert any("not in the input" in note for note in outcome.repaired)
    assert all(isinstance(b, tuple) for b in runner.store.rows.values())  # ids and decisions kept, not rows


#: the real-model test: two fast-path rows, a contradicted deadline, one debated row (and the empty-output row)
REAL_PICK = ["offtopic-banana-bread", "offtopic-eiffel", "nis2-early-warning-72h", "nis2-evasion-ransomware",
             "gdpr-evasion-leak", "empty-output-row"]


@pytest.mark.vllm
def test_against_the_real_vllm_server_both_engines_decide_alike(ray_cluster, vllm_server, real_small_index_dir,
                                                               offline_embedder_config, tmp_path):
    """The debated row goes to the session's real vLLM CPU server (SmolLM2-135M, the offline profile's flags; no
    second server) on both engines: the same decision and path per id, one row per id. One request at a time
    (``llm.concurrency: 1``), so both engines send the server the same requests one by one and greedy decoding
    gives the same tokens; one debater, one round and short evidence keep it to two short model calls per engine."""
    import yaml

    from mad_guardrails.agents.roles import load_roles
    from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
    from mad_guardrails.guardrails.audit.reader import read_rows
    from mad_guardrails.guardrails.audit.runner import AuditRunner
    from mad_guardrails.guardrails.config import GuardrailConfig
    from mad_guardrails.guardrails.guardrail import Guardrail

    data = offline_profile_on(vllm_server, index_dir=real_small_index_dir,
                              embedder=offline_embedder_config.model_dump(mode="json"))
    roles = tmp_path / "one-debater.yaml"  # the default prosecutor alone: one turn + the coordinator per debate
    roles.write_text(yaml.safe_dump({"version": 1, "roles": [r.model_dump(mode="json")
                                                              for r in load_roles("default")[:1]]}))
    data["llm"].update(serve=None, concurrency=1, timeout_s=600)
    data["debate"].update(roles=str(roles), max_rounds=1, evidence_k=2, evidence_chars=300, max_text_chars=60,
                          turn_max_tokens=80, coordinator_max_tokens=96)
    data["timeout_s"] = 900.0
    cfg = GuardrailConfig.model_validate(data)
    lines = [ln for ln in EXAMPLES.read_bytes().splitlines()
             if any(f'"id": "{i}"' in ln.decode(errors="replace") for i in REAL_PICK)]
    src = tmp_path / "rows.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    rows = read_rows(src)
    assert len(rows) == len(REAL_PICK)
    local = AuditRunner(cfg, tmp_path / "local", progress=False).run(rows, src, lambda: Guardrail(cfg)).rows
    on_ray = RayAuditRunner(cfg, tmp_path / "ray", workers=1, batch_size=2, progress=False).run(rows, src).rows
    assert [r.id for r in on_ray] == [r.id for r in local] == [r.id for r in rows]
    assert decisions(on_ray) == decisions(local)
    ids = [x["id"] for x in verdict_lines(tmp_path / "ray")]
    assert len(ids) == len(set(ids)) == len(rows)
    by = {r.id: r for r in on_ray}
    assert by["nis2-early-warning-72h"].verdict["path"] == "fast_block"
    assert by["offtopic-banana-bread"].verdict["path"] == "fast_allow"
    assert by["empty-output-row"].status == "error"
    debated = [r for r in on_ray if r.verdict and r.verdict["transcript"]]
    assert debated and all(r.verdict["usage"]["llm_calls"] >= 1 for r in debated), {  # the real model was asked
        r.id: (r.verdict or {}).get("path") for r in on_ray}


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
