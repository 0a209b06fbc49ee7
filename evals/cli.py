"""``mad-guardrails eval``: run the guardrail and its baselines on eval sets, print and write the metrics.

The evals layer sits above the app, so the app does not import it: this ``register(app)`` is found through the entry
point group ``mad_guardrails.commands`` (``pyproject.toml``), the way any package can add a command."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def evaluate(
        sets: list[str] = typer.Argument(None, help="set names (evals/sets/*.yaml) or set YAML paths; default: all"),
        systems: str = typer.Option("mad,single,majority,noretrieval,screening,claims", "--systems",
                                    help="comma-separated: mad, single, majority, noretrieval, screening, claims "
                                    "(claim verification alone, no LLM)"),
        limit: int = typer.Option(None, "--limit", "-n", help="sample this many cases (stratified by query type)"),
        seed: int = typer.Option(0, "--seed", help="sampling seed (also the majority judges' base seed)"),
        split: str = typer.Option(None, "--split", help="only this split (train / dev / test) of sets that declare "
                                  "one (a 'split:' rule in the set YAML): the rows a trained model never saw"),
        out: Path = typer.Option(None, "--out", "-o",
                                 help="output folder; default $GUARDRAILS_HOME/evals/<profile>-<sets>-s<seed>-n<limit>"
                                 " (the same command resumes the same folder)"),
        profile: str = typer.Option("offline", "--profile", "-p", help="profile name or config YAML path"),
        concurrency: int = typer.Option(2, "--concurrency", "-c", min=1, help="cases checked at once"),
        majority_n: int = typer.Option(None, "--majority-n", min=1,
                                       help="N judges of the majority baseline (default: mad's mean LLM calls)"),
        retry_errors: bool = typer.Option(False, "--retry-errors", help="re-run cases that ended in a harness error"),
        chunk: int = typer.Option(12, "--chunk", min=0,
                                  help="cases per chunk: all systems finish a chunk before the next one starts, so a "
                                  "stopped run still compares like with like (0 = system by system)"),
        report_only: bool = typer.Option(False, "--report-only",
                                         help="run nothing: recompute metrics, tables and plots from results.jsonl"),
        list_sets: bool = typer.Option(False, "--list", help="list the sets with their case counts and exit"),
        as_json: bool = typer.Option(False, "--json", help="print metrics.json to stdout instead of the table"),
    ) -> None:
        """Evaluate the guardrail (mad) against baselines at equal compute on labelled sets; resumable."""
        from mad_guardrails.core.progress import console
        from mad_guardrails.evals.harness import EvalOptions, default_out_dir, run_eval
        from mad_guardrails.evals.loaders import available_sets

        names = list(sets or []) or _present_sets(available_sets())
        if list_sets:
            _list(names)
            raise typer.Exit(0)
        chosen = [s.strip() for s in systems.split(",") if s.strip()]
        import signal
        import sys

        # a plain `kill` ends the run like Ctrl-C: finally-blocks stop the LLM server the guardrail started
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        out = out or default_out_dir(names, profile, seed, limit, split)
        console.print(f"[bold]eval[/] sets: {', '.join(names)} | systems: {', '.join(chosen)} | limit {limit} | "
                      f"seed {seed}{f' | split {split}' if split else ''} | out {out}")
        res = run_eval(EvalOptions(sets=names, systems=chosen, limit=limit, seed=seed, split=split, out=out,
                                   profile=profile, concurrency=concurrency, majority_n=majority_n,
                                   retry_errors=retry_errors, chunk=chunk, report_only=report_only))
        if as_json:
            typer.echo((res.out / "metrics.json").read_text(encoding="utf-8"))
        else:
            from rich.console import Console

            from mad_guardrails.evals.report import rich_table

            n_done = sum(1 for _ in res.records) // max(1, len(res.metrics))
            Console(width=None if sys.stdout.isatty() else 160).print(rich_table(
                res.metrics, title=f"eval: {n_done} of {len(res.manifest.case_ids)} sampled cases"
                + (f", majority N={res.manifest.majority_n}" if res.manifest.majority_n else "")))
        console.print(f"results: {res.out / 'results.jsonl'}\nmetrics: {res.out / 'metrics.md'} "
                      f"(+ metrics.json, plots/)")


def _present_sets(names: list[str]) -> list[str]:
    """The sets whose data files exist here (the default when no set is named)."""
    from mad_guardrails.core.errors import GuardrailError
    from mad_guardrails.core.progress import console
    from mad_guardrails.evals.loaders import load_spec, resolve_paths

    out = []
    for n in names:
        try:
            resolve_paths(load_spec(n))
            out.append(n)
        except GuardrailError as e:
            console.print(f"[yellow]skipping set {n}: {e}[/]")
    return out


def _list(names: list[str]) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    from mad_guardrails.evals.loaders import QUERY_TYPES, load_set, load_spec

    con = Console()
    wide = con.width >= 140
    t = Table(title="eval sets", header_style="bold")
    heads = ["set", "cases", "benign", "ambig.", "advers.", "allow", "flag", "block"] + (["description"] if wide else [])
    for col in heads:
        t.add_column(col, justify="left" if col in ("set", "description") else "right", no_wrap=col == "set")
    for n in names:
        spec = load_spec(n)
        try:
            cases = load_set(spec)
        except Exception as e:  # a set whose data is missing here: show why, list the rest
            t.add_row(spec.name, "–", "", "", "", "", "", "", *([f"[red]{e}[/]"] if wide else []))
            continue
        ty, ex = Counter(c.type for c in cases), Counter(c.expected for c in cases)
        t.add_row(spec.name, str(len(cases)), *[str(ty[q]) for q in QUERY_TYPES], str(ex["allow"]), str(ex["flag"]),
                  str(ex["block"]), *([spec.description] if wide else []))
    con.print(t)
