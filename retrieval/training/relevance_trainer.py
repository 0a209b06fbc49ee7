"""Train the binary relevance head (SEEDS.md §5 in miniature) and compare it with the dense-threshold filter.

**Data** (:func:`build_relevance_data`), from the generated pairs (:mod:`.generate`, split by unit) and our own
off-topic queries (``offtopic_train.yaml``; the held-out ``evals/data/offtopic_*.jsonl`` are never used):

* positives: (query, its positive passage) → 1;
* same-domain near misses: (query, a hard negative: same act, similar wording, wrong unit) → 0;
* cross-domain: (query, a passage of another act) → 0;
* off-topic: each off-topic query with the passages the base retriever would hand the filter for it (its top
  ``offtopic_k`` dense hits) and some random ones → 0, **weighted above positives** (``offtopic_weight``), so refusing
  out-of-domain questions is a first-class objective.

**Model**: the bundled MiniLM read as a cross-encoder (``[CLS] query [SEP] passage``), a one-logit classifier on
the pooled output, LoRA (r=16) on attention + MLP; only the adapter + classifier + pooler are saved (a few MB):
``<out>/head`` loads with :class:`mad_guardrails.retrieval.relevance_head.RelevanceHead`. Weighted BCE, AdamW, linear warmup/decay,
checkpoints every ``save_steps`` with ``resume``, a rich progress bar, seeded.

**Comparison** (:func:`compare_filters`): pair accuracy on held-out generated pairs (test units only), and through
the real retriever the cross-domain refusal rate on ``evals/data/offtopic_queries.jsonl`` and the false abstention
rate on the hand-written regulatory queries, for the calibrated dense threshold and for the head.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mad_guardrails.core.errors import InputError
from mad_guardrails.core.records import read_models, write_models, write_report
from mad_guardrails.core.yamlio import resolve_preset
from mad_guardrails.retrieval.relevance_head import HEAD_CONFIG, pair_text
from mad_guardrails.retrieval.training.pairs import PassageRef, TrainPair


class RelevanceTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = "bundled:all-MiniLM-L6-v2"
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    lr: float = 3e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"])
    max_positives: int | None = Field(default=None, description="random subset of the positive pairs")
    near_miss_per_pair: int = 1
    cross_domain_per_pair: float = Field(default=0.5, description="expected cross-act negatives per positive")
    offtopic_k: int = Field(default=8, description="top dense hits paired with each off-topic query")
    offtopic_random: int = 4
    positive_weight: float = 1.0
    near_miss_weight: float = 1.0
    offtopic_weight: float = 2.0
    seed: int = 42
    save_steps: int = 200
    logging_steps: int = 10
    device: str = "auto"
    precision: str = "auto"


PRESETS: dict[str, dict[str, Any]] = {
    "cpu-small": dict(epochs=1, batch_size=16, max_positives=1500, max_length=192, save_steps=25, logging_steps=5),
    "gpu": dict(epochs=2, batch_size=64, max_positives=None, max_length=256, save_steps=200, logging_steps=20),
}


def resolve_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> RelevanceTrainConfig:
    return resolve_preset(RelevanceTrainConfig, PRESETS, preset, overrides)


class RelExample(BaseModel):
    query: str
    passage: str
    label: int
    weight: float
    kind: str = Field(description="positive | near_miss | cross_domain | offtopic")
    split: str = "train"
    pid: str = Field(default="", description="passage id (for the dense score of the pair)")


def save_examples(rows: Sequence[RelExample], path: str | Path) -> Path:
    return write_models(rows, path)


def load_examples(path: str | Path) -> list[RelExample]:
    return read_models(path, RelExample,
                       missing_fix="write it with `mad-guardrails train relevance --prepare-only --out DIR`")


def build_relevance_data(
    pairs: Sequence[TrainPair],
    refs: Sequence[PassageRef],
    offtopic: Sequence[str],
    offtopic_hits: Sequence[Sequence[int]],
    cfg: RelevanceTrainConfig,
) -> list[RelExample]:
    """Training (and held-out) examples, see the module docstring. ``offtopic_hits[i]`` are the passage rows the
    base retriever returns for ``offtopic[i]``. Test-split pairs become held-out examples (``split='test'``)."""
    rng = random.Random(cfg.seed)
    by_pid = {r.pid: r for r in refs}
    train_rows = [i for i, r in enumerate(refs)]
    test_keys = {p.key for p in pairs if p.split == "test"}
    train_refs = [i for i in train_rows if refs[i].key not in test_keys]
    out: list[RelExample] = []
    pos = [p for p in pairs if p.split == "train"]
    if cfg.max_positives is not None and len(pos) > cfg.max_positives:
        pos = rng.sample(pos, cfg.max_positives)
    for split, rows in (("train", pos), ("test", [p for p in pairs if p.split == "test"])):
        for p in rows:
            ref = by_pid.get(p.pid)
            if ref is None:
                continue
            out.append(RelExample(query=p.query, passage=pair_text(ref.heading, ref.text), label=1,
                                  weight=cfg.positive_weight, kind="positive", split=split, pid=ref.pid))
            for pid in p.negative_pids[: cfg.near_miss_per_pair]:
                n = by_pid.get(pid)
                if n is not None:
                    out.append(RelExample(query=p.query, passage=pair_text(n.heading, n.text), label=0,
                                          weight=cfg.near_miss_weight, kind="near_miss", split=split, pid=n.pid))
            k = int(cfg.cross_domain_per_pair) + (rng.random() < cfg.cross_domain_per_pair % 1)
            pool = train_refs if split == "train" else train_rows
            for _ in range(k):
                for _try in range(10):
                    r = refs[rng.choice(pool)]
                    if r.doc != p.doc:
                        out.append(RelExample(query=p.query, passage=pair_text(r.heading, r.text), label=0,
                                              weight=cfg.near_miss_weight, kind="cross_domain", split=split,
                                              pid=r.pid))
                        break
    for q, hits in zip(offtopic, offtopic_hits):
        rows = [h for h in hits[: cfg.offtopic_k] if refs[h].key not in test_keys]
        rows += rng.sample(train_refs, min(cfg.offtopic_random, len(train_refs)))
        for h in rows:
            out.append(RelExample(query=q, passage=pair_text(refs[h].heading, refs[h].text), label=0,
                                  weight=cfg.offtopic_weight, kind="offtopic", split="train", pid=refs[h].pid))
    return out


# --------------------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------------------


class RelTrainResult(BaseModel):
    head_dir: str
    n_train: int
    steps: int
    losses: list[tuple[int, float]]
    train_seconds: float
    config: dict[str, Any]
    resumed_from: str | None = None


def _save_head(model, out: Path, cfg: RelevanceTrainConfig, extra: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    c = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
    c["base_model_name_or_path"] = cfg.base_model
    (out / "adapter_config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (out / "README.md").unlink(missing_ok=True)
    (out / HEAD_CONFIG).write_text(json.dumps({
        "base_model": cfg.base_model, "max_length": cfg.max_length, "labels": {"0": "not relevant", "1": "relevant"},
        "decision": "P(relevant) >= 0.5", "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": cfg.model_dump(), **extra,
    }, indent=1) + "\n", encoding="utf-8")


def train_relevance(examples: Sequence[RelExample], cfg: RelevanceTrainConfig, out_dir: str | Path, *,
                    resume: bool = False, progress: bool = True) -> RelTrainResult:
    """Train on the ``train`` examples; writes ``<out>/head`` and checkpoints ``<out>/checkpoints/step-N``."""
    import torch
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model
    from transformers import get_linear_schedule_with_warmup, set_seed

    from mad_guardrails.core.progress import make_progress
    from mad_guardrails.retrieval.embedder import _auto_device, resolve_model
    from mad_guardrails.retrieval.relevance_head import load_base_classifier
    from mad_guardrails.retrieval.training.embedder_trainer import lora_target_regex

    out = Path(out_dir)
    ckpt_root = out / "checkpoints"
    device = _auto_device(cfg.device)
    set_seed(cfg.seed)
    rows = [e for e in examples if e.split == "train"]
    if len({e.label for e in rows}) < 2:
        raise InputError("relevance training needs both relevant and not-relevant examples", where="training data",
                         fix="generate pairs with hard negatives and include the off-topic queries")
    base = resolve_model(cfg.base_model, what="relevance base model")
    model, tok = load_base_classifier(base.path)
    lcfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                      lora_dropout=cfg.lora_dropout, target_modules=lora_target_regex(cfg.lora_targets),
                      modules_to_save=["classifier", "pooler"], bias="none")
    resume_from = None
    if resume:
        cps = sorted((p for p in ckpt_root.glob("step-*") if (p / "state.pt").exists()),
                     key=lambda p: int(p.name.split("-")[1]))
        resume_from = cps[-1] if cps else None
    if resume_from is not None:
        model = PeftModel.from_pretrained(model, str(resume_from), is_trainable=True)
    else:
        model = get_peft_model(model, lcfg)
    model.to(device)

    per_epoch = math.ceil(len(rows) / cfg.batch_size)
    total = cfg.max_steps if cfg.max_steps > 0 else max(1, int(math.ceil(per_epoch * cfg.epochs)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    step = 0
    losses: list[tuple[int, float]] = []
    if resume_from is not None:
        st = torch.load(resume_from / "state.pt", map_location="cpu", weights_only=False)
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        step, losses = int(st["step"]), [tuple(x) for x in st["losses"]]
    # the data order is a function of (seed, epoch): a resumed run sees the same batches as an uninterrupted one
    use_amp = device.startswith("cuda")
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    model.train()
    t0 = time.perf_counter()
    run = 0.0
    n_run = 0
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("training relevance head", total=total, completed=step)
        while step < total:
            epoch = step // per_epoch
            perm = np.random.default_rng(cfg.seed + epoch).permutation(len(rows))
            b = step % per_epoch
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            batch = [rows[i] for i in idx]
            enc = tok([e.query for e in batch], [e.passage for e in batch], truncation="only_second",
                      max_length=cfg.max_length, padding=True, return_tensors="pt").to(device)
            y = torch.tensor([float(e.label) for e in batch], device=device)
            w = torch.tensor([e.weight for e in batch], device=device)
            with torch.autocast(device_type="cuda", dtype=amp_dtype, enabled=use_amp):
                logits = model(**enc).logits.float().reshape(-1)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).sum() / w.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            run += float(loss.detach())
            n_run += 1
            if step % cfg.logging_steps == 0 or step == total:
                losses.append((step, round(run / n_run, 5)))
                bar.update(task, description=f"training relevance head (loss {run / n_run:.4f})")
                run, n_run = 0.0, 0
            bar.update(task, completed=step)
            if step % cfg.save_steps == 0 and step < total:
                cp = ckpt_root / f"step-{step}"
                model.save_pretrained(str(cp))
                torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                            "losses": losses}, cp / "state.pt")
    train_s = time.perf_counter() - t0
    model.eval()
    head = out / "head"
    _save_head(model, head, cfg, {"n_train": len(rows), "steps": step,
                                  "final_loss": losses[-1][1] if losses else None})
    res = RelTrainResult(head_dir=str(head), n_train=len(rows), steps=step, losses=losses,
                         train_seconds=round(train_s, 1), config={**cfg.model_dump(), "device": device},
                         resumed_from=str(resume_from) if resume_from else None)
    (out / "train_result.json").write_text(res.model_dump_json(indent=1) + "\n", encoding="utf-8")
    return res


# --------------------------------------------------------------------------------------------------------------------
# comparison with the dense-threshold filter
# --------------------------------------------------------------------------------------------------------------------


def pair_accuracy(examples: Sequence[RelExample], probs: Sequence[float]) -> dict[str, Any]:
    """Accuracy overall and per example kind at the fixed 0.5 decision."""
    by: dict[str, list[bool]] = {}
    for e, p in zip(examples, probs):
        by.setdefault(e.kind, []).append((p >= 0.5) == bool(e.label))
    allv = [x for v in by.values() for x in v]
    return {"n": len(allv), "accuracy": round(sum(allv) / max(len(allv), 1), 4),
            "by_kind": {k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)} for k, v in sorted(by.items())}}


def compare_filters(
    head_dir: str | Path,
    refs: Sequence[PassageRef],
    heldout: Sequence[RelExample],
    *,
    base: str = "bundled:all-MiniLM-L6-v2",
    adapter: str | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    p_vecs: np.ndarray | None = None,
    max_pairs: int | None = 800,
) -> dict[str, Any]:
    """Threshold filter vs the head on (1) held-out generated pairs, (2) the real retriever: refusal on
    ``evals/data/offtopic_queries.jsonl`` (+ ``offtopic_generic.jsonl``) and false abstention on the hand-written
    regulatory queries (splits all / test; the threshold is calibrated on the dev split)."""
    import tempfile

    from mad_guardrails.retrieval.config import RetrievalConfig
    from mad_guardrails.retrieval.embedder import Embedder
    from mad_guardrails.retrieval.index import RegIndex
    from mad_guardrails.retrieval.relevance import (
        IN_DOMAIN_FILE,
        OFF_TOPIC_FILES,
        RelevanceFilter,
        ThresholdScorer,
        calibrate_index,
        is_dev_query,
        query_data_dir,
        read_query_rows,
    )
    from mad_guardrails.retrieval.relevance_head import HeadScorer, RelevanceHead
    from mad_guardrails.retrieval.retriever import Retriever
    from mad_guardrails.retrieval.training.evaluate import _CachedPassages

    t0 = time.perf_counter()
    emb = Embedder.load(base, adapter=adapter) if adapter else Embedder.load(base)
    if p_vecs is None:
        p_vecs = emb.encode_passages([r.embed_text for r in refs], progress=progress)
    if max_pairs is not None and len(heldout) > max_pairs:
        heldout = random.Random(0).sample(list(heldout), max_pairs)
    head = RelevanceHead.load(str(head_dir))
    report: dict[str, Any] = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              "embedder": emb.describe(), "head": str(head_dir)}
    with tempfile.TemporaryDirectory(prefix="relcmp-") as tmp:
        rows = [{"unit_id": r.unit_id, "passage_id": r.pid, "doc": r.doc, "kind": r.kind, "heading": r.heading,
                 "text": r.text, "embed_text": r.embed_text} for r in refs]
        idx = RegIndex.build(rows, _CachedPassages(emb, [r.embed_text for r in refs], p_vecs), Path(tmp) / "i",
                             "flat", use_gpu="never", progress=False)
        cal = calibrate_index(idx, emb)
        idx.set_relevance(cal)
        thr = RelevanceFilter(ThresholdScorer(cal))
        hf = RelevanceFilter(HeadScorer(head=head))
        report["threshold"] = thr.describe()

        # (1) held-out generated pairs: threshold on the pair's dense cosine vs the head
        if heldout:
            qv = emb.encode_queries([e.query for e in heldout])
            row = {r.pid: i for i, r in enumerate(refs)}
            if all(e.pid in row for e in heldout):
                pv = p_vecs[[row[e.pid] for e in heldout]]
            else:
                pv = emb.encode_passages([e.passage for e in heldout], progress=False)
            cos = (qv * pv).sum(axis=1)
            thr_p = ThresholdScorer(cal).score_values(cos.tolist())
            head_p = head.proba([(e.query, e.passage) for e in heldout]).tolist()
            report["pairs"] = {"threshold": pair_accuracy(heldout, thr_p), "head": pair_accuracy(heldout, head_p)}

        # (2) the real retriever: abstention decisions on the query sets
        d = query_data_dir()
        reg = read_query_rows(d / IN_DOMAIN_FILE) if (d / IN_DOMAIN_FILE).exists() else []
        offs = {name: read_query_rows(d / name) for name in OFF_TOPIC_FILES if (d / name).exists()}
        cfg = RetrievalConfig(embedder=emb.config, use_gpu="never")
        unfiltered = Retriever(idx, emb, cfg, relevance=None)
        docs = sorted({r.doc for r in refs})
        report["queries"] = {}
        for split in ("all", "test"):
            def keep(rid: str) -> bool:
                return split == "all" or not is_dev_query(rid)

            regq = [r["query"] for r in reg if keep(r["id"])]
            sets = {"regulatory": regq, **{n.replace(".jsonl", ""): [r["query"] for r in rs if keep(r["id"])]
                                           for n, rs in offs.items()}}
            res: dict[str, Any] = {}
            for set_name, qs in sets.items():
                if not qs:
                    continue
                hits = unfiltered.search_many(qs, 8, docs=docs)
                for fname, filt in (("threshold", thr), ("head", hf)):
                    abst = sum(not filt.is_relevant(filt.score(q, h.evidence)) for q, h in zip(qs, hits))
                    res.setdefault(fname, {})[set_name] = {"n": len(qs), "abstained": abst,
                                                           "rate": round(abst / len(qs), 4)}
            for fname in ("threshold", "head"):
                r = res.get(fname, {})
                fa = r.get("regulatory", {}).get("rate", 0.0)
                ref_rates = [v["rate"] for k, v in r.items() if k != "regulatory"]
                r["false_abstention"] = fa
                r["offtopic_refusal"] = r.get("offtopic_queries", {}).get("rate")
                r["balanced_accuracy"] = round(0.5 * ((1 - fa) + (sum(ref_rates) / len(ref_rates))), 4) \
                    if ref_rates else None
            report["queries"][split] = res
    t = report["queries"]["all"]
    th, hd = t["threshold"], t["head"]
    wins = (hd["balanced_accuracy"] is not None and th["balanced_accuracy"] is not None
            and hd["balanced_accuracy"] > th["balanced_accuracy"]
            and hd["false_abstention"] <= th["false_abstention"] + 0.02)
    report["verdict"] = {"head_wins": bool(wins), "rule": "balanced accuracy (1 - false abstention on regulatory "
                         "queries, refusal on off-topic sets) higher than the threshold's, with false abstention at "
                         "most 2 points higher; split all"}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    if out_dir is not None:
        write_report(report, relevance_markdown(report), out_dir, "relevance_compare")
    return report


def relevance_markdown(r: dict[str, Any]) -> str:
    L = [f"# Relevance filter: dense threshold vs trained head ({r['created']})", "",
         f"- embedder: {r['embedder']}", f"- threshold: {r['threshold']}", f"- head: `{r['head']}`", ""]
    if "pairs" in r:
        L += ["## Held-out generated pairs (test units)", "", "| filter | kind | n | accuracy |", "|---|---|---:|---:|"]
        for f, v in r["pairs"].items():
            L.append(f"| {f} | all | {v['n']} | {v['accuracy']:.3f} |")
            for k, kv in v["by_kind"].items():
                L.append(f"| {f} | {k} | {kv['n']} | {kv['accuracy']:.3f} |")
    L += ["", "## Through the retriever (top 8 hybrid hits per query; abstain when no hit passes)", "",
          "| split | filter | set | n | abstained | rate |", "|---|---|---|---:|---:|---:|"]
    for split, res in r["queries"].items():
        for f, sets in res.items():
            for s, v in sets.items():
                if isinstance(v, dict):
                    L.append(f"| {split} | {f} | {s} | {v['n']} | {v['abstained']} | {v['rate']:.3f} |")
            L.append(f"| {split} | {f} | **balanced accuracy** | | | {sets.get('balanced_accuracy')} |")
    L += ["", f"**Verdict**: {'the head wins' if r['verdict']['head_wins'] else 'the threshold stays'} "
          f"({r['verdict']['rule']}).", ""]
    return "\n".join(L)


def prepare_relevance_examples(pairs: Sequence[TrainPair], refs: Sequence[PassageRef], p_vecs: np.ndarray,
                               cfg: RelevanceTrainConfig, *, base: str = "bundled:all-MiniLM-L6-v2",
                               offtopic: Sequence[str] | None = None) -> list[RelExample]:
    """Embed our off-topic training queries with the base model, take their top dense hits, build the examples."""
    from mad_guardrails.retrieval.embedder import Embedder
    from mad_guardrails.retrieval.training.generate import offtopic_train_queries
    from mad_guardrails.retrieval.training.negatives import top_rows

    qs = list(offtopic) if offtopic is not None else offtopic_train_queries()
    hits: list[list[int]] = [[] for _ in qs]
    if qs:
        emb = Embedder.load(base)
        _, rows = top_rows(emb.encode_queries(qs), p_vecs, max(cfg.offtopic_k, 1))
        hits = [[int(r) for r in rr] for rr in rows]
    return build_relevance_data(pairs, refs, qs, hits, cfg)
