"""``mad-guardrails train embedder|relevance`` (and, from agents/training/, ``coordinator``): the training pipelines.

    mad-guardrails train embedder --preset cpu-small                 # data → negatives → eval base → train → eval after
    mad-guardrails train embedder --prepare-only --out DIR            # only write DIR/data (pairs, passages, vectors)
    mad-guardrails train embedder --data DIR/data --preset gpu --no-eval --base-model PATH   # train where the GPU is
    mad-guardrails train embedder --eval-only --adapter DIR/adapter   # base vs an existing adapter, one report
    mad-guardrails train embedder ... --install                       # copy the adapter into the project if it wins
    mad-guardrails train relevance --data DIR/data --preset cpu-small # relevance head vs the dense threshold

Every run shows progress bars, checkpoints under ``<out>/.../checkpoints`` (``--resume`` continues), and is
seeded (``--seed``). Reports: ``<out>/eval/compare.md`` (embedder), ``<out>/relevance/relevance_compare.md``.
Heavy imports (torch, sentence-transformers, peft) happen inside the commands.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

train_app = typer.Typer(help="Train the domain embedder (LoRA), the relevance head, the coordinator.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    _register_coordinator()


def _register_coordinator() -> None:
    """``train coordinator``: the coordinator's RAFT / QLoRA pipeline (agents/training) with its CLI."""
    from mad_guardrails.guardrails.commands.train_coordinator import register_coordinator

    register_coordinator(train_app)


def _default_out(name: str) -> Path:
    from mad_guardrails.core import paths

    return paths.home() / "training" / name


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _load_corpus(corpus: Path | None, docs: str | None):
    from mad_guardrails.core import paths
    from mad_guardrails.core.errors import CorpusError
    from mad_guardrails.retrieval.corpus import load_corpus

    path = corpus or paths.corpus_dir()
    if not Path(path).exists() or (Path(path).is_dir() and not any(Path(path).iterdir())):
        shared = paths.shared_corpus()
        if corpus is None and shared is not None:
            path = shared
        else:
            raise CorpusError("no corpus here", where=str(path),
                              fix="ingest one (`mad-guardrails corpus fetch all`) or pass --corpus DIR")
    wanted = [d.strip() for d in docs.split(",")] if docs else None
    return load_corpus(path, docs=wanted, progress=True)


def _is_adapter_dir(p: Path) -> bool:
    return (p / "adapter_config.json").exists()


def _install(src: Path, dest: Path, what: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in dest.iterdir():
        if f.is_file():
            f.unlink()
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, dest / f.name)
    _console().print(f"[green]installed[/] {what} → {dest}")


