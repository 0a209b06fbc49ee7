"""``mad-guardrails corpus``: fetch, add, list and show the regulatory corpus (citable units per act).

    mad-guardrails corpus fetch all                      # official sources (EUR-Lex, NIST) -> $GUARDRAILS_HOME/corpus
    mad-guardrails corpus fetch eu-ai-act --base-url http://mirror.local/corpus/
    mad-guardrails corpus add ../shared/data/corpus      # every act folder of a shared-corpus-like tree
    mad-guardrails corpus add policy.pdf --doc acme-policy
    mad-guardrails corpus list
    mad-guardrails corpus show eu-ai-act:art_5.1.c
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

CORPUS_OPT = typer.Option(None, "--corpus", help="corpus folder (default: $GUARDRAILS_HOME/corpus)")


def _corpus_dir(corpus: Optional[Path]) -> Path:
    from mad_guardrails.core.paths import corpus_dir

    return Path(corpus) if corpus is not None else corpus_dir()


def _fail(e: Exception) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _summary(top_counts: dict[str, int], counts: dict[str, int]) -> str:
    names = {"article": "articles", "recital": "recitals", "annex": "annexes", "framework_element": "elements",
             "section": "sections", "text": "paragraphs", "policy_rule": "rules"}
    parts = [f"{n} {names.get(k, k)}" for k, n in sorted(top_counts.items(), key=lambda kv: -kv[1])]
    sub = sum(counts.values()) - sum(top_counts.values())
    return ", ".join(parts) + (f" (+{sub} paragraphs/points)" if sub else "")


def register(app: typer.Typer) -> None:
    corpus_app = typer.Typer(help="Ingest regulatory texts into citable units (articles, paragraphs, points, "
                             "framework elements).", no_args_is_help=True)
    app.add_typer(corpus_app, name="corpus")

    @corpus_app.command("fetch")
    def fetch(
        name: str = typer.Argument(..., help="act id (e.g. eu-ai-act, nist-csf-2.0) or 'all'"),
        base_url: Optional[str] = typer.Option(None, "--base-url", help="read sources from this mirror (a folder "
                                               "laid out like shared/data/corpus over HTTP); env "
                                               "GUARDRAILS_FETCH_BASE"),
        corpus: Optional[Path] = CORPUS_OPT,
        timeout: float = typer.Option(60.0, help="seconds per download"),
    ) -> None:
        """Download acts from their official sources (or a mirror) and ingest them."""
        from rich.console import Console

        from mad_guardrails.core.errors import GuardrailError
        from mad_guardrails.retrieval.fetch import base_url_from_env, fetch_act, fetch_names
        from mad_guardrails.retrieval.ingest.base import catalog

        out = Console()
        err = Console(stderr=True)
        try:
            names = fetch_names(name, base_url=base_url)
        except GuardrailError as e:
            _fail(e)
        if name == "all":
            skipped = [d for d in catalog() if d not in names]
            if skipped:
                err.print(f"skipping (no mirror path): {', '.join(skipped)}", highlight=False, soft_wrap=True)
        failures = 0
        for doc in names:
            try:
                r = fetch_act(doc, corpus_dir=_corpus_dir(corpus), base_url=base_url, timeout=timeout)
            except GuardrailError as e:
                failures += 1
                err.print(f"[bold red]error:[/] {doc}: {e}", highlight=False, soft_wrap=True)
                continue
            notes = []
            for d in r.downloads:
                if d.checksum == "recorded":
                    notes.append(f"sha256 recorded (not pinned in sources.yaml): {d.sha256}")
                elif d.checksum == "changed":
                    notes.append(f"[yellow]content changed since the last fetch[/] (sha256 {d.sha256})")
            out.print(f"[green]✓[/] {doc}: {r.units} units ({r.top_units} top-level) from "
                      f"{', '.join(d.url for d in r.downloads)}", highlight=False, soft_wrap=True)
            for n in notes:
                out.print(f"  {n}", highlight=False, soft_wrap=True)
        if base_url_from_env(base_url) is None and failures == len(names) > 1:
            err.print("no act could be fetched; offline? add local copies: mad-guardrails corpus add FILE --doc ID")
        if failures:
            raise typer.Exit(2)

    @corpus_app.command("add")
    def add(
        path: Path = typer.Argument(..., help="a file (JSONL, Markdown, EUR-Lex HTML, PDF, text) or a folder: one "
                                    "act folder, or a tree with one folder per act"),
        doc: Optional[str] = typer.Option(None, "--doc", help="act id (default: from the file/folder name)"),
        fmt: Optional[str] = typer.Option(None, "--format", help="jsonl | markdown | eurlex_html | pdf | text "
                                          "(default: by extension / content)"),
        corpus: Optional[Path] = CORPUS_OPT,
    ) -> None:
        """Ingest local files into the corpus."""
        from rich.console import Console

        from mad_guardrails.core.errors import CorpusError, GuardrailError
        from mad_guardrails.core.hashing import file_sha256
        from mad_guardrails.core.progress import make_progress
        from mad_guardrails.retrieval.corpus import Corpus
        from mad_guardrails.retrieval.ingest import (
            act_files,
            act_folders,
            infer_doc,
            ingest_act_dir,
            ingest_file,
        )

        out = Console()
        target = _corpus_dir(corpus)
        try:
            if not path.exists():
                raise CorpusError("no such file or folder", where=str(path), fix="check the path")
            jobs: list[tuple[str, Path]] = []
            if path.is_file():
                jobs.append((doc or infer_doc(path) or "", path))
            elif doc is not None or act_files(path, infer_doc(path) or path.name):
                jobs.append((doc or infer_doc(path) or path.name, path))
            else:
                jobs.extend((sub.name, sub) for sub in act_folders(path))
                if not jobs:
                    raise CorpusError("no act files or act folders in this folder", where=str(path),
                                      fix="pass a file, an act folder, or a tree with one folder per act")
            c = Corpus()
            with make_progress(transient=True) as bar:
                task = bar.add_task("ingesting", total=len(jobs))
                for d, p in jobs:
                    bar.update(task, description=f"ingesting {d or p.name}")
                    if p.is_file():
                        units = ingest_file(p, d or None, fmt=fmt)
                        c.add_act(units[0].doc, units, source=[p.name], sha256={p.name: file_sha256(p)})
                    else:
                        units, shas = ingest_act_dir(p, d)
                        c.add_act(d, units, source=sorted(shas), sha256=shas)
                    bar.advance(task)
            c.save(target)
        except GuardrailError as e:
            _fail(e)
        for d in c.docs():
            m = c.manifest(d)
            out.print(f"[green]✓[/] {d}: {_summary(m.top_counts, m.counts)} -> {target}", highlight=False,
                      soft_wrap=True)

    @corpus_app.command("list")
    def list_(
        corpus: Optional[Path] = CORPUS_OPT,
        as_json: bool = typer.Option(False, "--json", help="print the manifests as JSON"),
    ) -> None:
        """The ingested acts: title, units by kind, source, hash."""
        from rich.console import Console
        from rich.table import Table

        from mad_guardrails.core.errors import GuardrailError
        from mad_guardrails.retrieval.corpus import Corpus, manifest_json

        try:
            c = Corpus.load(_corpus_dir(corpus))
        except GuardrailError as e:
            _fail(e)
        out = Console()
        if as_json:
            print(manifest_json(c))
            return
        t = Table(title=f"corpus {_corpus_dir(corpus)}  (hash {c.hash()[:12]})")
        for col in ("doc", "title", "units", "source", "hash"):
            t.add_column(col, overflow="fold")
        for d in c.docs():
            m = c.manifest(d)
            t.add_row(d, m.title, _summary(m.top_counts, m.counts), "\n".join(m.source), m.units_sha256[:12])
        out.print(t)

    @corpus_app.command("show")
    def show(
        unit_id: str = typer.Argument(..., help="e.g. eu-ai-act:art_5.1.c"),
        corpus: Optional[Path] = CORPUS_OPT,
    ) -> None:
        """Print one unit (heading, parent, children, verbatim text)."""
        from rich.console import Console

        from mad_guardrails.core.errors import CorpusError, GuardrailError
        from mad_guardrails.retrieval.corpus import Corpus

        try:
            doc = unit_id.partition(":")[0]
            c = Corpus.load(_corpus_dir(corpus), docs=[doc])
            u = c.get(unit_id)
            if u is None:
                raise CorpusError(f"no unit {unit_id!r}", where=str(_corpus_dir(corpus)),
                                  fix="ids look like eu-ai-act:art_5.1.c, nist-csf-2.0:GV.OC-01; see "
                                  "`mad-guardrails corpus list`")
        except GuardrailError as e:
            _fail(e)
        out = Console()
        out.print(f"[bold]{u.id}[/]  {u.kind}  {u.heading}", highlight=False, soft_wrap=True)
        where = " · ".join(x for x in (u.act_title, u.chapter, u.section) if x)
        out.print(where, highlight=False, soft_wrap=True)
        if u.parent:
            out.print(f"parent: {u.parent}", highlight=False, soft_wrap=True)
        kids = c.children(u.id)
        if kids:
            out.print("children: " + ", ".join(k.local_id for k in kids), highlight=False, soft_wrap=True)
        out.print()
        out.print(u.text, highlight=False, markup=False, soft_wrap=True)
