"""Fine-tune the embedder on (query, positive, hard negative) triplets: SentenceTransformerTrainer with
MultipleNegativesRankingLoss wrapped in MatryoshkaLoss, the NO_DUPLICATES batch sampler and (by default) a LoRA
adapter via peft, saved on its own (a few MB) or merged into a full model.

Presets (``PRESETS``; every field can be overridden):

* ``seed`` -- SEEDS.md §1, the seed guardrails embedder: LoRA r=16 / alpha=32 / dropout 0.05 on attention + MLP
  (for BERT-style MiniLM: ``query``/``key``/``value``/``dense``), 3 epochs, batch 4 × gradient accumulation 4,
  lr 1e-4 cosine, warmup 0.1, one hard negative, max 512 tokens; Matryoshka dims 384/256/128/64 (MiniLM's).
* ``cpu-small`` -- what a 2-core CPU finishes in about a quarter of an hour: ≤ 3,000 pairs, 1 epoch, batch 32,
  lr 2e-4, max 256 tokens.
* ``gpu`` -- every generated pair, 3 epochs, batch 64 (more in-batch negatives), lr 2e-4, max 256 tokens.

Checkpoints go to ``<out>/checkpoints`` every ``save_steps``; ``resume=True`` continues from the latest one.
``seed`` fixes data order, LoRA init and dropout (reproducible on one machine and library stack).

    >>> cfg = resolve_config("seed", {"epochs": 1})
    >>> (cfg.batch_size, cfg.grad_accum, cfg.lr, cfg.lora_r, cfg.epochs, cfg.matryoshka_dims)
    (4, 4, 0.0001, 16, 1.0, [384, 256, 128, 64])
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mad_guardrails.core.errors import ConfigError, InputError
from mad_guardrails.core.yamlio import resolve_preset
from mad_guardrails.retrieval.training.pairs import TrainPair


class EmbedderTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(default="bundled:all-MiniLM-L6-v2", description="model spec as in mad_guardrails.retrieval.embedder")
    epochs: float = 1.0
    max_steps: int = Field(default=-1, description="> 0 stops after that many optimizer steps (tests, smoke runs)")
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 2e-4
    scheduler: str = "cosine"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int = 256
    matryoshka_dims: list[int] = Field(default_factory=lambda: [384, 256, 128, 64])
    hard_negatives: int = Field(default=1, ge=0, le=3, description="hard negatives per pair in the loss")
    max_pairs: int | None = Field(default=None, description="random subset of the training pairs")
    lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = Field(default_factory=lambda: ["query", "key", "value", "dense"],
                                    description="module-name suffixes (BERT: query/key/value/dense; Qwen3: "
                                    "q_proj/k_proj/v_proj/o_proj/gate_proj/up_proj/down_proj)")
    merge: bool = Field(default=False, description="also write the adapter merged into a full model (large)")
    init_adapter: str | None = Field(default=None, description="continue training this LoRA adapter folder (or "
                                     "'bundled') instead of a fresh one; its rank and targets replace lora_r / "
                                     "lora_targets")
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    save_steps: int = 200
    save_total_limit: int = 2
    logging_steps: int = 10
    device: str = "auto"


PRESETS: dict[str, dict[str, Any]] = {
    "seed": dict(epochs=3, batch_size=4, grad_accum=4, lr=1e-4, scheduler="cosine", warmup_ratio=0.1,
                 max_seq_length=512, hard_negatives=1, lora=True, lora_r=16, lora_alpha=32, lora_dropout=0.05,
                 max_pairs=None),
    "cpu-small": dict(epochs=1, batch_size=32, grad_accum=1, lr=2e-4, max_seq_length=256, hard_negatives=1,
                      max_pairs=3000, save_steps=25, logging_steps=5),
    "gpu": dict(epochs=3, batch_size=64, grad_accum=1, lr=2e-4, max_seq_length=256, hard_negatives=1,
                max_pairs=None, save_steps=200, logging_steps=20),
}


def resolve_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> EmbedderTrainConfig:
    """A preset's values with ``overrides`` (None values ignored) on top."""
    return resolve_preset(EmbedderTrainConfig, PRESETS, preset, overrides)


class TrainResult(BaseModel):
    adapter_dir: str | None
    merged_dir: str | None = None
    n_train: int
    steps: int
    losses: list[tuple[int, float]] = Field(description="(step, training loss) as logged")
    train_seconds: float
    config: dict[str, Any]
    resumed_from: str | None = None


# --------------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------------


def _st_imports():
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    try:
        from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss
    except ImportError:  # pragma: no cover - older layout
        from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss
    try:
        from sentence_transformers.base.sampler import BatchSamplers
    except ImportError:  # pragma: no cover - older layout
        from sentence_transformers.training_args import BatchSamplers
    return (SentenceTransformerTrainer, SentenceTransformerTrainingArguments, MatryoshkaLoss,
            MultipleNegativesRankingLoss, BatchSamplers)