def _pairs_from_rerank_data(src: Path, data_dir: Path, *, profile: str, template: int, seed: int) -> None:
    """A prepared embedder folder (pairs + refs) from a reranker data folder; refs are the profile index's passages."""
    from mad_guardrails.guardrails.commands.index import _index_dir
    from mad_guardrails.guardrails.config import load_config
    from mad_guardrails.retrieval.index import RegIndex
    from mad_guardrails.retrieval.training.heldout import heldout_gold_keys
    from mad_guardrails.retrieval.training.pairs import save_pairs, summarize
    from mad_guardrails.retrieval.training.prepare import PAIRS_FILE, REFS_FILE, save_refs
    from mad_guardrails.retrieval.training.rerank_data import groups_as_pairs, index_refs

    index = RegIndex.load(_index_dir(None, load_config(profile).retrieval, profile), None, use_gpu="never")
    refs = [r for r in index_refs(index) if r.doc != "policy"]
    pairs = groups_as_pairs(src, refs, holdout_keys=heldout_gold_keys(), template=template, seed=seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    save_pairs(pairs, data_dir / PAIRS_FILE)
    save_refs(refs, data_dir / REFS_FILE)
    s = summarize(pairs)
    _console().print(f"data → {data_dir}: {s['train']['n']} train pairs from {src} (by source "
                     f"{s['train']['by_source']}); evaluation gold articles held out")


@train_app.command("embedder")
def embedder(
    preset: str = typer.Option("cpu-small", "--preset", help="seed | cpu-small | gpu (retrieval/training/"
                               "embedder_trainer.py PRESETS); options below override it"),
    out: Path = typer.Option(None, "--out", "-o", help="run folder (default $GUARDRAILS_HOME/training/embedder)"),
    corpus: Path = typer.Option(None, "--corpus", help="corpus folder (default: ingested corpus, else ../shared)"),
    docs: str = typer.Option(None, "--docs", help="comma-separated act ids (default: all)"),
    data: Path = typer.Option(None, "--data", help="use prepared data (a folder written by --prepare-only)"),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="write <out>/data and stop"),
    mine: bool = typer.Option(True, "--mine/--no-mine", help="mine hard negatives while preparing (--no-mine: "
                              "generation only, no model; training mines them first)"),
    eval_only: bool = typer.Option(False, "--eval-only", help="no training: compare the base with --adapter"),
    adapter: list[Path] = typer.Option(None, "--adapter", help="adapter folder(s) to evaluate (with --eval-only)"),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="before/after evaluation"),
    pipeline: bool = typer.Option(True, "--pipeline/--no-pipeline",
                                  help="also run the real hybrid retriever (index per model) in the evaluation"),
    install: bool = typer.Option(False, "--install", help="copy the adapter to retrieval/adapters/minilm-regulatory "
                                 "when it beats the base through the pipeline (then rebuild indexes)"),
    resume: bool = typer.Option(False, "--resume", help="continue from the latest checkpoint in <out>/checkpoints"),
    seed: int = typer.Option(42, "--seed", help="training seed (data order, LoRA init, dropout)"),
    data_seed: int = typer.Option(0, "--data-seed", help="query generation / split seed"),
    per_type: int = typer.Option(1, "--per-type", help="generated queries per passage and query type"),
    test_fraction: float = typer.Option(0.12, "--test-fraction", help="share of units held out as test"),
    holdout_eval_golds: bool = typer.Option(False, "--holdout-eval-golds",
                                            help="strict: also hold out the gold units of the hand-written set"),
    llm: bool = typer.Option(False, "--llm", help="add LLM-written queries through the profile's agents backend"),
    profile: str = typer.Option("offline", "--profile", help="profile for --llm"),
    base_model: str = typer.Option(None, "--base-model", help="model spec (default bundled:all-MiniLM-L6-v2)"),
    epochs: float = typer.Option(None, "--epochs"),
    max_steps: int = typer.Option(None, "--max-steps"),
    batch_size: int = typer.Option(None, "--batch-size"),
    grad_accum: int = typer.Option(None, "--grad-accum"),
    lr: float = typer.Option(None, "--lr"),
    max_seq_length: int = typer.Option(None, "--max-seq-length"),
    max_pairs: int = typer.Option(None, "--max-pairs", help="random subset of training pairs"),
    hard_negatives: int = typer.Option(None, "--hard-negatives", help="hard negatives per pair in the loss (0-3)"),
    lora: bool = typer.Option(None, "--lora/--full", help="LoRA adapter (default) or full fine-tune"),
    lora_r: int = typer.Option(None, "--lora-r"),
    lora_alpha: int = typer.Option(None, "--lora-alpha"),
    lora_dropout: float = typer.Option(None, "--lora-dropout"),
    merge: bool = typer.Option(None, "--merge/--no-merge", help="also write the merged full model"),
    save_steps: int = typer.Option(None, "--save-steps"),
    device: str = typer.Option(None, "--device", help="auto | cpu | cuda"),
    init_adapter: str = typer.Option(None, "--init-adapter", help="continue training this adapter folder (or "
                                     "'bundled') instead of a fresh LoRA"),
    from_rerank_data: Path = typer.Option(None, "--from-rerank-data", help="prepare the pairs from a reranker data "
                                          "folder (bench/gpu/rerank/prepare.py --add-written): its written queries "
                                          "+ --template-pairs template ones, evaluation gold articles held out"),
    template_pairs: int = typer.Option(800, "--template-pairs", help="template groups kept with --from-rerank-data"),
) -> None:
    """Fine-tune the embedder (LoRA, MNRL + hard negative in MatryoshkaLoss) and evaluate base vs adapted."""
    from mad_guardrails.retrieval.training.embedder_trainer import resolve_config, train_embedder
    from mad_guardrails.retrieval.training.prepare import load_prepared, prepare_embedder_data

    con = _console()
    out = Path(out or _default_out("embedder"))
    overrides = dict(base_model=base_model, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                     grad_accum=grad_accum, lr=lr, max_seq_length=max_seq_length, max_pairs=max_pairs,
                     hard_negatives=hard_negatives, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha,
                     lora_dropout=lora_dropout, merge=merge, seed=seed, save_steps=save_steps, device=device,
                     init_adapter=init_adapter)
    cfg = resolve_config(preset, overrides)
    data_dir = data or out / "data"
    if data is None and from_rerank_data is not None:
        _pairs_from_rerank_data(from_rerank_data, data_dir, profile=profile, template=template_pairs, seed=data_seed)
    elif data is None and not (resume and (data_dir / "pairs.jsonl.gz").exists()):
        gen = None
        if llm:
            from mad_guardrails.agents.backends import make_backend
            from mad_guardrails.guardrails.config import load_config
            from mad_guardrails.retrieval.training.llm_queries import LLMQueryGenerator

            gen = LLMQueryGenerator(make_backend(load_config(profile).llm))
        corp = _load_corpus(corpus, docs)
        info = prepare_embedder_data(corp, data_dir, seed=data_seed, per_type=per_type, test_fraction=test_fraction,
                                     holdout_eval_golds=holdout_eval_golds, llm=gen, rules=_pack_rules(), mine=mine)
        s = info["summary"]
        con.print(f"data → {data_dir}: {s['train']['n']} train pairs ({s['train']['keys']} units), "
                  f"{s['test']['n']} test pairs ({s['test']['keys']} units); by type {s['train']['by_type']}; "
                  f"{info['dropped_near_heldout']} dropped as too close to a held-out query")
    if prepare_only:
        return
    from mad_guardrails.retrieval.training.prepare import ensure_mined

    ensure_mined(data_dir, base=cfg.base_model)
    pairs, refs, _ = load_prepared(data_dir)
    if holdout_eval_golds and data is not None:  # prepared without the strict split: apply it now
        from mad_guardrails.retrieval.training.heldout import heldout_gold_keys
        from mad_guardrails.retrieval.training.pairs import resplit

        pairs = resplit(pairs, heldout_gold_keys())
        con.print(f"strict split: {sum(p.split == 'test' for p in pairs)} test pairs "
                  f"(hand-written gold units held out)")
    adapters: dict[str, str | None] = {}
    if eval_only:
        for a in adapter or []:
            if not _is_adapter_dir(a):
                from mad_guardrails.core.errors import InputError

                raise InputError("not an adapter folder (no adapter_config.json)", where=str(a),
                                 fix="pass the 'adapter' folder of a training run")
            adapters[a.parent.name if a.name == "adapter" else a.name] = str(a)
    else:
        res = train_embedder(pairs, cfg, out, resume=resume)
        first, last = (res.losses[0][1], res.losses[-1][1]) if res.losses else (None, None)
        con.print(f"trained {res.steps} steps on {res.n_train} pairs in {res.train_seconds:.0f} s; loss {first} → "
                  f"{last}; adapter → {res.adapter_dir or res.merged_dir}")
        if res.adapter_dir:
            adapters["adapted"] = res.adapter_dir
    if not evaluate or not adapters:
        return
    from mad_guardrails.retrieval.training.evaluate import compare_embedders

    report = compare_embedders(refs, pairs, base=cfg.base_model, adapters=adapters, dims=cfg.matryoshka_dims,
                               pipeline=pipeline, out_dir=out / "eval")
    _print_compare(report)
    con.print(f"report → {out / 'eval' / 'compare.md'}")
    verdict = report.get("verdict", {})
    if install:
        from mad_guardrails.retrieval.embedder import BUNDLED_ADAPTER_DIR

        winners = [m for m, v in verdict.get("models", {}).items() if v["beats_base"]]
        if not verdict.get("decided"):
            con.print("[yellow]--install needs the pipeline evaluation (--pipeline)[/]")
        elif not winners:
            con.print("[yellow]adapter does not beat the base through the pipeline: not installed (base stays)[/]")
        else:
            best = max(winners, key=lambda m: (verdict["models"][m]["mrr@10"], verdict["models"][m]["recall@10"]))
            _install(Path(adapters[best]), BUNDLED_ADAPTER_DIR, f"embedder adapter {best!r}")
            (BUNDLED_ADAPTER_DIR / "evaluation.json").write_text(json.dumps(
                {"verdict": verdict, "rerank": report["rerank"], "ir": report["ir"]}, indent=1) + "\n",
                encoding="utf-8")
            con.print("[bold]indexes built with the old embedder must be rebuilt:[/] `mad-guardrails index build` "
                      "(the manifest's adapter fingerprint changed)")


