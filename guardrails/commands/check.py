"""``mad-guardrails check``: check one output from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from mad_guardrails.core.progress import console


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        output: str = typer.Argument(None, help="the AI output to check; '-' or omitted reads stdin"),
        query: str = typer.Option(None, "--query", "-q", help="the question that produced the output"),
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        mode: str = typer.Option("balanced", "--mode", help="strict | balanced | permissive"),
        policies: list[str] = typer.Option(None, "--policy", help="restrict to a pack/act or rule id (repeatable)"),
        as_json: bool = typer.Option(False, "--json", help="print the Verdict as JSON"),
        show_graph: bool = typer.Option(False, "--graph", help="print the orchestrator graph (Mermaid) and exit"),
        evidence: bool = typer.Option(False, "--evidence", help="also list the retrieved evidence"),
        checkpoint: Path = typer.Option(None, "--checkpoint", help="SQLite file to checkpoint the run (resumable)"),
        thread_id: str = typer.Option(None, "--thread-id", help="run id for --checkpoint resume"),
    ) -> None:
        """Check one AI output against the regulations and policy packs; prints the verdict."""
        if show_graph:
            from mad_guardrails.guardrails.graph import graph_mermaid

            typer.echo(graph_mermaid())  # drawn from the compiled graph, not a hand-kept list
            raise typer.Exit(0)
        if output is None or output == "-":
            output = sys.stdin.read()
        from mad_guardrails.guardrails.guardrail import Guardrail

        with console.status("loading the guardrail (index, models, LLM server)..."):
            g = Guardrail.from_config(profile, checkpoint=checkpoint)
        with g:
            with console.status("checking..."):
                v = g.check(output, query=query, mode=mode, policies=policies or None, thread_id=thread_id)
        if as_json:
            typer.echo(v.model_dump_json(indent=2))
        else:
            typer.echo(v.explain(evidence=evidence))
        raise typer.Exit(0 if v.decision == "allow" else (1 if v.decision == "flag" else 3))
