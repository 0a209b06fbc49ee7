"""``mad-guardrails check``: check one output from the command line.

Everything the command is given is validated before anything loads (mode, profile, packs, policies, the text), so a
typo fails in a fraction of a second; the index and models load next, and the LLM server starts only when the case
goes to the debate (``guardrails/components.py``: the lazy backend). The status line on stderr names each stage.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from mad_guardrails.core.progress import console

#: exit codes of ``check`` (and of the piped console)
EXIT_CODES = {"allow": 0, "flag": 1, "error": 2, "block": 3}
EXIT_HELP = "Exit codes: 0 allow, 1 flag, 3 block, 2 error (bad option, input or config; nothing was checked)."


def quiet_third_party() -> None:
    """Silence third-party loading bars and chatter (Hugging Face, transformers, sentence-transformers, tqdm): the
    status line says what loads. Call before those libraries are imported."""
    import logging

    for k, v in {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1",
                 "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}.items():
        os.environ.setdefault(k, v)
    for name in ("sentence_transformers", "transformers", "huggingface_hub", "faiss", "httpx", "openai"):
        logging.getLogger(name).setLevel(logging.ERROR)


def read_stdin() -> str:
    """stdin as text; on a terminal, say what to do first instead of waiting silently."""
    if sys.stdin.isatty():
        console.print("[bold]Paste the AI output to check[/], then press Ctrl-D on an empty line "
                      "(Ctrl-C cancels):")
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data  # validate_text names the bad byte


def prepare(output, query, profile, mode, policies, packs):
    """Validate every option and the input before anything heavy loads; returns ``(config, text, query)``."""
    from mad_guardrails.core.debate import validate_text
    from mad_guardrails.core.verdict import check_mode
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.guardrails.guardrail import check_policies
    from mad_guardrails.policies.loader import load_packs

    check_mode(mode, where="--mode")
    cfg = load_config(profile)
    if packs:
        from mad_guardrails.core.errors import InputError

        for p in packs:
            if not Path(p).exists():
                raise InputError(f"policy pack {str(p)!r} does not exist", where="--packs",
                                 fix="give a pack YAML file or a directory of them")
        cfg = cfg.model_copy(update={"policies": cfg.policies.model_copy(
            update={"packs": [*cfg.policies.packs, *[str(Path(p).resolve()) for p in packs]]})})
    policy_set = load_packs(cfg.policies.packs, disabled=cfg.policies.disabled)  # YAML only: fast
    check_policies(policy_set, policies)
    if output is None or output == "-":
        output = read_stdin()
    text = validate_text(output, cfg.max_input_chars, field="output")
    if query is not None:
        query = validate_text(query, cfg.max_input_chars, field="query")
    return cfg, text, query


def register(app: typer.Typer) -> None:
    @app.command("check", epilog=EXIT_HELP)
    def check(
        output: str = typer.Argument(None, metavar="OUTPUT", help="the AI output to check; '-' or omitted reads stdin"),
        query: str = typer.Option(None, "--query", "-q", metavar="TEXT", help="the question that produced the output"),
        profile: str = typer.Option("offline", "--profile", "-p", metavar="NAME|YAML", help="profile name or config YAML path"),
        mode: str = typer.Option("balanced", "--mode", metavar="MODE", help="strict | balanced | permissive"),
        policies: list[str] = typer.Option(None, "--policy", metavar="ID", help="restrict to a pack/act or rule id (repeatable)"),
        packs: list[Path] = typer.Option(None, "--packs", metavar="FILE|DIR", help="also load this policy pack FILE or DIR of packs "
                                         "(repeatable; later ones override rules by id)"),
        as_json: bool = typer.Option(False, "--json", help="print the Verdict as JSON"),
        show_graph: bool = typer.Option(False, "--graph", help="print the orchestrator graph (Mermaid) and exit"),
        evidence: bool = typer.Option(False, "--evidence", help="also list the retrieved evidence"),
        checkpoint: Path = typer.Option(None, "--checkpoint", metavar="FILE", help="SQLite file to checkpoint the run (resumable)"),
        thread_id: str = typer.Option(None, "--thread-id", metavar="ID", help="run id for --checkpoint resume"),
    ) -> None:
        """Check one AI output against the regulations and policy packs; prints the verdict."""
        if show_graph:
            from mad_guardrails.guardrails.graph import graph_mermaid

            typer.echo(graph_mermaid())  # drawn from the compiled graph, not a hand-kept list
            raise typer.Exit(0)
        cfg, text, query = prepare(output, query, profile, mode, policies, packs)
        quiet_third_party()
        from mad_guardrails.guardrails.components import status_listener
        from mad_guardrails.guardrails.guardrail import Guardrail

        with console.status("loading the guardrail (index, embedder, verifier)...") as st:
            g = Guardrail.from_config(cfg, checkpoint=checkpoint)
            with g, status_listener(lambda msg: st.update(msg)):
                v = g.check(text, query=query, mode=mode, policies=policies or None, thread_id=thread_id)
        if as_json:
            typer.echo(v.model_dump_json(indent=2))
        else:
            typer.echo(v.explain(evidence=evidence))
        raise typer.Exit(EXIT_CODES[v.decision])
