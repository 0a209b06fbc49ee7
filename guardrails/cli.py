"""The ``mad-guardrails`` command (alias ``madg``). Each command group lives in ``guardrails/commands/<name>.py`` and
exposes ``register(app)``; this module only assembles them (imports stay light: heavy libraries load inside commands).

Groups from layers above the app (``eval``, from ``evals/``) or from other packages register through the entry point
group ``mad_guardrails.commands`` (``name = "module:register"``), so the app never imports a layer above it."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from mad_guardrails.core.errors import GuardrailError

app = typer.Typer(
    name="mad-guardrails",
    help="Multi-agent-debate guardrail grounded in the EU AI Act, NIST AI RMF / AI 600-1, NIS2, CRA, DORA, "
    "NIST CSF 2.0, NIST SP 1270 and GDPR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _flags_read_as_flags() -> None:
    """Show boolean flags as flags in --help (``--json``), not ``--json <bool>``: typer's rich help prints a type for
    every option, flags included."""
    from typer.core import TyperOption

    # a typer without this hook (another version, e.g. the one guardrails-ai pins) keeps its own help: no patch
    if not hasattr(TyperOption, "display_type_rich") or getattr(TyperOption.display_type_rich, "_madg", False):
        return
    orig = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if getattr(self, "is_flag", False) and self.metavar is None else orig(self, ctx)

    display_type_rich._madg = True
    TyperOption.display_type_rich = display_type_rich


_flags_read_as_flags()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("mad-guardrails")
        except PackageNotFoundError:
            v = "unknown"
        typer.echo(f"mad-guardrails {v}")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Multi-agent-debate guardrail grounded in regulatory text. Start with `mad-guardrails index build`."""


COMMAND_MODULES = ["corpus", "index", "serve", "policies", "check", "audit", "console", "train", "models", "api"]
PLUGIN_GROUP = "mad_guardrails.commands"

for _name in COMMAND_MODULES:
    try:
        _mod = importlib.import_module(f"mad_guardrails.guardrails.commands.{_name}")
    except ModuleNotFoundError as _e:  # a command group not written yet (or its optional dependency missing)
        if _e.name and _e.name.startswith("mad_guardrails.guardrails.commands"):
            continue
        raise
    _mod.register(app)


def _register_plugins() -> None:
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except ModuleNotFoundError:  # an optional dependency of that group is missing
            continue
        register(app)


_register_plugins()

err_console = Console(stderr=True)


def main() -> None:
    try:
        app()
    except GuardrailError as e:
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