def _print_compare(report: dict) -> None:
    from rich.table import Table

    from mad_guardrails.core.progress import console

    t = Table(title="4-candidate reranking (recall@1 / recall@3 / MRR)")
    for c in ("set", "model", "type", "n", "R@1", "R@3", "MRR"):
        t.add_column(c)
    for s, models in report["rerank"].items():
        for m, v in models.items():
            t.add_row(s, m, "all", str(v["n"]), f"{v['recall@1']:.3f}", f"{v['recall@3']:.3f}", f"{v['mrr']:.3f}",
                      style="bold")
            for ty, tv in v["by_type"].items():
                t.add_row("", "", ty, str(tv["n"]), f"{tv['recall@1']:.3f}", f"{tv['recall@3']:.3f}",
                          f"{tv['mrr']:.3f}")
    console.print(t)
    if report.get("pipeline"):
        t2 = Table(title="real pipeline, hand-written queries (hybrid)")
        for c in ("model", "split", "n", "R@1", "R@5", "R@10", "MRR@10", "dense R@10", "dense MRR@10"):
            t2.add_column(c)
        for m, splits in report["pipeline"].items():
            for sp, rep in splits.items():
                h, d = rep["systems"]["hybrid"]["all"], rep["systems"]["dense"]["all"]
                t2.add_row(m, sp, str(h["n"]), f"{h['recall@1']:.3f}", f"{h['recall@5']:.3f}",
                           f"{h['recall@10']:.3f}", f"{h['mrr@10']:.3f}", f"{d['recall@10']:.3f}",
                           f"{d['mrr@10']:.3f}")
        console.print(t2)


