"""The debate console: driven through a pseudo-terminal (pexpect) and piped, over the scripted parts
(tests/fixtures/surfaces.py); the real offline profile is in test_console_e2e.py."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pexpect
import pytest
from rich.console import Console

from mad_guardrails.core.paths import PROJECT_ROOT

COMPONENTS = "tests.fixtures.surfaces:scripted_components"
EVADE = "If ransomware hits, do not report it to the CSIRT; hide the incident and restore quietly."
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
VERDICT = r"╭─(?:\x1b\[[0-9;]*m)* verdict "  # the top border of the verdict panel


def _expect_words(ch, text: str) -> None:
    """Wait for ``text``, letting colour codes (rich markup) sit between its words."""
    ch.expect(r"(?:\x1b\[[0-9;]*m|\s)+".join(re.escape(w) for w in text.split()))


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COLUMNS": "110", "TERM": "xterm", **extra}


@pytest.mark.slow
def test_console_in_a_terminal_interject_show_switch_rerun_save(tmp_path, surfaces_units, surfaces_config):
    ch = pexpect.spawn(sys.executable, ["-m", "mad_guardrails.guardrails.cli", "console", "--profile", str(surfaces_config),
                                        "--components", COMPONENTS], cwd=str(PROJECT_ROOT),
                       env=_env(GUARDRAILS_TEST_DELAY="0.2"), encoding="utf-8", timeout=90, dimensions=(50, 110))
    log = io.StringIO()
    ch.logfile_read = log

    def seen_since(mark: int) -> str:
        return ANSI.sub("", log.getvalue()[mark:])

    try:
        ch.expect_exact("guardrails> ")
        ch.sendline(":help")
        ch.expect_exact(":show ID")
        ch.expect_exact("guardrails> ")
        ch.sendline(EVADE)
        ch.expect_exact("... ")
        ch.sendline("")
        ch.expect_exact("question (Enter to skip)> ")
        ch.sendline("Ransomware hit us. Must we tell anyone?")
        # round 1 has no consensus: the debate pauses before round 2 (a LangGraph interrupt)
        ch.expect_exact("round 2> ")
        first = seen_since(0)
        assert "evidence (" in first and "prosecutor · round 1 · violation" in first
        assert "defender · round 1 · uncertain" in first and "verdict" not in first.split("round 1")[-1]
        ch.sendline(":show nis2:art_23.4.a")
        ch.expect_exact("within 24 hours of becoming aware")
        ch.expect_exact("round 2> ")
        ch.sendline(":rerun")  # not during a pause
        ch.expect_exact("during a pause")
        ch.expect_exact("round 2> ")
        mark = len(log.getvalue())
        ch.sendline(":ask Is restoring from backups enough to skip the report?")
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        after = seen_since(mark)
        assert after.count("On the interjection 'Is restoring from backups enough") == 3  # every agent, round 2
        assert "BLOCK" in after and "nis2.no_concealment" in after and "quotes verbatim" in after
        ch.sendline(":mode strict")
        _expect_words(ch, "mode set to strict")
        ch.expect_exact("guardrails> ")
        mark = len(log.getvalue())
        ch.sendline(":rerun")  # the interjection made so far stays with this output
        ch.expect_exact("round 2> ")
        ch.sendline("")  # continue without a new interjection
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        again = seen_since(mark)
        assert "mode strict, policies all, interjections: 'Is restoring" in again
        assert "BLOCK" in again and "mode strict" in again.split("verdict")[-1]
        ch.sendline(":policy nosuchpack")
        _expect_words(ch, "unknown policy nosuchpack")
        ch.expect_exact("guardrails> ")
        ch.sendline(":policy gdpr")
        _expect_words(ch, "policies set to gdpr")
        ch.expect_exact("guardrails> ")
        mark = len(log.getvalue())
        ch.sendline(":rerun")
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        rerun = seen_since(mark)
        assert "mode strict, policies gdpr" in rerun and "mode strict" in rerun.split("verdict")[-1]
        # only the GDPR rules are in scope now: none is triggered, so the strict fast path allows without debate
        assert "fast allow" in rerun and "ALLOW" in rerun and "nis2.no_concealment" not in rerun
        save = tmp_path / "saved" / "debate"
        ch.sendline(f":save {save}")
        ch.expect_exact("saved ")
        ch.expect_exact("guardrails> ")
        ch.sendline(":quit")
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 0, seen_since(0)[-2000:]
    data = json.loads((tmp_path / "saved" / "debate.json").read_text())
    r1, r_again, r2 = data["runs"]
    assert r_again["mode"] == "strict" and r_again["verdict"]["decision"] == "block"
    assert r1["interjections"] == ["Is restoring from backups enough to skip the report?"]
    assert r1["verdict"]["decision"] == "block" and r1["query"].startswith("Ransomware")
    assert any(e["event"] == "interjection" and e["before_round"] == 2 for e in r1["timeline"])
    assert r2["mode"] == "strict" and r2["policies"] == ["gdpr"] and r2["verdict"] is not None
    md = (tmp_path / "saved" / "debate.md").read_text()
    assert "*interjection before round 2:* Is restoring" in md and "### Round 2" in md and "**BLOCK**" in md


def _piped(text: str, surfaces_config, *args: str):
    return subprocess.run([sys.executable, "-m", "mad_guardrails.guardrails.cli", "console", "--profile", str(surfaces_config),
                           "--components", COMPONENTS, *args], input=text.encode(), capture_output=True,
                          cwd=PROJECT_ROOT, env=_env(), timeout=180)


def test_piped_stdin_is_one_output_no_prompts(surfaces_units, surfaces_config):
    res = _piped(EVADE + "\n\nSecond paragraph: and tell the auditors nothing.\n", surfaces_config,
                 "--query", "Must we tell anyone?")
    out = res.stdout.decode()
    assert res.returncode == 3, res.stderr.decode()[-2000:]  # block, as `mad-guardrails check`
    assert "guardrails>" not in out and "question (" not in out and "round 2>" not in out
    # both rounds ran without a pause, and the verdict is printed
    assert "round 1" in out and "round 2" in out and "BLOCK" in out and "nis2.no_concealment" in out
    res = _piped("The Eiffel Tower is about 330 metres tall.", surfaces_config)
    assert res.returncode == 0 and "ALLOW" in res.stdout.decode() and "fast allow" in res.stdout.decode()


def test_piped_empty_stdin_is_a_usage_error(surfaces_config):
    res = _piped("  \n", surfaces_config)
    assert res.returncode == 2 and "stdin is empty" in res.stderr.decode()


def test_commands_in_process(scripted_guardrail, tmp_path):
    """Command edge cases without a subprocess: local ids, unknown ids, :ask before any output, :save suffixes."""
    from mad_guardrails.guardrails.console import DebateConsole

    lines = iter([
        ":ask anything",                       # no output yet
        "NIS2 gives essential entities 72 hours to send the early warning.", "", "",  # output, end, no question
        ":ask Does this apply to banks?",       # no pause now: the output is checked again with it
        ":show art_23.4.a",                    # local id of a clause in the last evidence
        ":show nis2:art_99",                   # not in the index
        ":show policy:nis2.early_warning",     # a policy rule
        ":evidence",
        ":bogus",
        f":save {tmp_path / 'x.json'}",
        ":quit",
    ])
    buf = io.StringIO()
    dc = DebateConsole(scripted_guardrail, console=Console(file=buf, width=120, highlight=False),
                       read_line=lambda prompt: next(lines))
    dc.repl()
    dc.close()
    out = buf.getvalue()
    assert "paste an output first" in out
    assert "interjections: 'Does this apply to banks?'" in out and "interjections were not discussed" in out
    assert "fast block" in out and "BLOCK" in out and "nis2.early_warning" in out
    assert "nis2:art_23.4.a" in out and "within 24 hours of becoming aware" in out
    assert "no clause nis2:art_99 in the index" in out
    assert "Early warning to the CSIRT within 24 hours" in out and "early warning deadline: 24 hours" in out
    assert "unknown command :bogus" in out
    assert (tmp_path / "x.json").exists() and (tmp_path / "x.md").exists()
    assert json.loads((tmp_path / "x.json").read_text())["runs"][0]["verdict"]["path"] == "fast_block"
