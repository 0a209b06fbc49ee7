"""``mad-guardrails audit INPUT``: check a JSONL/CSV file of AI outputs and write verdicts plus reports.

Exit codes (for CI gates):

* ``0`` — done, and the ``--fail-on`` condition was not met;
* ``3`` — ``--fail-on block`` and a row was blocked, or ``--fail-on flag`` and a row was flagged or blocked;
* ``5`` — otherwise, some rows failed closed on an infrastructure fault (LLM server down, timeout, HTTP 5xx, a
  crash) and ``--fail-on`` is not ``never``: their verdicts are not judgements; fix the cause and run the same command
  with ``--retry-failed`` to check only those rows again;
* ``4`` — otherwise, some rows could not be checked (error rows) and ``--fail-on`` is not ``never``;
* ``2`` — bad usage / config / unreadable input file / ``--out`` names a file (nothing was checked);
* ``130`` — interrupted (Ctrl-C): the finished rows are saved, run the same command again to resume.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from mad_guardrails.core.progress import console
from mad_guardrails.guardrails.commands.hangup import signals_end_command

FAIL_ON = ("block", "flag", "never")
#: rows failed closed on an infrastructure fault (see the module docstring)
INFRA_EXIT = 5


def exit_code(counts, fail_on: str) -> int:
    """The exit code for an audit's decision counts (see the module docstring).

    >>> from mad_guardrails.guardrails.audit.runner import Counts
    >>> exit_code(Counts(allow=3, flag=1), "block"), exit_code(Counts(allow=3, flag=1), "flag")
    (0, 3)
    >>> exit_code(Counts(allow=3, error=1), "block"), exit_code(Counts(block=1, error=1), "never")
    (4, 0)
    >>> exit_code(Counts(allow=3, flag=2, infra=2), "block"), exit_code(Counts(flag=2, infra=2, error=1), "never")
    (5, 0)
    """
    if fail_on == "block" and counts.block:
        return 3
    if fail_on == "flag" and (counts.flag or counts.block):
        return 3
    if fail_on != "never" and counts.infra:
        return INFRA_EXIT
    if fail_on != "never" and counts.error:
        return 4
    return 0


def record_faults(rows, summary_path: Path):
    """Count the failed rows by kind and add them to ``summary.json`` as ``faults`` (infra / output / input and the
    infra rows' ids); returns the counts."""
    import json

    from mad_guardrails.guardrails.audit.runner import atomic_write, fault_counts

    faults = fault_counts(rows)
    data = json.loads(Path(summary_path).read_text(encoding="utf-8"))
    data["faults"] = faults.model_dump(mode="json")
    atomic_write(Path(summary_path), json.dumps(data, indent=2, ensure_ascii=False).encode())
    return faults


def load_factory(spec: str):
    """``package.module:function`` → the function (it receives the GuardrailConfig and returns Components).
    The current directory is importable, as with ``python -m``."""
    import os
    import sys

    from mad_guardrails.core.errors import ConfigError

    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise ConfigError(f"--components {spec!r} is not of the form 'package.module:function'",
                          fix="e.g. --components mypkg.parts:build_components")
    added = os.getcwd() not in sys.path
    if added:  # only while importing it: the process's path stays as it was
        sys.path.insert(0, os.getcwd())
    try:
        return getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load --components {spec!r}: {e}", fix="check the module path and name") from e
    finally:
        if added and os.getcwd() in sys.path:
            sys.path.remove(os.getcwd())


def register(app: typer.Typer) -> None:
    @app.command(
        "audit",
        help="Audit a file of AI outputs: verdicts.jsonl, summary.json, report.html and report.md in --out. "
        "Resumable: after an interruption (even kill -9) run the same command again; it checks only the rows "
        "without a result. Bad rows become error rows with their line and reason, and the run goes on.",
        epilog="Exit codes: 0 ok; 3 --fail-on met (any block, or with 'flag' any flag or block); 5 rows failed "
        "closed on an infrastructure fault (server down, timeout, HTTP 5xx, crash: rerun with --retry-failed); 4 "
        "error rows (5 and 4 unless --fail-on never); 2 bad usage/input file/--out is a file; 130 interrupted.")
    def audit(
        input: Path = typer.Argument(..., help="JSONL or CSV with id, output, optional query and metadata columns"),
        out: Path = typer.Option(None, "--out", "-o", help="output folder (default: audit-out/<input stem>/)"),
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        concurrency: int = typer.Option(4, "--concurrency", "-c", min=1, help="checks in flight at once"),
        fail_on: str = typer.Option("block", "--fail-on", help="exit 3 on any: block | flag (flag or block) | never"),
        limit: int = typer.Option(None, "--limit", "-n", min=1, help="only the first N rows of the input"),
        mode: str = typer.Option("balanced", "--mode", help="strict | balanced | permissive"),
        restart: bool = typer.Option(False, "--restart", help="discard the results of an earlier run in --out"),
        retry_failed: bool = typer.Option(False, "--retry-failed",
                                          help="also check again the rows that failed closed on an infrastructure "
                                               "fault (server down, timeout, HTTP 5xx, crash); the other rows keep "
                                               "their results"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
        engine: str = typer.Option("local", "--engine", help="local (this process) | ray (a Ray Data pipeline: CPU "
                                   "actors settle what the cascade settles, debate actors spread the LLM calls over "
                                   "every endpoint; needs pip install 'mad-guardrails[ray]')"),
        address: str = typer.Option(None, "--address", help="--engine ray: the cluster (auto = the running one, "
                                    "ray://HOST:10001 = a remote one; default: start a local one)"),
        workers: int = typer.Option(2, "--workers", min=1, help="--engine ray: CPU actors settling rows"),
        debate_workers: int = typer.Option(1, "--debate-workers", min=1, help="--engine ray: actors debating the "
                                           "rows that need the LLM"),
        components: str = typer.Option(None, "--components", hidden=True,
                                       help="package.module:function building the Components from the config "
                                            "(plugins, tests)"),
    ) -> None:
        """Audit a file of AI outputs (help text above)."""
        from mad_guardrails.core.errors import InputError
        from mad_guardrails.guardrails.audit.reader import read_rows
        from mad_guardrails.guardrails.audit.report import write_reports
        from mad_guardrails.guardrails.audit.runner import AuditRunner
        from mad_guardrails.guardrails.config import load_config

        if fail_on not in FAIL_ON:
            raise InputError(f"--fail-on {fail_on!r} is not one of {', '.join(FAIL_ON)}", fix="e.g. --fail-on block")
        cfg = load_config(profile)
        if engine not in ("local", "ray"):
            raise InputError(f"--engine {engine!r} is not one of local, ray", fix="e.g. --engine ray")
        out_dir = out or Path("audit-out") / input.stem
        if engine == "ray":  # Ray is imported only here (an optional extra)
            from mad_guardrails.guardrails.audit.ray_engine import RayAuditRunner
            from mad_guardrails.guardrails.audit.streaming import RowSource

            # the rows read block by block as the cluster takes them, never all held
            rows = RowSource(input, max_chars=cfg.max_input_chars, limit=limit)
            runner = RayAuditRunner(cfg, out_dir, address=address, workers=workers, debate_workers=debate_workers,
                                    components=components, mode=mode, concurrency=concurrency,
                                    progress=not no_progress, profile=profile)
        else:
            rows = read_rows(input, max_chars=cfg.max_input_chars, limit=limit)
            runner = AuditRunner(cfg, out_dir, mode=mode, concurrency=concurrency, progress=not no_progress,
                                 profile=profile)
        if restart:
            runner.clear()
        factory = load_factory(components) if components else None

        def open_guardrail():
            from mad_guardrails.guardrails.guardrail import Guardrail

            with console.status("loading the guardrail (index, models, LLM server)..."):
                parts = factory(cfg) if factory else None
                return Guardrail(cfg, components=parts, checkpoint=runner.checkpoint_path)

        try:  # a kill or a closed terminal stops like Ctrl-C: rows saved, the LLM server stopped
            with signals_end_command(KeyboardInterrupt):
                outcome = runner.run(rows, input, open_guardrail, retry_failed=retry_failed)
        except KeyboardInterrupt:
            n = len(runner.store.rows)
            console.print(f"[yellow]interrupted[/]: {n} of {len(rows)} rows are saved in {runner.store.path}. "
                          "Run the same command again to resume.")
            raise typer.Exit(130) from None
        for note in outcome.repaired:
            console.print(f"[yellow]resumed[/]: {note}")
        paths = write_reports(outcome.rows, out_dir, title=input.name, input_path=input, manifest=outcome.manifest,
                              resumed=outcome.resumed, elapsed_s=outcome.elapsed_s)
        faults = record_faults(outcome.rows, paths["summary"])
        c = outcome.counts
        code = exit_code(c, fail_on)
        typer.echo(f"audited {len(outcome.rows)} rows ({outcome.resumed} from an earlier run"
                   + (f", {outcome.retried} retried" if outcome.retried else "") + "): "
                   f"block {c.block}, flag {c.flag}, allow {c.allow}, error {c.error}")
        typer.echo(f"failed: infra {faults.infra} (server down, timeout, HTTP error, crash"
                   + ("; rerun with --retry-failed" if faults.infra else "") + f"), output {faults.output}, "
                   f"input {faults.input}")
        typer.echo(f"verdicts: {runner.store.path}")
        typer.echo(f"summary:  {paths['summary']}")
        typer.echo(f"markdown: {paths['markdown']}")
        typer.echo(f"report:   {paths['html'].resolve()}")
        if code:
            why = {3: f"--fail-on {fail_on} met", 4: "there are error rows (see the report's 'Error rows')",
                   INFRA_EXIT: f"{c.infra} row(s) failed closed on an infrastructure fault: fix it and run the "
                               "same command with --retry-failed"}[code]
            typer.echo(f"exit {code}: {why}")
        raise typer.Exit(code)
