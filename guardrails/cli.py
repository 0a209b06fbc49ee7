"""The ``guardrails`` command. Each command group lives in ``guardrails/commands/<name>.py`` and exposes
``register(app)``; this module only assembles them (imports stay light: heavy libraries load inside commands)."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from guardrails.errors import GuardrailError

app = typer.Typer(
    name="guardrails",
    help="Multi-agent-debate guardrail grounded in the EU AI Act, NIST AI RMF / AI 600-1, NIS2, CRA, DORA, "
    "NIST CSF 2.0, NIST SP 1270 and GDPR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



@app.callback()
def _root() -> None:
    """Multi-agent-debate guardrail grounded in regulatory text. Start with `guardrails index build`."""


COMMAND_MODULES = ["corpus", "index", "serve", "policies", "check", "audit", "evaluate", "console", "train"]

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"guardrails.commands.{_name}")
    except ModuleNotFoundError as _e:  # a command group not written yet (or its optional dependency missing)
        if _e.name and _e.name.startswith("guardrails.commands"):
            continue
        raise
    _mod.register(app)

err_console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except GuardrailError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
