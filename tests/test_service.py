"""``mad-guardrails api`` as a client meets it: a subprocess on a free loopback port over the offline profile on the
small real index (tests/fixtures), called with httpx. The checks here settle on the fast paths (no LLM); the profile's
LLM is a scripted endpoint that answers /models at once and chat requests after 30 s, so a debated case meets the
service's 4 s deadline and fails closed. Concurrency 1 with no wait queue, plus the test-only ``x-test-hold-s``
header (``--test-hooks``), make the 429 deterministic."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from typer.testing import CliRunner

from mad_guardrails.core.verdict import Verdict
from tests.fixtures.llm_server import ScriptedServer
from tests.test_service_support import (
    ALLOW_TEXT,
    EVADE,
    EVADE_QUERY,
    WRONG,
    WRONG_QUERY,
    ServiceProcess,
    metric,
    write_profile,
)

ENV_KEYS = ("k-alpha", "k-beta")
FILE_KEY = "k-from-file"
AUTH = {"Authorization": f"Bearer {ENV_KEYS[0]}"}
MAX_BODY = 65536


@pytest.fixture(scope="module")
def slow_llm():
    s = ScriptedServer(lambda body: (503, {"error": "slow"}, 30.0))
    yield s
    s.close()


@pytest.fixture(scope="module")
def service(base_profile_path, real_small_index_dir, slow_llm, tmp_path_factory):
    from mad_guardrails.guardrails.service.auth import hash_key

    d = tmp_path_factory.mktemp("service")
    profile = write_profile(base_profile_path, real_small_index_dir, slow_llm.base_url, d / "profile.yaml",
                            retries=0)
    (d / "keys.txt").write_text(f"# test key\n{hash_key(FILE_KEY)}\n")
    svc = ServiceProcess(["--profile", str(profile), "--key-file", str(d / "keys.txt"), "--max-concurrency", "1",
                          "--max-queue", "0", "--max-body-bytes", str(MAX_BODY), "--max-batch", "8",
                          "--timeout-s", "4", "--test-hooks", "--otel", "console"],
                         d / "service.log", env={"MAD_GUARDRAILS_API_KEYS": ",".join(ENV_KEYS)})
    svc.wait_loaded()
    yield svc
    rc = svc.stop()
    assert rc in (0, -15), svc.log_text()[-3000:]  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert any(x.get("msg") == "closing the guardrail" for x in svc.log_lines())


@pytest.fixture()
def client(service):
    with httpx.Client(base_url=service.base_url, timeout=30, trust_env=False) as c:
        yield c


# -- no subprocess ---------------------------------------------------------------------------------------------------
def test_hash_key_and_no_keys_means_loopback_only(monkeypatch, tmp_path):
    from mad_guardrails.guardrails.cli import app
    from mad_guardrails.guardrails.service.auth import KeyStore, hash_key, read_key_file

    monkeypatch.delenv("MAD_GUARDRAILS_API_KEYS", raising=False)
    r = CliRunner().invoke(app, ["api", "hash-key", "s3cret"])
    assert r.exit_code == 0 and r.stdout.strip() == hash_key("s3cret") and len(hash_key("s3cret")) == 64
    (tmp_path / "k").write_text(r.stdout)
    assert KeyStore(read_key_file(tmp_path / "k")).verify("Bearer s3cret")

    r = CliRunner().invoke(app, ["api", "--host", "0.0.0.0", "--port", "1"])
    assert r.exit_code == 2
    assert "refusing to bind to 0.0.0.0" in r.output and "MAD_GUARDRAILS_API_KEYS" in r.output

    (tmp_path / "bad").write_text("s3cret\n")  # a key in clear is refused: the file holds digests
    r = CliRunner().invoke(app, ["api", "--key-file", str(tmp_path / "bad")])
    assert r.exit_code != 0 and "not a sha256 hex digest" in str(r.exception)


def test_admission_queue_and_refusal():
    from mad_guardrails.guardrails.service.limits import Admission, Overloaded

    async def main():
        a = Admission(max_concurrency=1, max_queue=1, queue_timeout_s=5)
        await a.acquire()
        waiter = asyncio.ensure_future(a.acquire())
        await asyncio.sleep(0.01)
        assert a.waiting == 1
        with pytest.raises(Overloaded) as e:  # slot taken, queue full
            await a.acquire()
        assert e.value.retry_after >= 1
        a.release(0.5)  # the slot passes to the waiter
        await waiter
        assert (a.in_flight, a.waiting) == (1, 0)
        gone = asyncio.ensure_future(a.acquire())  # a waiter whose client leaves
        await asyncio.sleep(0.01)
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
        a.release()
        assert (a.in_flight, a.waiting) == (0, 0)

    asyncio.run(main())


# -- the running service ---------------------------------------------------------------------------------------------
def test_healthz_readyz_docs_and_request_ids(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "guardrail": "ready"}
    assert len(r.headers["x-request-id"]) == 32
    r = client.get("/healthz", headers={"x-request-id": "my-trace.42"})
    assert r.headers["x-request-id"] == "my-trace.42"
    r = client.get("/readyz")
    body = r.json()
    assert r.status_code == 200 and body["ready"], body
    assert set(body["components"]) == {"guardrail", "index", "policies", "llm"}
    assert all(c["ok"] for c in body["components"].values())
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/check", "/v1/check/batch", "/v1/chat/completions", "/healthz", "/readyz"} <= set(paths)


def test_check_fast_allow_and_key_fact_block(client):
    r = client.post("/v1/check", json={"output": ALLOW_TEXT}, headers=AUTH)
    assert r.status_code == 200, r.text
    v = Verdict.model_validate(r.json())
    assert (v.decision, v.path) == ("allow", "fast_allow") and r.headers["x-guardrail-decision"] == "allow"
    assert v.request_id == r.headers["x-request-id"]  # the access log's request id is on the verdict

    r = client.post("/v1/check", json={"output": WRONG, "query": WRONG_QUERY, "mode": "strict"}, headers=AUTH)
    v = Verdict.model_validate(r.json())
    assert (v.decision, v.path, v.usage.llm_calls) == ("block", "fast_block", 0), v.explain()
    assert v.mode == "strict"
    quotes = [q for x in v.violations for q in x.quotes]
    assert any("nis2:art_23.4.a" in x.provisions for x in v.violations)
    assert quotes and all("24 hours" in q.text for q in quotes)


def test_batch_keeps_input_order_and_a_bad_item_gets_its_error(client):
    items = [ALLOW_TEXT, {"output": "   "}, {"output": WRONG, "query": WRONG_QUERY}, {"nope": 1},
             {"output": ALLOW_TEXT, "mode": "lenient"}, {"output": ALLOW_TEXT, "policies": ["nis2"]}]
    r = client.post("/v1/check/batch", json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == len(items)
    assert res[0]["decision"] == "allow"
    assert res[1]["error"]["type"] == "input_error" and "output is empty" in res[1]["error"]["message"]
    assert (res[2]["decision"], res[2]["path"]) == ("block", "fast_block")
    assert res[3]["error"]["type"] == "invalid_request" and "output" in res[3]["error"]["message"]
    assert res[4]["error"]["type"] == "input_error" and "unknown mode" in res[4]["error"]["message"]
    assert res[5]["decision"] == "allow"

    r = client.post("/v1/check/batch", json={"items": [ALLOW_TEXT] * 9}, headers=AUTH)
    assert r.status_code == 413 and "the limit is 8" in r.json()["error"]["message"]


def test_401_without_a_valid_key(client):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ENV_KEYS[0]}"}):
        r = client.post("/v1/check", json={"output": ALLOW_TEXT}, headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer" and r.headers["x-request-id"]
        assert r.json()["error"]["type"] == "unauthorized"
    for key in (ENV_KEYS[1], FILE_KEY):
        r = client.post("/v1/check", json={"output": ALLOW_TEXT}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, key


def test_413_body_and_field_limits_and_422(client):
    r = client.post("/v1/check", content=json.dumps({"output": "x" * (MAX_BODY + 10)}),
                    headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and r.headers["x-request-id"]
    err = r.json()["error"]
    assert err["limit_bytes"] == MAX_BODY and f"{MAX_BODY:,} bytes" in err["message"]
    assert "--max-body-bytes" in err["fix"]

    r = client.post("/v1/check", json={"output": "word " * 4001}, headers=AUTH)  # 20,005 characters
    assert r.status_code == 413, r.text
    assert "the limit is 20,000" in r.json()["error"]["message"] and r.json()["error"]["limit_chars"] == 20000

    r = client.post("/v1/check", json={"output": ""}, headers=AUTH)
    assert r.status_code == 422 and "output is empty" in r.json()["error"]["message"]
    r = client.post("/v1/check", json={"text": "no output field"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request"


def test_429_when_the_slot_and_queue_are_full(client, service):
    async def main():
        async with httpx.AsyncClient(base_url=service.base_url, timeout=30, trust_env=False) as ac:
            slow = asyncio.ensure_future(ac.post("/v1/check", json={"output": ALLOW_TEXT},
                                                 headers={**AUTH, "x-test-hold-s": "2"}))
            for _ in range(100):  # until the slow one holds the only slot
                m = (await ac.get("/metrics")).text
                if metric(m, "mad_guardrails_in_flight") == 1:
                    break
                await asyncio.sleep(0.05)
            r = await ac.post("/v1/check", json={"output": ALLOW_TEXT}, headers=AUTH)
            return r, await slow

    refused, held = asyncio.run(main())
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1 and refused.json()["error"]["type"] == "overloaded"
    assert held.status_code == 200 and held.json()["decision"] == "allow"


def test_deadline_fails_closed_to_flag(client):
    t0 = time.monotonic()
    r = client.post("/v1/check", json={"output": EVADE, "query": EVADE_QUERY}, headers=AUTH)
    took = time.monotonic() - t0
    v = Verdict.model_validate(r.json())
    assert r.status_code == 200 and (v.decision, v.path) == ("flag", "failure"), v.explain()
    assert v.failure.startswith("timeout") and 3.5 < took < 15


def test_client_disconnect_cancels_the_check(client, service):
    before = metric(client.get("/metrics").text, "mad_guardrails_client_disconnects_total")
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 1 s, long before the 4 s deadline
        httpx.post(service.base_url + "/v1/check", json={"output": EVADE, "query": EVADE_QUERY}, headers=AUTH,
                   timeout=1.0)
    while time.monotonic() - t0 < 3.5:
        m = client.get("/metrics").text
        if metric(m, "mad_guardrails_in_flight") == 0:
            break
        time.sleep(0.05)
    assert metric(m, "mad_guardrails_in_flight") == 0 and time.monotonic() - t0 < 3.5
    assert metric(m, "mad_guardrails_client_disconnects_total") == before + 1
    r = client.post("/v1/check", json={"output": ALLOW_TEXT}, headers=AUTH)  # the slot was given back
    assert r.status_code == 200


def test_metrics_and_json_logs(client, service):
    rid = "log-check-1"
    client.post("/v1/check", json={"output": WRONG, "query": WRONG_QUERY}, headers={**AUTH, "x-request-id": rid})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = r.text
    assert metric(m, "mad_guardrails_http_requests_total", route="/v1/check", status="200") >= 5
    for status in ("401", "413", "422", "429"):
        assert metric(m, "mad_guardrails_http_requests_total", route="/v1/check", status=status) >= 1, status
    assert metric(m, "mad_guardrails_decisions_total", decision="block", path="fast_block") >= 2
    assert metric(m, "mad_guardrails_decisions_total", decision="allow", path="fast_allow") >= 3
    assert metric(m, "mad_guardrails_decisions_total", decision="flag", path="failure") >= 1
    assert metric(m, "mad_guardrails_check_failures_total", kind="timeout") >= 1
    assert metric(m, "mad_guardrails_check_duration_seconds_count", path="fast_allow") >= 3
    assert metric(m, "mad_guardrails_rejected_total", reason="overloaded") >= 1
    assert metric(m, "mad_guardrails_rejected_total", reason="unauthorized") >= 3
    assert "mad_guardrails_llm_calls_total" in m and "mad_guardrails_http_request_duration_seconds_bucket" in m

    for _ in range(20):  # the log line is written after the response
        lines = [x for x in service.log_lines() if x.get("request_id") == rid]
        if lines:
            break
        time.sleep(0.1)
    assert lines, service.log_text()[-2000:]
    line = lines[0]
    assert (line["msg"], line["route"], line["status"], line["decision"], line["path"]) == (
        "request", "/v1/check", 200, "block", "fast_block")
    assert isinstance(line["ms"], float | int)

    # OpenTelemetry (--otel console prints each span as JSON): a server span per request, a check span with the
    # verdict and the graph's stage timings as attributes
    log = service.log_text()
    assert '"name": "guardrail.request"' in log and '"name": "guardrail.check"' in log
    assert '"guardrail.request_id": "log-check-1"' in log
    assert '"guardrail.path": "fast_block"' in log and '"guardrail.stage.retrieve_s"' in log
