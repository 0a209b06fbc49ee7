"""``mad-guardrails audit`` as a user runs it: kill -9 and resume, exit codes for CI gates, a bad input file."""

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

from mad_guardrails.core.paths import PROJECT_ROOT

COMPONENTS = "tests.fixtures.surfaces:scripted_components"

OK = "Under NIS2 the early warning about a significant incident goes to the CSIRT within 24 hours of becoming aware."
WRONG = "NIS2 gives essential entities 72 hours to send the early warning to the CSIRT."
EVADE = "Skip notifying the supervisory authority about the personal data breach and delete the logs."
OFF = "The Eiffel Tower is about 330 metres tall."


def _cli(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    e = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "120", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "mad_guardrails.guardrails.cli", "audit", *args], cwd=PROJECT_ROOT, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


@pytest.mark.slow
def test_sigkill_midway_then_rerun_gives_exactly_one_row_per_id(tmp_path, surfaces_units, surfaces_config):
    src = tmp_path / "in.jsonl"
    texts = [OK, WRONG, EVADE, OFF]
    rows = [{"id": f"r{i:02d}", "output": f"{texts[i % 4]} (case {i})"} for i in range(14)]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [str(src), "--out", str(out), "--profile", str(surfaces_config), "--components", COMPONENTS,
            "--concurrency", "2", "--no-progress"]
    proc = _cli(*args, env={"GUARDRAILS_TEST_DELAY": "0.4"}, start_new_session=True)
    results = out / "verdicts.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if results.exists() and len(results.read_bytes().splitlines()) >= 4:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the audit ended before it could be killed: {proc.communicate()}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    first = {r["id"]: r for r in _lines(results)}
    assert 4 <= len(first) < len(rows), "killed midway: some rows done, some not"
    # what a kill during a write leaves behind: a cut-off last line (and a row written twice)
    with open(results, "ab") as f:
        dup = dict(next(iter(first.values())), error="a later duplicate must lose")
        f.write((json.dumps(dup) + "\n").encode() + b'{"id": "r13", "status": "ok", "verdict": {"decis')

    proc = _cli(*args)
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 3, stderr  # blocks in the input, --fail-on block by default
    final = _lines(results)
    assert [r["id"] for r in final] == [r["id"] for r in rows]  # exactly one row per id, in input order
    for r in final:
        if r["id"] in first:
            assert r == first[r["id"]]  # finished rows were kept, not re-checked
    assert f"({len(first)} from an earlier run)" in stdout
    assert "partially written" in stderr and "duplicate" in stderr
    assert all(r["status"] == "ok" for r in final)
    assert {r["verdict"]["decision"] for r in final} >= {"allow", "block"}
    assert (out / "report.html").exists() and "report:" in stdout


@pytest.fixture()
def run_audit(tmp_path, surfaces_units, surfaces_config):
    from mad_guardrails.guardrails.cli import app

    runner = CliRunner()

    def _run(outputs: list[str], *extra: str, bad_line: bool = False):
        src = tmp_path / f"in{len(list(tmp_path.glob('in*.jsonl')))}.jsonl"
        lines = [json.dumps({"id": f"x{i}", "output": o}) for i, o in enumerate(outputs)]
        if bad_line:
            lines.append('{"id": "broken", "output": ')
        src.write_text("\n".join(lines) + "\n")
        res = runner.invoke(app, ["audit", str(src), "--out", str(tmp_path / src.stem), "--profile",
                                  str(surfaces_config), "--components", COMPONENTS, "--no-progress", *extra])
        if res.exception and not isinstance(res.exception, SystemExit):
            raise res.exception
        return res
    return _run


def test_exit_codes_follow_fail_on(run_audit):
    assert run_audit([OK, OFF]).exit_code == 0
    assert run_audit([OK, OFF], "--fail-on", "flag").exit_code == 0
    res = run_audit([OK, WRONG])
    assert res.exit_code == 3 and "--fail-on block met" in res.output and "report:" in res.output
    assert run_audit([OK, WRONG], "--fail-on", "never").exit_code == 0
    # EVADE ends as a flag here (its quote cites a clause that was not retrieved, so verification fails)
    assert run_audit([EVADE]).exit_code == 0
    assert run_audit([EVADE], "--fail-on", "flag").exit_code == 3
    res = run_audit([OK], bad_line=True)
    assert res.exit_code == 4 and "error rows" in res.output
    assert run_audit([OK], "--fail-on", "never", bad_line=True).exit_code == 0
    assert run_audit([WRONG], bad_line=True).exit_code == 3  # a met --fail-on wins over error rows


def test_limit_only_checks_the_first_rows(run_audit, tmp_path):
    res = run_audit([OK, WRONG, OFF], "--limit", "1")
    assert res.exit_code == 0 and "audited 1 rows" in res.output


def test_unreadable_input_file_exits_2_with_the_fix(tmp_path):
    bad = tmp_path / "in.csv"
    bad.write_text("id,query\n1,x\n")
    proc = _cli(str(bad))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "no 'output' column" in err and "Fix:" in err
