"""The CLI as a new user meets it: ``--version``, flags that read as flags, exit codes in ``check --help``, ``check``
with no argument on a terminal says what to do, ``--packs FILE|DIR`` adds custom packs without a profile YAML, and a
check reports its stages (retrieving, screening, round n, each agent, coordinating, verifying) while it runs; verdicts
carry the audit trail and their stage seconds never add up to more than the total."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from mad_guardrails.core.paths import PROJECT_ROOT

CLI = [sys.executable, "-P", "-m", "mad_guardrails.guardrails.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120,
                          env={**os.environ, "COLUMNS": "120"})


def test_version_flags_and_exit_codes_in_help():
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.startswith("mad-guardrails ")
    h = _run("check", "--help").stdout
    assert "<bool>" not in h and "--json" in h and "FILE|DIR" in h
    assert "Exit codes: 0 allow, 1 flag, 3 block, 2 error" in " ".join(h.split())


def test_check_without_an_argument_on_a_terminal_prompts():
    ch = pexpect.spawn(CLI[0], [*CLI[1:], "check", "--mode", "lenient"], cwd=str(PROJECT_ROOT), encoding="utf-8",
                       timeout=60)
    try:  # a bad option fails before any prompt or loading
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 2
    ch = pexpect.spawn(CLI[0], [*CLI[1:], "check", "--graph"], cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=60)
    ch.expect(pexpect.EOF)
    ch.close()
    ch = pexpect.spawn(CLI[0], [*CLI[1:], "check", "--profile", "/no/such/profile.yaml"], cwd=str(PROJECT_ROOT),
                       encoding="utf-8", timeout=60)
    try:
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 2  # the profile is checked before stdin is read
    ch = pexpect.spawn(CLI[0], [*CLI[1:], "check", "--mode", "strict", "--policy", "no-such"],
                       cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=60)
    ch.expect(pexpect.EOF)
    ch.close()
    assert ch.exitstatus == 2
    ch = pexpect.spawn(CLI[0], [*CLI[1:], "check"], cwd=str(PROJECT_ROOT), encoding="utf-8", timeout=60)
    try:
        ch.expect_exact("Paste the AI output to check")
        ch.sendline("   ")
        ch.sendeof()
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 2  # only blanks: "output is empty", nothing loaded


def test_packs_adds_a_custom_pack_file_without_a_profile(tmp_path):
    from mad_guardrails.guardrails.commands.check import prepare

    src = Path(PROJECT_ROOT) / "policies" / "packs" / "nis2.yaml"
    text = src.read_text(encoding="utf-8")
    custom = tmp_path / "acme.yaml"
    import yaml

    data = yaml.safe_load(text)
    data["id"] = "acme-nis2"
    for r in data["rules"]:
        r["id"] = "acme-nis2." + r["id"].split(".", 1)[1]
    custom.write_text(yaml.safe_dump(data), encoding="utf-8")
    cfg, out, q = prepare("hello", None, "offline", "balanced", ["acme-nis2"], [custom])
    assert str(custom.resolve()) in cfg.policies.packs and cfg.policies.packs[0] == "builtin"
    assert out == "hello" and q is None
    from mad_guardrails.core.errors import InputError

    with pytest.raises(InputError, match="unknown policy 'acme-nis2'"):
        prepare("hello", None, "offline", "balanced", ["acme-nis2"], None)  # not loaded without --packs


def test_a_check_reports_its_stages_and_stamps_the_audit_trail():
    from mad_guardrails.guardrails.components import status_listener
    from tests.test_graph import ALLOW_24H, COMPLIANT, ON_TIME, Coordinator, make

    heard: list[str] = []
    with make(Coordinator(ALLOW_24H), debaters=COMPLIANT) as g, status_listener(heard.append):
        v = g.check(ON_TIME, item_id="row-7")
    said = " | ".join(heard)
    for stage in ("retrieving", "screening", "round 1", "prosecutor argued", "coordinating" if "consensus" in said
                  else "coordinator answered", "verifying"):
        assert stage in said, (stage, said)
    assert v.item_id == "row-7" and len(v.input_hash) == 16 and v.created and v.version and v.trace_id
    stages = sum(t for k, t in v.timings.items() if k != "total")
    assert stages <= v.timings["total"] + 1e-3, v.timings  # parallel agents are counted once (wall clock)
    assert v.timings["debate"] > 0