@train_app.command("relevance")
def relevance(
    preset: str = typer.Option("cpu-small", "--preset", help="cpu-small | gpu (relevance_trainer.PRESETS)"),
    out: Path = typer.Option(None, "--out", "-o", help="run folder (default $GUARDRAILS_HOME/training/relevance)"),
    data: Path = typer.Option(None, "--data", help="prepared embedder data folder (pairs with hard negatives); "
                              "default: <out>/data, prepared from the corpus when missing"),
    corpus: Path = typer.Option(None, "--corpus"),
    docs: str = typer.Option(None, "--docs"),
    examples: Path = typer.Option(None, "--examples", help="prepared relevance examples (examples.jsonl.gz)"),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="write <out>/examples.jsonl.gz and stop"),
    eval_only: bool = typer.Option(False, "--eval-only", help="no training: compare the threshold with --head"),
    head: Path = typer.Option(None, "--head", help="trained head folder (with --eval-only)"),
    evaluate: bool = typer.Option(True, "--eval/--no-eval"),
    install: bool = typer.Option(False, "--install", help="copy the head to retrieval/adapters/relevance-minilm "
                                 "when it beats the threshold filter"),
    embedder_adapter: str = typer.Option(None, "--embedder-adapter",
                                         help="embedder adapter for the retriever in the comparison ('bundled')"),
    resume: bool = typer.Option(False, "--resume"),
    seed: int = typer.Option(42, "--seed"),
    base_model: str = typer.Option(None, "--base-model"),
    epochs: float = typer.Option(None, "--epochs"),
    max_steps: int = typer.Option(None, "--max-steps"),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, "--lr"),
    max_length: int = typer.Option(None, "--max-length"),
    max_positives: int = typer.Option(None, "--max-positives"),
    offtopic_weight: float = typer.Option(None, "--offtopic-weight"),
    device: str = typer.Option(None, "--device"),
) -> None:
    """Train the binary relevance head (MiniLM cross-encoder + LoRA) and compare it with the dense threshold."""
    from mad_guardrails.retrieval.training.prepare import load_prepared, prepare_embedder_data
    from mad_guardrails.retrieval.training.relevance_trainer import (
        compare_filters,
        load_examples,
        prepare_relevance_examples,
        resolve_config,
        save_examples,
        train_relevance,
    )

    con = _console()
    out = Path(out or _default_out("relevance"))
    cfg = resolve_config(preset, dict(base_model=base_model, epochs=epochs, max_steps=max_steps,
                                      batch_size=batch_size, lr=lr, max_length=max_length,
                                      max_positives=max_positives, offtopic_weight=offtopic_weight, seed=seed,
                                      device=device))
    data_dir = data or out / "data"
    if not (data_dir / "pairs.jsonl.gz").exists():
        prepare_embedder_data(_load_corpus(corpus, docs), data_dir, rules=_pack_rules())
    from mad_guardrails.retrieval.training.prepare import ensure_mined

    ensure_mined(data_dir, base=cfg.base_model)
    pairs, refs, vecs = load_prepared(data_dir)
    ex_path = examples or out / "examples.jsonl.gz"
    if examples is None and not (resume and ex_path.exists()):
        if vecs is None:
            from mad_guardrails.retrieval.embedder import Embedder

            vecs = Embedder.load(cfg.base_model).encode_passages([r.embed_text for r in refs])
        rows = prepare_relevance_examples(pairs, refs, vecs, cfg, base=cfg.base_model)
        save_examples(rows, ex_path)
        from collections import Counter

        con.print(f"examples → {ex_path}: " + ", ".join(
            f"{k} {v}" for k, v in sorted(Counter(f"{e.split}/{e.kind}" for e in rows).items())))
    if prepare_only:
        return
    rows = load_examples(ex_path)
    if eval_only:
        if head is None:
            from mad_guardrails.core.errors import InputError

            raise InputError("--eval-only needs --head DIR", fix="pass the 'head' folder of a training run")
        head_dir = head
    else:
        res = train_relevance(rows, cfg, out, resume=resume)
        con.print(f"trained {res.steps} steps on {res.n_train} examples in {res.train_seconds:.0f} s; loss "
                  f"{res.losses[0][1] if res.losses else None} → {res.losses[-1][1] if res.losses else None}")
        head_dir = Path(res.head_dir)
    if not evaluate:
        return
    heldout = [e for e in rows if e.split == "test"]
    rep = compare_filters(head_dir, refs, heldout, base=cfg.base_model, adapter=embedder_adapter,
                          out_dir=out / "relevance")
    from mad_guardrails.core.progress import console

    console.print((out / "relevance" / "relevance_compare.md").read_text(encoding="utf-8"))
    if install:
        from mad_guardrails.retrieval.relevance_head import BUNDLED_RELEVANCE_DIR

        if rep["verdict"]["head_wins"]:
            _install(head_dir, BUNDLED_RELEVANCE_DIR, "relevance head")
            (BUNDLED_RELEVANCE_DIR / "evaluation.json").write_text(json.dumps(rep, indent=1) + "\n",
                                                                   encoding="utf-8")
        else:
            con.print("[yellow]the head does not beat the threshold filter: not installed[/]")


def _pack_rules() -> list:
    """The built-in packs' rules (their titles and key facts name passages for the synthetic queries); none when the
    packs do not load."""
    try:
        from mad_guardrails.policies.loader import load_packs

        return list(load_packs().rules)
    except Exception:  # noqa: BLE001 -- the packs are an optional source of facts
        return []
