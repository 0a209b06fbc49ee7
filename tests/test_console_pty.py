"""Console hardening, driven through a pseudo-terminal (pexpect) over the scripted parts (tests/fixtures/surfaces.py,
slowed with ``GUARDRAILS_TEST_DELAY``): Ctrl-C during a debate cancels it and returns to the prompt, Ctrl-C at the
prompt clears the line, Ctrl-D exits 0 without a traceback, ``--no-pause`` runs every round without stopping, and the
agents' quotes are marked ✓."""

from __future__ import annotations

import io
import re
import sys

import pexpect

from mad_guardrails.core.paths import PROJECT_ROOT
from tests.test_console import ANSI, COMPONENTS, EVADE, VERDICT, _env


def _spawn(surfaces_config, *args: str, delay: str = "0") -> tuple[pexpect.spawn, io.StringIO]:
    ch = pexpect.spawn(sys.executable, ["-m", "mad_guardrails.guardrails.cli", "console", "--profile",
                                        str(surfaces_config), "--components", COMPONENTS, *args],
                       cwd=str(PROJECT_ROOT), env=_env(GUARDRAILS_TEST_DELAY=delay), encoding="utf-8", timeout=90,
                       dimensions=(50, 110))
    log = io.StringIO()
    ch.logfile_read = log
    return ch, log


def _paste(ch, text: str, question: str = "") -> None:
    ch.sendline(text)
    ch.expect_exact("... ")
    ch.sendline("")
    ch.expect_exact("question (Enter to skip)> ")
    ch.sendline(question)


def test_ctrl_c_mid_debate_returns_to_the_prompt_and_ctrl_d_exits_0(surfaces_units, surfaces_config):
    ch, log = _spawn(surfaces_config, delay="4")
    try:
        ch.expect_exact("guardrails> ")
        ch.send("half a line that Ctrl-C should clear")
        ch.sendintr()  # Ctrl-C at the prompt: the line is dropped, the console stays
        ch.expect_exact("(cleared")
        ch.expect_exact("guardrails> ")
        _paste(ch, EVADE)
        ch.expect_exact("evidence (")  # the debate has started; the agents sleep 4 s per turn
        ch.sendintr()
        ch.expect_exact("stopped")
        ch.expect_exact("guardrails> ")
        seen = ANSI.sub("", log.getvalue())
        assert "cancelled" in seen and "─ verdict" not in seen  # no verdict panel for the stopped run
        ch.sendeof()  # Ctrl-D at the prompt
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    out = ANSI.sub("", log.getvalue())
    assert ch.exitstatus == 0, out[-2000:]
    assert "Traceback" not in out and "Event loop is closed" not in out, out[-2000:]


def test_no_pause_runs_all_rounds_and_marks_verified_quotes(surfaces_units, surfaces_config):
    ch, log = _spawn(surfaces_config, "--no-pause")
    try:
        ch.expect_exact("guardrails> ")
        _paste(ch, EVADE)
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        seen = ANSI.sub("", log.getvalue())
        assert "round 2>" not in seen  # no pause between rounds
        assert "prosecutor · round 2" in seen
        assert re.search(r"“[^”]+” ✓", seen)  # the agents' quotes, verified, are marked
        assert "Transcript" not in seen or "✓" in seen
        ch.sendline(":pause on")
        ch.expect_exact("pause between rounds:")
        ch.expect_exact("guardrails> ")
        ch.sendline(":rerun")
        ch.expect_exact("round 2> ")
        ch.sendline(":ask Does restoring from backups change anything?")
        ch.expect(VERDICT)
        ch.expect_exact("guardrails> ")
        after = ANSI.sub("", log.getvalue())
        assert after.count("On the interjection 'Does restoring from backups") == 3  # every agent's round 2 prompt
        ch.sendline(":quit")
        ch.expect(pexpect.EOF)
    finally:
        ch.close(force=True)
    assert ch.exitstatus == 0


def test_closing_a_stream_cancels_the_run_and_its_llm_calls():
    """What Ctrl-C does underneath: the console stops reading the stream, and the graph run on the guardrail's own
    loop is cancelled with the agents' in-flight calls (here: scripted turns that would take 30 s)."""
    import asyncio
    import threading
    from types import SimpleNamespace

    from tests.test_graph import Coordinator, make, social_scoring_block
    from tests.test_explain import SOCIAL

    cancelled = threading.Event()

    class Slow:
        def __init__(self, name):
            self.role = SimpleNamespace(name=name)

        async def turn(self, case, evidence, rules, transcript, round):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    g = make(Coordinator(social_scoring_block()), debaters=[Slow("prosecutor"), Slow("defender")])

    async def consume():
        stream = g.astream(SOCIAL)
        async for ev in stream:
            if "start_round" in ev:
                break
        await stream.aclose()

    with g:
        asyncio.run(consume())
        assert cancelled.wait(10)  # the turns' calls were cancelled, not left running
