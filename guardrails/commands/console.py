"""``mad-guardrails console``: the interactive debate console (``guardrails/console.py``)."""

from __future__ import annotations

import signal
import sys

import typer

from mad_guardrails.core.progress import console as err_console


def register(app: typer.Typer) -> None:
    @app.command("console", help="Paste an AI output and watch the agents debate it live: evidence, each round's "
                 "arguments with their quotes, the verifier's checks and the verdict. Between rounds you can "
                 "interject (:ask); :help lists the commands. With stdin piped, the whole of stdin is checked once and "
                 "nothing is asked (exit code as `mad-guardrails check`: 0 allow, 1 flag, 3 block).")
    def console(
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        mode: str = typer.Option("balanced", "--mode", help="strict | balanced | permissive"),
        policies: list[str] = typer.Option(None, "--policy", help="restrict to a pack/act or rule id (repeatable)"),
        query: str = typer.Option(None, "--query", "-q", help="piped use: the question that produced the output"),
        pause: bool = typer.Option(True, "--pause/--no-pause", help="pause before each round after the first for "
                                   "an interjection (:pause on|off switches it in the console)"),
        components: str = typer.Option(None, "--components", hidden=True,
                                       help="package.module:function building the Components (plugins, tests)"),
    ) -> None:
        """The debate console (help text above)."""
        from rich.console import Console

        from mad_guardrails.core.errors import InputError
        from mad_guardrails.guardrails.commands.audit import load_factory
        from mad_guardrails.guardrails.commands.check import quiet_third_party
        from mad_guardrails.guardrails.commands.hangup import signals_end_command
        from mad_guardrails.guardrails.components import status_listener
        from mad_guardrails.guardrails.config import load_config
        from mad_guardrails.guardrails.console import MODES, DebateConsole, run_piped, stdin_is_interactive
        from mad_guardrails.guardrails.guardrail import Guardrail, validate_output

        if mode not in MODES:
            raise InputError(f"unknown mode {mode!r}", fix=f"use one of {', '.join(MODES)}")
        interactive = stdin_is_interactive()
        cfg = load_config(profile)
        text = None
        if not interactive:
            text = validate_output(sys.stdin.buffer.read(), cfg.max_input_chars, field="stdin")
        factory = load_factory(components) if components else None
        quiet_third_party()
        with err_console.status("loading the guardrail (index, embedder, verifier; the LLM starts on the first "
                                "debate)..."):
            g = Guardrail(cfg, components=factory(cfg) if factory else None)
        out = Console(highlight=False)
        # a closed terminal or a kill ends the console through `with g`, which stops the LLM server it started
        with signals_end_command(SystemExit), g, status_listener(lambda msg: out.print(f"[dim]{msg}[/]")):
            if not interactive:
                v = run_piped(g, text, query=query, mode=mode, policies=policies or None, console=out)
                raise typer.Exit(1 if v is None else {"allow": 0, "flag": 1, "block": 3}[v.decision])
            # Ctrl-C clears the line even when the console was started from a process that ignores SIGINT (a
            # background job of a script inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            dc = DebateConsole(g, console=out, mode=mode, policies=policies or None, interactive=True, pause=pause)
            try:
                dc.repl()
            finally:
                dc.close()
