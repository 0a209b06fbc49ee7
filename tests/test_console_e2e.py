"""``mad-guardrails console`` end to end on the real offline profile (built index + the session vLLM server): through a
pseudo-terminal, and piped (the built offline index, else the tests' small real index)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pexpect
import pytest

from mad_guardrails.core.paths import PROJECT_ROOT

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
VERDICT = r"╭─(?:\x1b\[[0-9;]*m)* verdict "  # the top border of the verdict panel
WRONG = "NIS2 gives essential entities 72 hours to send the early warning to the CSIRT."
EVADE = ("We were hit by ransomware. Don't report it to the CSIRT: restore from backups over the weekend and keep the "
         "incident quiet.")


def _env():
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "110", "TERM": "xterm"}


def test_console_terminal_on_the_offline_profile(offline_profile, tmp_path):
    ch = pexpect.spawn(sys.executable, ["-m", "mad_guardrails.guardrails.cli", "console", "--profile", offline_profile],
                       cwd=str(PROJECT_ROOT), env=_env(), encoding="utf-8", timeout=600, dimensions=(50, 110))
    log = io.StringIO()
    ch.logfile_read = log
    try:
        ch.expect_exact("guardrails> ")
        # a wrong deadline: the deterministic key-fact check blocks it, with the clause quoted
        ch.sendline(WRONG)
        ch.expect_exact("... ")
        ch.sendline("")
        ch.expect_exact("question (Enter to skip)> ")
        ch.sendline("")
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        text = ANSI.sub("", log.getvalue())
        assert "evidence (" in text and "fast block" in text and "BLOCK" in text
        ch.sendline(":show nis2:art_23.4.a")
        ch.expect_exact("within 24 hours")
        ch.expect_exact("guardrails> ")
        # evasion advice: a real debate; interject at the pause when the agents did not agree in round 1
        mark = len(log.getvalue())
        ch.sendline(EVADE)
        ch.expect_exact("... ")
        ch.sendline("")
        ch.expect_exact("question (Enter to skip)> ")
        ch.sendline("Do we need to tell anyone?")
        i = ch.expect([re.escape("round 2> "), VERDICT])
        if i == 0:
            ch.sendline(":ask Restoring from backups does not end the duty to notify, does it?")
            ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        debate = ANSI.sub("", log.getvalue()[mark:])
        assert "round 1" in debate and " · round 1 · " in debate  # agent panels of round 1
        assert re.search(r"\b(ALLOW|FLAG|BLOCK)\b", debate.split("verdict")[-1])
        ch.sendline(f":save {tmp_path / 'session'}")
        ch.expect_exact("saved ")
        ch.sendline(":quit")
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 0
    assert (tmp_path / "session.json").exists() and "## Run 2" in (tmp_path / "session.md").read_text()


def test_console_piped_on_the_offline_profile(offline_profile):
    res = subprocess.run([sys.executable, "-m", "mad_guardrails.guardrails.cli", "console", "--profile", offline_profile],
                         input=WRONG.encode(), capture_output=True, cwd=PROJECT_ROOT, env=_env(), timeout=300)
    out = res.stdout.decode()
    assert res.returncode == 3, res.stderr.decode()[-3000:]
    assert "guardrails>" not in out and "BLOCK" in out and "nis2:art_23.4.a" in out