def require_training_deps() -> None:
    missing = []
    for mod in ("datasets", "peft", "accelerate"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ConfigError(f"training needs {', '.join(missing)}", where="python environment",
                          fix="pip install 'mad-guardrails[train]' (or: pip install datasets peft accelerate)")


def lora_target_regex(targets: Sequence[str]) -> str:
    """A peft ``target_modules`` regex: modules whose name ends in one of ``targets``, never the pooler.

    >>> import re; rx = lora_target_regex(["query", "dense"])
    >>> bool(re.fullmatch(rx, "encoder.layer.0.attention.self.query")), bool(re.fullmatch(rx, "pooler.dense"))
    (True, False)
    """
    alts = "|".join(sorted({t.strip() for t in targets if t.strip()}))
    return rf"^(?!.*pooler).*\.({alts})$"


def _precision_kwargs(precision: str, device: str) -> dict[str, bool]:
    import torch

    if device.startswith("cuda") and precision == "auto":
        return {"bf16": True} if torch.cuda.is_bf16_supported() else {"fp16": True}
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def latest_checkpoint(directory: Path) -> Path | None:
    cps = [p for p in directory.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(cps, key=lambda p: int(p.name.split("-")[-1])) if cps else None


def make_rich_callback(desc: str):
    """A transformers TrainerCallback driving a :func:`mad_guardrails.core.progress.make_progress` bar (steps, ETA, loss)."""
    from transformers import TrainerCallback

    from mad_guardrails.core.progress import make_progress

    class RichProgress(TrainerCallback):
        def __init__(self):
            self.prog = None
            self.task = None

        def on_train_begin(self, args, state, control, **kw):
            self.prog = make_progress()
            self.prog.start()
            self.task = self.prog.add_task(desc, total=state.max_steps, completed=state.global_step)

        def on_step_end(self, args, state, control, **kw):
            if self.prog is not None:
                self.prog.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if self.prog is not None and logs and "loss" in logs:
                self.prog.update(self.task, description=f"{desc} (loss {float(logs['loss']):.4f})")

        def on_train_end(self, args, state, control, **kw):
            if self.prog is not None:
                self.prog.stop()
                self.prog = None

    return RichProgress()


def loss_history(trainer) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h["loss"])) for h in trainer.state.log_history if "loss" in h and "step" in h]


def training_rows(pairs: Sequence[TrainPair], n_neg: int) -> dict[str, list[str]]:
    """Columns anchor / positive / negative_1..n of the train split (pairs with fewer negatives are dropped)."""
    rows = [p for p in pairs if p.split == "train" and len(p.negatives) >= n_neg]
    cols: dict[str, list[str]] = {"anchor": [p.query for p in rows], "positive": [p.positive for p in rows]}
    for k in range(n_neg):
        cols[f"negative_{k + 1}"] = [p.negatives[k] for p in rows]
    return cols


