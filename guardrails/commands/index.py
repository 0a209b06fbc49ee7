"""``mad-guardrails index build|info`` and ``mad-guardrails search``: build, inspect and query the regulatory index.

    mad-guardrails index build --corpus ../shared/data/corpus          # ingest + embed + FAISS/BM25 + calibrate
    mad-guardrails index info
    mad-guardrails search "How fast must a bank report a major ICT incident?" -k 5
    mad-guardrails search "..." --json                                 # [{"id", "score", "text"}, ...] best first
    mad-guardrails search --queries questions.jsonl                    # one JSON line per {"query": ...} row

Heavy imports (torch, faiss, sentence-transformers) happen inside the commands so ``guardrails --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

index_app = typer.Typer(help="Build and inspect the regulatory retrieval index.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search)


def _index_dir(index: Path | None, cfg, profile: str) -> Path:
    from mad_guardrails.core import paths

    return Path(index or cfg.index_dir or paths.index_dir(profile)).expanduser()


def policy_passages(packs: list[str] | None = None, disabled: list[str] | None = None) -> list[dict[str, Any]]:
    """The enabled rules of the policy packs as passages of the pseudo-doc ``policy`` (``policy:<rule id>``, text
    from ``PolicySet.as_units()``); empty when the policy loader is not available."""
    try:
        from mad_guardrails.policies.loader import load_packs  # the policies work; optional here
    except ImportError:
        return []
    policy_set = load_packs(packs or ["builtin"], disabled or [])
    return [
        {"unit_id": u.id, "passage_id": u.id, "doc": "policy", "kind": "policy_rule", "heading": u.heading,
         "text": u.text, "embed_text": f"Policy rule — {u.heading}\n{u.text}"}
        for u in policy_set.as_units()
    ]


@index_app.command("build")
def build(
    corpus: Path = typer.Option(None, "--corpus", help="corpus folder (ingested, or shared-style like "
                                "shared/data/corpus); default: $GUARDRAILS_HOME/corpus"),
    index: Path = typer.Option(None, "--index", help="index folder (default $GUARDRAILS_HOME/index/<profile>)"),
    profile: str = typer.Option("offline", "--profile", help="config profile (embedder, index type, GPU use)"),
    policies: bool = typer.Option(True, "--policies/--no-policies", help="also index policy-pack rules as 'policy'"),
    index_type: str = typer.Option(None, "--index-type", help="auto | flat | hnsw | ivf (default: the profile's)"),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate",
                                   help="fit the relevance threshold on the dev split of evals/data query sets"),
    docs: str = typer.Option(None, "--docs", help="comma-separated act ids to index (default: all in the corpus)"),
    policies_only: bool = typer.Option(False, "--policies-only", help="no regulation text (offline, nothing "
                                       "ingested): index the policy-pack rules alone; verdicts then cite policy "
                                       "rules, not the acts"),
) -> None:
    """Ingest the corpus, embed every passage, write FAISS + BM25 + manifest, calibrate the relevance filter."""
    import time

    from rich.console import Console
    from rich.table import Table

    from mad_guardrails.core import paths
    from mad_guardrails.core.errors import CorpusError
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.corpus import load_corpus
    from mad_guardrails.retrieval.embedder import Embedder
    from mad_guardrails.retrieval.index import RegIndex, corpus_top_of
    from mad_guardrails.retrieval.relevance import calibrate_index, default_calibration

    err = Console(stderr=True)
    full_cfg = load_config(profile)
    cfg = full_cfg.retrieval
    corpus_path = Path(corpus or cfg.corpus_dir or paths.corpus_dir()).expanduser()
    if policies_only and (corpus is not None or docs is not None or not policies):
        raise CorpusError("--policies-only indexes the policy packs alone", where="--policies-only",
                          fix="drop --corpus / --docs / --no-policies, or drop --policies-only")
    if not policies_only and not corpus_path.exists() or (corpus_path.is_dir() and not any(corpus_path.iterdir())):
        shared = paths.shared_corpus()
        raise CorpusError(
            "no corpus here", where=str(corpus_path),
            fix="ingest one (`mad-guardrails corpus fetch all`) or pass --corpus DIR"
            + (f" (e.g. --corpus {shared})" if shared else ""),
        )
    t0 = time.perf_counter()
    wanted = [d.strip() for d in docs.split(",")] if docs else None
    if policies_only:
        from mad_guardrails.retrieval.corpus import Corpus

        err.print("[yellow]--policies-only: no regulation text is indexed; add the acts (`mad-guardrails corpus add "
                  "DIR`) and rebuild to cite them[/]")
        corp = Corpus()
    else:
        corp = load_corpus(corpus_path, docs=wanted, progress=True)
    passages: list[Any] = list(corp.passages())
    n_reg = len(passages)
    pol = policy_passages(full_cfg.policies.packs, full_cfg.policies.disabled) if policies else []
    passages += pol
    err.print(f"corpus {corpus_path}: {len(corp.docs())} acts, {n_reg} passages"
              + (f" + {len(pol)} policy rules" if pol else ""))
    embedder = Embedder.from_config(cfg.embedder)
    err.print(f"embedder: {embedder.describe()}")
    out_dir = _index_dir(index, cfg, profile)
    idx = RegIndex.build(passages, embedder, out_dir, index_type or cfg.index_type, use_gpu=cfg.use_gpu,
                         bm25_stemming=cfg.bm25_stemming, corpus_hash=corp.hash(), top_of=corpus_top_of(corp))
    cal = calibrate_index(idx, embedder) if calibrate else default_calibration(embedder.model_id)
    idx.set_relevance(cal)
    total = time.perf_counter() - t0
    m = idx.manifest
    table = Table(title=f"index built: {out_dir}", show_header=False)
    for key, val in (
        ("passages", f"{m.unit_count} ({m.distinct_units} distinct units)"),
        ("acts", ", ".join(f"{d} {n}" for d, n in m.docs.items())),
        ("embedder", embedder.describe()),
        ("index", f"{m.index_type} {m.index_params or ''} dim {m.dim}{' (GPU)' if idx.on_gpu else ''}"),
        ("embedding", f"{m.encode_seconds:.1f} s = {m.unit_count / max(m.encode_seconds or 1e-9, 1e-9):.1f} "
                      f"passages/s"),
        ("relevance", f"cosine ≥ {cal.threshold:.3f} "
                      + (f"(calibrated on {cal.n_in_domain} + {cal.n_off_topic} queries: in-domain pass "
                         f"{cal.in_domain_pass_rate:.0%}, off-topic abstain {cal.off_topic_abstain_rate:.0%})"
                         if cal.calibrated else "(default, not calibrated)")),
        ("total", f"{total:.1f} s"),
    ):
        table.add_row(key, str(val))
    err.print(table)


@index_app.command("info")
def info(
    index: Path = typer.Option(None, "--index", help="index folder (default $GUARDRAILS_HOME/index/<profile>)"),
    profile: str = typer.Option("offline", "--profile"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest summary as JSON"),
) -> None:
    """Show what an index holds and how it was built (no model is loaded)."""
    from rich.console import Console
    from rich.table import Table

    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.index import RegIndex

    cfg = load_config(profile).retrieval
    idx = RegIndex.load(_index_dir(index, cfg, profile), None, use_gpu="never", verify=False)
    data = idx.info()
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
        return
    table = Table(title="index", show_header=False)
    for key, val in data.items():
        table.add_row(key, json.dumps(val, ensure_ascii=False) if isinstance(val, dict) else str(val))
    Console().print(table)


def _result_json(res) -> list[dict[str, Any]]:
    return [{"id": e.unit_id, "kind": e.kind, "score": e.score, "text": e.text} for e in res.labelled()]


def search(
    question: str = typer.Argument(None, help="the question to retrieve evidence for"),
    k: int = typer.Option(None, "-k", "--k", help="number of results (default: the profile's k)"),
    index: Path = typer.Option(None, "--index", help="index folder (default $GUARDRAILS_HOME/index/<profile>)"),
    as_json: bool = typer.Option(False, "--json", help='print [{"id","score","text"}, ...] best first'),
    queries: Path = typer.Option(None, "--queries", help='JSONL file, one {"query": ...} per line; '
                                 "answers one JSON line per row"),
    mode: str = typer.Option(None, "--mode", help="hybrid | dense | bm25 (default: the profile's)"),
    profile: str = typer.Option("offline", "--profile"),
    doc: list[str] = typer.Option(None, "--doc", help="restrict to an act id (repeatable)"),
) -> None:
    """Retrieve the regulatory passages for a question (or for every row of --queries)."""
    from mad_guardrails.core.errors import InputError
    from mad_guardrails.guardrails.config import load_config

    if (question is None) == (queries is None):
        raise InputError("give either a question or --queries FILE (not both, not neither)",
                         fix='mad-guardrails search "your question"  or  mad-guardrails search --queries q.jsonl')
    if mode is not None and mode not in ("hybrid", "dense", "bm25"):
        raise InputError(f"unknown --mode {mode!r}", fix="use hybrid, dense or bm25")
    if queries is not None and not queries.exists():
        raise InputError("queries file not found", where=str(queries), fix="check the path")
    cfg = load_config(profile).retrieval
    update: dict[str, Any] = {}
    if k is not None:
        update["k"] = k
    if mode is not None:
        update["mode"] = mode
    cfg = cfg.model_copy(update=update)

    from mad_guardrails.retrieval.retriever import Retriever

    retriever = Retriever.from_config(cfg, profile, index_dir=index)
    docs = list(doc) if doc else None
    if queries is not None:
        _search_file(retriever, queries, docs)
        return
    res = retriever.search(question, docs=docs)
    if as_json:
        typer.echo(json.dumps(_result_json(res), ensure_ascii=False))
        if res.abstained:
            typer.echo(res.reason or "no relevant evidence", err=True)
        return
    _print_result(res)


def _search_file(retriever, path: Path, docs: list[str] | None, batch: int = 32) -> None:
    """One output line per input line: ``{"query", "results"}`` or ``{"line", "error"}`` for a bad row."""
    from mad_guardrails.core.errors import GuardrailError

    items: list[tuple[int, dict[str, Any] | None, str | None]] = []  # (line, row, error)
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                items.append((n, None, f"line {n}: not valid JSON ({e.msg})"))
                continue
            if not isinstance(row, dict) or not isinstance(row.get("query"), str) or not row["query"].strip():
                items.append((n, None, f'line {n}: expected an object with a non-empty "query" string'))
                continue
            items.append((n, row, None))

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    for s in range(0, len(items), batch):
        chunk = items[s : s + batch]
        good = [row["query"] for _, row, e in chunk if e is None]
        try:
            results = iter(retriever.search_many(good, docs=docs)) if good else iter(())
            failed = None
        except GuardrailError as e:  # e.g. one over-long query: answer row by row instead
            results, failed = None, e
        for n, row, e in chunk:
            if e is not None:
                emit({"line": n, "error": e})
                continue
            try:
                res = next(results) if failed is None else retriever.search(row["query"], docs=docs)
            except GuardrailError as ex:
                emit({"line": n, "error": f"line {n}: {ex}"})
                continue
            out = {"query": row["query"], "results": _result_json(res)}
            if "id" in row:
                out = {"id": row["id"], **out}
            if res.abstained:
                out["abstained"] = True
                out["reason"] = res.reason
            emit(out)


def _print_result(res) -> None:
    from rich.console import Console
    from rich.table import Table

    from mad_guardrails.core.text import collapse_ws

    console = Console()
    if res.abstained:
        console.print(f"[yellow]{res.reason or 'no relevant evidence'}[/] for: {res.query}")
        if res.best_relevance is not None:
            console.print(f"(best relevance {res.best_relevance:.2f})", style="dim")
        return
    table = Table(title=f"{res.query}  [{res.mode}, {res.timings.get('total', 0):.0f} ms]", show_lines=True)
    table.add_column("#", justify="right")
    table.add_column("unit", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for col, just in (("heading", "left"), ("fused", "right"), ("dense", "right"), ("bm25", "right"),
                      ("rel.", "right"), ("text", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for e in res.labelled():  # clauses first, then the policy rules that cite them
        snippet = collapse_ws(e.text)
        snippet = snippet[:220] + ("…" if len(snippet) > 220 else "")
        table.add_row(
            str(e.rank), f"[bold]{e.unit_id}[/]", e.kind, e.heading, f"{e.score:.4f}",
            "" if e.dense is None else f"{e.dense:.3f}", "" if e.bm25 is None else f"{e.bm25:.2f}",
            "" if e.relevance is None else f"{e.relevance:.2f}", snippet,
        )
    console.print(table)
