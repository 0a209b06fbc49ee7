"""One rich progress bar style for every long job (ingest, index build, audits, evals, training)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def make_progress(*extra_columns, transient: bool = False, disable: bool | None = None) -> Progress:
    """A progress bar with ETA on stderr (so ``--json`` output on stdout stays clean).

    >>> with make_progress(disable=True) as p:
    ...     t = p.add_task("embedding", total=3)
    ...     for _ in range(3): p.advance(t)
    """
    if disable is None:
        disable = False
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        transient=transient,
        disable=disable,
        refresh_per_second=4 if sys.stderr.isatty() else 0.5,
    )