def _load_base(cfg: EmbedderTrainConfig, device: str):
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    from mad_guardrails.retrieval.embedder import resolve_model

    resolved = resolve_model(cfg.base_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = SentenceTransformer(str(resolved.path), device=device, local_files_only=True)
    model.to(torch.float32)  # train in fp32 (mixed precision via autocast), also from fp16-saved weights
    model.max_seq_length = cfg.max_seq_length
    return model, resolved


# --------------------------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------------------------


def train_embedder(
    pairs: Sequence[TrainPair],
    cfg: EmbedderTrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train on the ``train`` split of ``pairs``; writes ``<out>/adapter`` (LoRA) or ``<out>/model`` (full
    fine-tune), ``<out>/merged`` when ``cfg.merge``, checkpoints under ``<out>/checkpoints`` and
    ``<out>/train_result.json``."""
    require_training_deps()
    import random

    import numpy as np
    import torch
    from datasets import Dataset
    from transformers import set_seed

    from mad_guardrails.retrieval.embedder import _auto_device

    (Trainer, Args, MatryoshkaLoss, MNRL, BatchSamplers) = _st_imports()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_dir = out / "checkpoints"
    device = _auto_device(cfg.device)
    set_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    cols = training_rows(pairs, cfg.hard_negatives)
    if cfg.max_pairs is not None and len(cols["anchor"]) > cfg.max_pairs:
        keep = sorted(random.Random(cfg.seed).sample(range(len(cols["anchor"])), cfg.max_pairs))
        cols = {k: [v[i] for i in keep] for k, v in cols.items()}
    n_train = len(cols["anchor"])
    if n_train < 2:
        raise InputError(f"only {n_train} training pairs with {cfg.hard_negatives} hard negative(s)",
                         where="training data", fix="generate more pairs, or lower --hard-negatives")
    dataset = Dataset.from_dict(cols)

    model, resolved = _load_base(cfg, device)
    get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    full_dim = int(get_dim())
    dims = sorted({d for d in cfg.matryoshka_dims if d <= full_dim} | {full_dim}, reverse=True)
    if cfg.lora and cfg.init_adapter:
        from mad_guardrails.retrieval.embedder import resolve_adapter

        start = resolve_adapter(cfg.init_adapter)
        if start is None:
            raise ConfigError("init_adapter names no adapter", where="EmbedderTrainConfig.init_adapter",
                              fix="point at a peft adapter folder or 'bundled' (with a trained adapter installed)")
        model.load_adapter(str(start), is_trainable=True)
    elif cfg.lora:
        from peft import LoraConfig, TaskType

        model.add_adapter(LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout, target_modules=lora_target_regex(cfg.lora_targets), bias="none",
        ))
    loss = MatryoshkaLoss(model, MNRL(model), matryoshka_dims=dims)

    args_kw: dict[str, Any] = dict(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, lr_scheduler_type=cfg.scheduler, weight_decay=cfg.weight_decay,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="steps", save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit, logging_steps=cfg.logging_steps, seed=cfg.seed, data_seed=cfg.seed,
        report_to="none", disable_tqdm=True, dataloader_num_workers=0,
        use_cpu=not device.startswith("cuda"), **_precision_kwargs(cfg.precision, device),
    )
    fields = {f.name for f in dataclasses.fields(Args)}
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:  # a float warmup_steps < 1 is a ratio
        args_kw["warmup_steps"] = cfg.warmup_ratio
    else:  # pragma: no cover - transformers 4.x
        args_kw["warmup_ratio"] = cfg.warmup_ratio
    args = Args(**{k: v for k, v in args_kw.items() if k in fields})

    callbacks = [make_rich_callback("training embedder")] if progress else []
    trainer = Trainer(model=model, args=args, train_dataset=dataset, loss=loss, callbacks=callbacks)
    resume_from = latest_checkpoint(ckpt_dir) if resume else None
    if resume and resume_from is None:
        import logging

        logging.getLogger(__name__).warning("--resume: no checkpoint in %s, starting from scratch", ckpt_dir)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    train_s = time.perf_counter() - t0

    adapter_dir = merged_dir = None
    if cfg.lora:
        adapter_dir = out / "adapter"
        save_adapter(model, adapter_dir, base=cfg.base_model)
        if cfg.merge:
            merged_dir = out / "merged"
            merge_adapter(cfg.base_model, adapter_dir, merged_dir)
    else:
        adapter_dir = None
        merged_dir = out / "model"
        model.save(str(merged_dir))
    result = TrainResult(
        adapter_dir=str(adapter_dir) if adapter_dir else None, merged_dir=str(merged_dir) if merged_dir else None,
        n_train=n_train, steps=int(trainer.state.global_step), losses=loss_history(trainer),
        train_seconds=round(train_s, 1), config={**cfg.model_dump(), "device": device, "resolved": str(resolved.path),
                                                  "matryoshka_dims_used": dims},
        resumed_from=str(resume_from) if resume_from else None,
    )
    (out / "train_result.json").write_text(result.model_dump_json(indent=1) + "\n", encoding="utf-8")
    if adapter_dir is not None:
        (adapter_dir / "training.json").write_text(json.dumps({
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "base_model": cfg.base_model,
            "n_train_pairs": n_train, "steps": result.steps, "train_seconds": result.train_seconds,
            "config": cfg.model_dump(), "final_loss": result.losses[-1][1] if result.losses else None,
            "torch": torch.__version__,
        }, indent=1) + "\n", encoding="utf-8")
    return result


def save_adapter(model, adapter_dir: str | Path, *, base: str) -> Path:
    """Write only the LoRA weights + ``adapter_config.json`` (peft format, loadable by ``PeftModel.from_pretrained``
    on the bare transformers model -- what :class:`mad_guardrails.retrieval.embedder.Embedder` does)."""
    d = Path(adapter_dir)
    d.mkdir(parents=True, exist_ok=True)
    tm = model.transformers_model if hasattr(model, "transformers_model") else model[0].auto_model
    tm.save_pretrained(str(d))
    cfg_path = d / "adapter_config.json"
    if cfg_path.exists():  # record the spec, not this machine's path, as the base
        c = json.loads(cfg_path.read_text(encoding="utf-8"))
        c["base_model_name_or_path"] = base
        cfg_path.write_text(json.dumps(c, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for extra in ("README.md",):
        (d / extra).unlink(missing_ok=True)
    return d


def merge_adapter(base: str, adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """The adapter merged into the base, saved as a full sentence-transformers folder."""
    from mad_guardrails.retrieval.embedder import Embedder

    emb = Embedder.load(base, adapter=str(adapter_dir), device="cpu")
    emb.model.save(str(out_dir))
    return Path(out_dir)
