"""Retrieval evaluation from the command line: ``python -m mad_guardrails.evals.retrieval_eval`` (BM25 / dense /
hybrid / hybrid + filter on the hand-written queries). The evaluation itself is
:func:`mad_guardrails.retrieval.evaluation.run_retrieval_eval`; this module adds the profile and the table."""

from __future__ import annotations

from pathlib import Path

import typer

from mad_guardrails.guardrails.config import load_config
from mad_guardrails.retrieval.evaluation import print_report, rank_metrics, run_retrieval_eval

__all__ = ["cli", "main", "rank_metrics", "run_retrieval_eval", "print_report"]

cli = typer.Typer(add_completion=False, help="Retrieval evaluation (BM25 / dense / hybrid / hybrid + filter).")


@cli.command()
def main(
    index: Path = typer.Option(None, "--index", help="index folder (default: the profile's)"),
    queries: Path = typer.Option(None, "--queries", help="query JSONL (default evals/data/regulatory_queries.jsonl)"),
    profile: str = typer.Option("offline", "--profile"),
    split: str = typer.Option("test", "--split", help="dev | test | all (calibration uses dev: report test)"),
    k: int = typer.Option(10, "-k"),
    out: Path = typer.Option(None, "--out", help="report folder (default $GUARDRAILS_HOME/reports/retrieval)"),
    st: bool = typer.Option(True, "--st/--no-st", help="also run sentence-transformers' IR evaluator"),
) -> None:
    """Run the evaluation and print the table."""
    run_retrieval_eval(index, queries, profile=profile, retrieval_config=load_config(profile).retrieval, split=split, k=k,
                       out_dir=out, st_evaluator=st)


if __name__ == "__main__":
    from mad_guardrails.core.errors import GuardrailError

    try:
        cli()
    except GuardrailError as e:
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from e
