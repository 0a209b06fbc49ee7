"""``mad-guardrails train coordinator ...``: RAFT self-distillation of the coordinator, LoRA/QLoRA, six-axis evaluation.

The ``train`` command group (``guardrails/commands/train.py``) calls :func:`register_coordinator` once::

    from mad_guardrails.guardrails.commands.train_coordinator import register_coordinator
    register_coordinator(train_app)

Stages (see :mod:`mad_guardrails.agents.training.pipeline`; every stage takes ``--work`` and resumes where it stopped)::

    mad-guardrails train coordinator build   --work W              # RAFT items: train / held-out / stress
    mad-guardrails train coordinator sample  --work W --local      # best-of-N teacher answers (or --profile offline)
    mad-guardrails train coordinator sample  --work W --serve --constrained   # ... under the contract grammar (vLLM)
    mad-guardrails train coordinator select  --work W              # verifier filter -> examples.jsonl
    mad-guardrails train coordinator fit     --work W --preset smollm2 --seed 0
    mad-guardrails train coordinator predict --work W --local      # base + adapter answers on held-out items
    mad-guardrails train coordinator eval    --work W [--ship]     # six axes; --ship copies a winning adapter
    mad-guardrails train coordinator run     --work W --local      # all of the above

The same app runs on its own (on a GPU box): ``python -m mad_guardrails.guardrails.commands.train_coordinator run --work W --local``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import typer

from mad_guardrails.core.units import Unit
from mad_guardrails.verifier import Verifier

coordinator_app = typer.Typer(
    name="coordinator", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="RAFT self-distillation of the grounded coordinator (quote-first EVIDENCE/ANSWER), LoRA / QLoRA training "
         "and the six evaluation axes of the seed coordinator, base vs adapter.")

WORK_HELP = "work folder of the run (default $GUARDRAILS_HOME/train/coordinator)"


def register_coordinator(train_app: typer.Typer) -> None:
    """Add ``coordinator`` (this module's commands) to the ``mad-guardrails train`` group."""
    train_app.add_typer(coordinator_app, name="coordinator")


def _work(work: Path | None):
    from mad_guardrails.agents.training.pipeline import Workdir
    from mad_guardrails.core.paths import home

    return Workdir(work or home() / "train" / "coordinator")


def _res(corpus: Path | None, evidence_chars: int | None = None):
    from mad_guardrails.agents.training.pipeline import Resources

    return Resources(corpus, evidence_chars=evidence_chars)


def _echo(obj) -> None:
    from mad_guardrails.core.progress import console

    console.print_json(json.dumps(obj, default=str))


def _backend(profile: str, adapter: Path | None, serve: bool, port: int | None, *, request_timeout: float = 600.0,
             startup_timeout: float = 900.0):
    """(backend, server or None, base model name, adapter model name) for a profile; with ``serve`` a vLLM server is
    started for the command (with ``adapter`` as its ``coordinator`` LoRA module when given). Offline batch work gets
    longer timeouts than interactive checks (``request_timeout``, ``startup_timeout``)."""
    from mad_guardrails.agents.backends import make_backend
    from mad_guardrails.guardrails.config import load_config

    cfg = load_config(profile).llm
    cfg.timeout_s = max(cfg.timeout_s, request_timeout)
    if serve and port is None:
        from mad_guardrails.agents.serve import free_port

        port = free_port()  # never the profile's port: another server may answer there and pose as ours
    if cfg.serve is not None:
        cfg.serve.startup_timeout_s = max(cfg.serve.startup_timeout_s, startup_timeout)
    server = None
    if adapter is not None and cfg.serve is not None:
        cfg.serve.lora_modules = {cfg.coordinator_model or "coordinator": str(adapter.resolve())}
    if port is not None and cfg.serve is not None:
        cfg.serve.port = port
        cfg.base_url = f"http://127.0.0.1:{port}/v1"
    if serve:
        from mad_guardrails.agents.serve import VLLMServer

        if cfg.serve is None:
            from mad_guardrails.core.errors import ConfigError

            raise ConfigError("the profile has no llm.serve section", where=profile, fix="drop --serve")
        server = VLLMServer(cfg.serve).start(wait=True)
    return make_backend(cfg), server, cfg.model, cfg.coordinator_model or "coordinator"


@coordinator_app.command("build")
def build(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    corpus: Path = typer.Option(None, "--corpus", help="corpus folder (default: the ingested corpus, else "
                                "shared/data/corpus)"),
    n_train: int = typer.Option(100, "--n-train", help="training cases"),
    n_heldout: int = typer.Option(30, "--n-heldout", help="held-out cases"),
    heldout_file: Path = typer.Option(None, "--heldout", help="held-out case JSONL (default "
                                      "evals/data/regulatory_cases.jsonl); never used for training"),
    train_sources: str = typer.Option("rules", "--train-sources",
                                      help="comma-separated: 'rules' (policy-pack examples) and/or case JSONL files"),
    k: int = typer.Option(3, "--k", help="distractors per item"),
    p_drop: float = typer.Option(0.2, "--p-drop", help="share of training items without their oracle"),
    evidence_chars: int = typer.Option(1500, "--evidence-chars", help="per evidence block in the prompt"),
    allow_overlap: bool = typer.Option(False, "--allow-overlap", help="keep training cases that share a rule or "
                                       "oracle unit with the held-out cases"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build RAFT items: case + oracle units + K distractors (oracle dropped in a share), train and held-out."""
    from mad_guardrails.agents.training.pipeline import DEFAULT_HELDOUT, BuildSettings, stage_build

    s = BuildSettings(n_train=n_train, n_heldout=n_heldout, heldout_file=str(heldout_file or DEFAULT_HELDOUT),
                      train_sources=[x.strip() for x in train_sources.split(",") if x.strip()], k_distractors=k,
                      p_drop_oracle=p_drop, evidence_chars=evidence_chars, disjoint=not allow_overlap, seed=seed)
    stats = stage_build(_work(work), _res(corpus, evidence_chars), s)
    _echo(stats.model_dump())


def _item_grammar(res, evidence_chars: int, *, local: bool):
    """item -> the contract grammar of what its prompt shows (agents/grammar.py), for ``--constrained``; only a
    served model (vLLM) enforces it, so ``--local`` is refused."""
    from mad_guardrails.agents.grammar import contract_grammar

    if local:
        from mad_guardrails.core.errors import ConfigError

        raise ConfigError("--constrained needs a served model", where="--local",
                          fix="drop --local (use --profile offline --serve: vLLM enforces the grammar)")

    def grammar(it):
        return contract_grammar(it.evidence, [x for x in it.rule_ids if res.rule(x) is not None],
                                evidence_chars=evidence_chars)

    return grammar


def _teacher_messages(items, res):
    """Teacher prompts with a worked example from another training item (see :func:`raft.with_demo`)."""
    import zlib

    from mad_guardrails.agents.training.raft import demo_answer, pick_demos, with_demo

    demos = pick_demos(items)
    if not demos:
        return res.messages

    def messages(it):
        pool = [d for d in demos if d.id != it.id] or demos
        d = pool[zlib.crc32(it.id.encode()) % len(pool)]
        texts = {e.unit_id: e.text for e in d.evidence}
        return with_demo(res.messages(it), res.messages(d), demo_answer(d, texts.get, res.rule))

    return messages


@coordinator_app.command("sample")
def sample(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    n: int = typer.Option(4, "--n", help="candidates per item (best-of-N)"),
    temperature: float = typer.Option(0.8, "--temperature"),
    max_tokens: int = typer.Option(320, "--max-tokens"),
    local: bool = typer.Option(False, "--local", help="sample with transformers in this process (batched; GPU)"),
    model: str = typer.Option("bundled:smollm2", "--model", help="--local: base model"),
    batch_size: int = typer.Option(32, "--batch-size", help="--local: sequences per batch"),
    profile: str = typer.Option("offline", "--profile", "-p", help="served teacher: profile whose llm is used"),
    serve: bool = typer.Option(False, "--serve", help="start the profile's vLLM server for this command"),
    concurrency: int = typer.Option(4, "--concurrency", "-c"),
    evidence_chars: int = typer.Option(1500, "--evidence-chars"),
    demo: bool = typer.Option(False, "--demo", help="teacher prompt with one worked example (context distillation; "
                              "the student is trained on the plain prompt)"),
    start: int = typer.Option(0, "--start-index", help="index of the first sample (to add a second pass, e.g. "
                              "--demo after a plain one)"),
    constrained: bool = typer.Option(False, "--constrained", help="served teacher under the contract grammar: quotes "
                                     "only from sentences shown, decisions only allow/flag/block (vLLM structured "
                                     "outputs; see agents/grammar.py)"),
    limit: int = typer.Option(None, "--limit", help="only the first N training items (a trial run)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Best-of-N teacher answers for the training items (self-distillation: the base model is the teacher)."""
    from mad_guardrails.agents.training.pipeline import load_items
    from mad_guardrails.agents.training.raft import Candidate, read_candidates, sample_candidates
    from mad_guardrails.core.records import append_models

    w = _work(work)
    items = load_items(w, "train")[:limit] if limit else load_items(w, "train")
    res = _res(None, evidence_chars)
    teacher = _teacher_messages(items, res) if demo else res.messages
    grammar = _item_grammar(res, evidence_chars, local=local) if constrained else None
    if local:
        from mad_guardrails.agents.training.generate import LocalGenerator

        done = {(c.item_id, c.i) for c in read_candidates(w.candidates) if c.error is None}
        todo = [it for it in items if any((it.id, i) not in done for i in range(start, start + n))]
        if todo:
            gen = LocalGenerator(model, batch_size=batch_size)
            outs = gen.generate([teacher(it) for it in todo], n=n, temperature=temperature,
                                max_tokens=max_tokens, seed=seed + start, desc=f"teacher best-of-{n}")
            append_models((Candidate(item_id=it.id, i=i, text=o.text, seed=seed, finish_reason=o.finish_reason)
                           for it, os_ in zip(todo, outs) for i, o in enumerate(os_, start) if (it.id, i) not in done),
                          w.candidates)
        cands = read_candidates(w.candidates)
    else:
        backend, server, base, _ = _backend(profile, None, serve, None)

        async def go():
            try:
                return await sample_candidates(items, teacher, backend, base, w.candidates, n=n,
                                               temperature=temperature, max_tokens=max_tokens, seed=seed,
                                               concurrency=concurrency, start=start, grammar=grammar)
            finally:
                await backend.aclose()

        try:
            cands = asyncio.run(go())
        finally:
            if server is not None:
                server.stop()
    _echo({"candidates": len(cands), "errors": sum(c.error is not None for c in cands), "file": str(w.candidates)})


@coordinator_app.command("select")
def select(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    corpus: Path = typer.Option(None, "--corpus"),
    top_k: int = typer.Option(1, "--top-k", help="kept candidates per item (by composite score)"),
    max_examples: int = typer.Option(40, "--max-examples", help="at most this many examples in all"),
    evidence_chars: int = typer.Option(1500, "--evidence-chars"),
    fallback: str = typer.Option(None, "--fallback", help="'extractive': items without a kept candidate get the "
                                 "rule-built extractive answer (when it passes the same verifier filter)"),
    require_decision: bool = typer.Option(False, "--require-decision", help="keep only candidates that also reach "
                                          "the case's labelled decision (when the oracle is shown)"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Score every candidate with the verifier; keep the top-k that pass strict verbatim + citation validity."""
    from mad_guardrails.agents.training.pipeline import load_items
    from mad_guardrails.agents.training.raft import read_candidates, select_examples
    from mad_guardrails.core.records import write_models

    w = _work(work)
    res = _res(corpus, evidence_chars)
    items = load_items(w, "train")
    examples, stats = select_examples(items, read_candidates(w.candidates), _verifier(res), res.messages,
                                      rules=res.rule, top_k=top_k, max_examples=max_examples, fallback=fallback,
                                      require_decision=require_decision, seed=seed)
    write_models(examples, w.examples, atomic=True)
    w.selection.write_text(stats.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _echo(stats.model_dump())


@coordinator_app.command("fit")
def fit(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    model: str = typer.Option("bundled:smollm2", "--model", help="base model (folder, hub id, bundled:smollm2)"),
    base_name: str = typer.Option("HuggingFaceTB/SmolLM2-135M-Instruct", "--base-name",
                                  help="what adapter_config.json records as its base model"),
    preset_name: str = typer.Option("smollm2", "--preset", help="seed (QLoRA r=32, GPU), smollm2, tiny"),
    r: int = typer.Option(None, "--r"),
    alpha: int = typer.Option(None, "--alpha"),
    dropout: float = typer.Option(None, "--dropout"),
    lr: float = typer.Option(None, "--lr"),
    epochs: float = typer.Option(None, "--epochs"),
    grad_accum: int = typer.Option(None, "--grad-accum"),
    batch_size: int = typer.Option(None, "--batch-size"),
    quantization: str = typer.Option(None, "--quantization", help="nf4 (QLoRA, GPU) or none"),
    dtype: str = typer.Option(None, "--dtype", help="float32, bfloat16, float16"),
    max_len: int = typer.Option(None, "--max-len"),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="continue from the latest checkpoint"),
    save_every: int = typer.Option(10, "--save-every", help="checkpoint every N optimizer steps"),
    out: Path = typer.Option(None, "--out", help="adapter folder (default <work>/adapter)"),
) -> None:
    """Train the LoRA (CPU) / QLoRA (GPU, 4-bit NF4) adapter on the selected examples."""
    from mad_guardrails.agents.training.raft import read_examples
    from mad_guardrails.agents.training.trainer import TrainExample, check_vllm_compatible, preset, train_lora

    w = _work(work)
    if not w.examples.is_file():
        from mad_guardrails.core.errors import ConfigError

        raise ConfigError("examples.jsonl not found", where=str(w.root), fix="run `... coordinator select` first")
    p = preset(preset_name, r=r, alpha=alpha, dropout=dropout, lr=lr, epochs=epochs, grad_accum=grad_accum,
               batch_size=batch_size, quantization=quantization, dtype=dtype, max_len=max_len)
    ex = [TrainExample(messages=e.messages, target=e.target) for e in read_examples(w.examples)]
    result = train_lora(ex, model, out or w.adapter, p, seed=seed, device=device, resume=resume,
                        save_every=save_every, base_name=base_name)
    _echo({"adapter": result.adapter_dir, "steps": result.steps, "first_loss": result.first_loss,
           "last_loss": result.last_loss, "seconds": result.seconds, "trainable_params": result.trainable_params,
           "vllm_problems": check_vllm_compatible(result.adapter_dir, max(32, p.r))})


@coordinator_app.command("predict")
def predict(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    labels: str = typer.Option("base,adapter", "--labels", help="which models: base and/or adapter"),
    conditions: str = typer.Option("normal,stress", "--conditions"),
    adapter: Path = typer.Option(None, "--adapter", help="adapter folder (default <work>/adapter)"),
    local: bool = typer.Option(False, "--local", help="transformers + peft in this process (batched)"),
    model: str = typer.Option("bundled:smollm2", "--model", help="--local: base model"),
    batch_size: int = typer.Option(16, "--batch-size"),
    profile: str = typer.Option("offline", "--profile", "-p", help="served: profile (vLLM, LoRA module "
                                "'coordinator')"),
    serve: bool = typer.Option(False, "--serve", help="start the profile's vLLM server with --adapter as its "
                               "coordinator LoRA module"),
    port: int = typer.Option(None, "--port", help="--serve: port of the server (default: a free one)"),
    limit: int = typer.Option(None, "--limit", help="only the first N items per condition"),
    max_tokens: int = typer.Option(320, "--max-tokens"),
    concurrency: int = typer.Option(4, "--concurrency", "-c"),
    evidence_chars: int = typer.Option(1500, "--evidence-chars"),
    suffix: str = typer.Option("", "--suffix", help="label suffix for the prediction files (e.g. '-vllm')"),
    request_timeout: float = typer.Option(600.0, "--request-timeout", help="served: seconds per answer"),
    constrained: bool = typer.Option(False, "--constrained", help="served: answers under the contract grammar (the "
                                     "coordinator's 'grammar' mode)"),
) -> None:
    """Greedy answers of the base model and of the adapter on the held-out items (normal and stress)."""
    from mad_guardrails.agents.training.evaluate import predict_local, predict_with_backend
    from mad_guardrails.agents.training.pipeline import load_items

    w = _work(work)
    res = _res(None, evidence_chars)
    ad = adapter or w.adapter
    want = [x.strip() for x in labels.split(",") if x.strip()]
    conds = [x.strip() for x in conditions.split(",") if x.strip()]
    items = {c: load_items(w, c)[:limit] if limit else load_items(w, c) for c in conds}
    counts = {}
    grammar = _item_grammar(res, evidence_chars, local=local) if constrained else None
    if local:
        from mad_guardrails.agents.training.generate import LocalGenerator

        gen = LocalGenerator(model, batch_size=batch_size)
        for label in want:
            gen.set_adapter(str(ad) if label == "adapter" else None)
            for c in conds:
                preds = predict_local(items[c], res.messages, gen, w.predictions(label + suffix, c),
                                      label=label + suffix, condition=c, max_tokens=max_tokens)
                counts[f"{label}{suffix}/{c}"] = len(preds)
    else:
        backend, server, base, coord = _backend(profile, ad if "adapter" in want else None, serve, port,
                                                request_timeout=request_timeout)

        async def go():  # one event loop for every call: the HTTP client is bound to it
            try:
                for label in want:
                    name = coord if label == "adapter" else base
                    for c in conds:
                        preds = await predict_with_backend(
                            items[c], res.messages, backend, name, w.predictions(label + suffix, c),
                            label=label + suffix, condition=c, max_tokens=max_tokens, concurrency=concurrency,
                            grammar=grammar)
                        counts[f"{label}{suffix}/{c}"] = len(preds)
            finally:
                await backend.aclose()

        try:
            asyncio.run(go())
        finally:
            if server is not None:
                server.stop()
    _echo(counts)


@coordinator_app.command("eval")
def evaluate_cmd(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    corpus: Path = typer.Option(None, "--corpus"),
    labels: str = typer.Option("base,adapter", "--labels", help="prediction labels to compare (base first)"),
    limit: int = typer.Option(None, "--limit", help="only the first N items per condition"),
    ship: bool = typer.Option(False, "--ship", help="copy the adapter into agents/adapters/coordinator-smollm2 "
                              "when it wins (strict verbatim / citation validity up, false refusals not up)"),
    adapter: Path = typer.Option(None, "--adapter", help="adapter to ship (default <work>/adapter)"),
    evidence_chars: int = typer.Option(1500, "--evidence-chars"),
    report_name: str = typer.Option(None, "--report", help="report file stem (default eval_report, or "
                                    "eval_report_<labels> for other labels than base,adapter)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """The six axes of the seed coordinator (strict / content verbatim, citation validity, ROUGE-L >= 0.30, false
    refusals with the oracle present, strict verbatim under stress), one column per model."""
    from mad_guardrails.agents.models import COORDINATOR_ADAPTER_DIR
    from mad_guardrails.agents.training.evaluate import (
        adapter_wins,
        evaluate,
        markdown_table,
        read_predictions,
        write_report,
    )
    from mad_guardrails.agents.training.pipeline import load_items, ship_adapter
    from mad_guardrails.core.progress import console

    w = _work(work)
    res = _res(corpus, evidence_chars)
    want = [x.strip() for x in labels.split(",") if x.strip()]
    items = {c: load_items(w, c) for c in ("normal", "stress")}
    if limit:
        items = {c: v[:limit] for c, v in items.items()}
    preds = {lb: {c: read_predictions(w.predictions(lb, c)) for c in items} for lb in want}
    report = evaluate(items, preds, _verifier(res), res.rule, settings={"work": str(w.root), "labels": want,
                                                                     "limit": limit})
    stem = report_name or ("eval_report" if want == ["base", "adapter"] else "eval_report_" + "_".join(want))
    j, m = write_report(report, w.root, stem)
    if as_json:
        typer.echo(report.model_dump_json(indent=2, exclude={"per_item"}))
    else:
        typer.echo(markdown_table(report))
    if len(want) >= 2:
        wins, why = adapter_wins(report, want[0], want[1])
        console.print(("[green]" if wins else "[yellow]") + "; ".join(why) + "[/]")
        if ship:
            if wins:
                dest = ship_adapter(adapter or w.adapter, COORDINATOR_ADAPTER_DIR, report=j)
                console.print(f"shipped the adapter to {dest}")
            else:
                console.print("not shipped: the adapter does not win")
    console.print(f"report: {j} / {m}")


@coordinator_app.command("run")
def run_all(
    work: Path = typer.Option(None, "--work", "-w", help=WORK_HELP),
    corpus: Path = typer.Option(None, "--corpus"),
    skip_build: bool = typer.Option(False, "--skip-build", help="use the items already in --work"),
    n_train: int = typer.Option(100, "--n-train"),
    n_heldout: int = typer.Option(30, "--n-heldout"),
    n: int = typer.Option(4, "--n", help="best-of-N"),
    demo_n: int = typer.Option(0, "--demo-n", help="N more samples per item with a teacher demonstration"),
    max_examples: int = typer.Option(40, "--max-examples"),
    preset_name: str = typer.Option("smollm2", "--preset"),
    model: str = typer.Option("bundled:smollm2", "--model"),
    local: bool = typer.Option(True, "--local/--served", help="generation with transformers here (--local) or "
                               "through the profile's served backend"),
    profile: str = typer.Option("offline", "--profile", "-p"),
    serve: bool = typer.Option(False, "--serve"),
    batch_size: int = typer.Option(32, "--batch-size"),
    max_tokens: int = typer.Option(320, "--max-tokens"),
    device: str = typer.Option("auto", "--device"),
    seed: int = typer.Option(0, "--seed"),
    constrained: bool = typer.Option(False, "--constrained", help="served teacher under the contract grammar"),
    require_decision: bool = typer.Option(False, "--require-decision", help="keep only candidates that reach the "
                                          "labelled decision"),
    ship: bool = typer.Option(False, "--ship"),
) -> None:
    """All stages: build, sample (best-of-N), select, fit, predict (base + adapter), eval."""
    if not skip_build:
        build(work=work, corpus=corpus, n_train=n_train, n_heldout=n_heldout, heldout_file=None,
              train_sources="rules", k=3, p_drop=0.2, evidence_chars=1500, allow_overlap=False, seed=seed)
    sample(work=work, n=n, temperature=0.8, max_tokens=max_tokens, local=local, model=model, batch_size=batch_size,
           profile=profile, serve=serve, concurrency=4, evidence_chars=1500, demo=False, start=0,
           constrained=constrained, limit=None, seed=seed)
    if demo_n:
        sample(work=work, n=demo_n, temperature=0.8, max_tokens=max_tokens, local=local, model=model,
               batch_size=batch_size, profile=profile, serve=serve, concurrency=4, evidence_chars=1500, demo=True,
               start=n, constrained=constrained, limit=None, seed=seed)
    select(work=work, corpus=corpus, top_k=1, max_examples=max_examples, evidence_chars=1500, fallback=None,
           require_decision=require_decision, seed=seed)
    from mad_guardrails.agents.training.raft import read_examples

    labels = "base,adapter"
    if not read_examples(_work(work).examples):
        from mad_guardrails.core.progress import console

        console.print("[yellow]the verifier kept no candidate: nothing to train on; evaluating the base model only[/]")
        labels = "base"
    else:
        fit(work=work, model=model, base_name="HuggingFaceTB/SmolLM2-135M-Instruct", preset_name=preset_name, r=None,
            alpha=None, dropout=None, lr=None, epochs=None, grad_accum=None, batch_size=None, quantization=None,
            dtype=None, max_len=None, device=device, seed=seed, resume=True, save_every=10, out=None)
    predict(work=work, labels=labels, conditions="normal,stress", adapter=None, local=local, model=model,
            batch_size=max(1, batch_size // 2), profile=profile, serve=serve, port=None, limit=None,
            max_tokens=max_tokens, concurrency=4, evidence_chars=1500, suffix="", request_timeout=600.0,
            constrained=False)
    evaluate_cmd(work=work, corpus=corpus, labels=labels, limit=None, ship=ship, adapter=None,
                 evidence_chars=1500, report_name=None, as_json=False)


def corpus_verifier(unit: Callable[[str], Unit | None], rule_text: Callable[[str], str | None]) -> Verifier:
    """A :class:`Verifier` over a corpus (``unit(id) -> Unit``) and the policy rules (``policy:<rule_id>`` texts)."""

    def lookup(uid: str) -> str | None:
        if uid.startswith("policy:"):
            return rule_text(uid.split(":", 1)[1])
        u = unit(uid)
        return u.text if u is not None else None

    return Verifier(lookup=lookup, known=lambda uid: lookup(uid) is not None)


def _verifier(res) -> Verifier:
    """The project's verifier over the run's corpus and policy rules."""
    from mad_guardrails.policies.loader import rule_text

    def text(rule_id: str) -> str | None:
        r = res.policy_set.get(rule_id)
        return None if r is None else rule_text(r)

    return corpus_verifier(res.corpus.get, text)


if __name__ == "__main__":
    coordinator_app()
