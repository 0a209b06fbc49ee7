"""LoRA / QLoRA fine-tuning of a causal LM on (chat messages → target answer) examples, loss on the answer only.

* GPU + ``quantization="nf4"``: QLoRA — the base model loaded in 4-bit NF4 with bitsandbytes (double quantisation,
  bf16 compute), ``peft.prepare_model_for_kbit_training``, LoRA on top (seed §2).
* CPU (or ``quantization="none"``): plain LoRA on the full-precision base — what the offline profile's SmolLM2-135M
  and the tests' tiny random Llama use.

Targets are the seven Llama projections (``q/k/v/o_proj``, ``gate/up/down_proj``), the modules vLLM serves LoRA on,
so the adapter loads with ``--lora-modules`` (``--max-lora-rank`` ≥ r) and with ``peft.PeftModel.from_pretrained``.

A run is reproducible for its ``seed`` (LoRA init, dropout, data order) and resumable: every ``save_every`` optimizer
steps a checkpoint (adapter + optimizer + scheduler + RNG states + losses) goes to ``<out>/checkpoints/step-N``; the
same call again continues from the latest one. The final adapter is ``<out>/adapter_config.json`` +
``adapter_model.safetensors`` (saved in ``save_dtype``) and ``<out>/training.json`` (preset, data, losses).

    >>> PRESETS["seed"].r, PRESETS["seed"].quantization, PRESETS["seed"].effective_batch
    (32, 'nf4', 7)
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mad_guardrails.core.errors import ConfigError, ModelUnavailableError

log = logging.getLogger(__name__)

#: the projections vLLM can serve LoRA on for Llama-architecture models (SmolLM2, Llama, Qwen2/3 share the names)
VLLM_LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class LoraPreset(BaseModel):
    """Hyper-parameters of one LoRA / QLoRA run (every field can be overridden on the command line)."""

    name: str = "custom"
    r: int = Field(default=32, ge=1)
    alpha: int = Field(default=64, ge=1)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: list(VLLM_LORA_TARGETS))
    lr: float = Field(default=2e-4, gt=0)
    epochs: float = Field(default=2.0, gt=0)
    batch_size: int = Field(default=1, ge=1)
    grad_accum: int = Field(default=7, ge=1)
    warmup_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_len: int = Field(default=4096, description="examples longer than this (prompt + target tokens) are dropped")
    quantization: Literal["nf4", "none"] = "none"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    gradient_checkpointing: bool = False
    save_dtype: Literal["float32", "bfloat16", "float16"] = "float16"

    @property
    def effective_batch(self) -> int:
        return self.batch_size * self.grad_accum


PRESETS: dict[str, LoraPreset] = {
    # Seed §2 (coordinator-qwen3-14b-qlora-grounded): QLoRA r=32 on 4-bit NF4, 2 epochs, effective batch 7. The card
    # gives neither alpha, dropout nor lr: alpha = 2r and dropout 0.05 as the seed embedder (§1), lr 2e-4 (QLoRA's).
    "seed": LoraPreset(name="seed", r=32, alpha=64, dropout=0.05, lr=2e-4, epochs=2, batch_size=1, grad_accum=7,
                       warmup_ratio=0.1, quantization="nf4", dtype="bfloat16", gradient_checkpointing=True,
                       max_len=4096, save_dtype="bfloat16"),
    # The seed recipe scaled to SmolLM2-135M (CPU or GPU): plain LoRA in float32 (no 4-bit kernels on CPU), r=16
    # keeps the shipped adapter ~10 MB in float16 (r=32: ~20 MB), a higher lr and 3 epochs for a 135M model and a
    # few dozen to a few hundred examples.
    "smollm2": LoraPreset(name="smollm2", r=16, alpha=32, dropout=0.05, lr=5e-4, epochs=3, batch_size=1,
                              grad_accum=4, warmup_ratio=0.1, quantization="none", dtype="float32", max_len=3072,
                              save_dtype="float16"),
    # For tests on a tiny random model: a few steps must visibly lower the loss.
    "tiny": LoraPreset(name="tiny", r=8, alpha=16, dropout=0.0, lr=1e-2, epochs=8, batch_size=2, grad_accum=1,
                       warmup_ratio=0.0, scheduler="constant", quantization="none", dtype="float32", max_len=512,
                       save_dtype="float32"),
}


def preset(name: str, **overrides) -> LoraPreset:
    """A preset by name with some fields replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown training preset {name!r}", where="--preset", fix=f"one of {', '.join(PRESETS)}")
    upd = {k: v for k, v in overrides.items() if v is not None}
    return PRESETS[name].model_copy(update=upd)


class TrainExample(BaseModel):
    messages: list[dict]
    target: str


class TrainResult(BaseModel):
    adapter_dir: str
    preset: LoraPreset
    seed: int
    examples: int
    dropped_too_long: int = 0
    steps: int
    total_steps: int
    losses: list[float] = Field(default_factory=list, description="mean loss of each optimizer step")
    resumed_from: int | None = None
    trainable_params: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    base_model: str = ""
    peak_gpu_memory_gb: float | None = Field(default=None, description="torch.cuda.max_memory_allocated (GPU runs)")

    @property
    def first_loss(self) -> float | None:
        return self.losses[0] if self.losses else None

    @property
    def last_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None


# ------------------------------------------------------------------------------------------------------ data
def encode(tok, messages: list[dict], target: str) -> tuple[list[int], list[int]]:
    """Token ids of prompt + answer under the model's chat template, and labels masking the prompt (-100).

    The answer is rendered as the assistant turn (so it ends with the template's end-of-turn token, which teaches the
    model to stop)."""
    prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template([*messages, {"role": "assistant", "content": target}], tokenize=False)
    if not full.startswith(prompt):  # a template that re-renders earlier turns: fall back to prompt + target + eos
        full = prompt + target + (tok.eos_token or "")
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tok(full, add_special_tokens=False)["input_ids"]
    n = len(p_ids) if f_ids[: len(p_ids)] == p_ids else len(tok(prompt, add_special_tokens=False)["input_ids"]) - 1
    labels = [-100] * n + f_ids[n:]
    return f_ids, labels


def _batches(encoded: list[tuple[list[int], list[int]]], order: list[int], bs: int, pad_id: int):
    import torch

    for s in range(0, len(order), bs):
        chunk = [encoded[i] for i in order[s: s + bs]]
        width = max(len(x[0]) for x in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        lab = torch.full((len(chunk), width), -100, dtype=torch.long)
        att = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (x, y) in enumerate(chunk):
            ids[j, : len(x)] = torch.tensor(x)
            lab[j, : len(y)] = torch.tensor(y)
            att[j, : len(x)] = 1
        yield ids, lab, att


# ------------------------------------------------------------------------------------------------------ model
def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _peak_gpu_gb(device: str) -> float | None:
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def load_base(path: str, p: LoraPreset, device: str):
    """(model, tokenizer) — 4-bit NF4 on a GPU when the preset asks for it, else full precision."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw: dict = {"dtype": getattr(torch, p.dtype)}
    if p.quantization == "nf4":
        if not device.startswith("cuda"):
            raise ConfigError("4-bit NF4 (QLoRA) needs a CUDA GPU", where="--preset / --quantization",
                              fix="use --quantization none (plain LoRA) on a CPU, or the smollm2 preset")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError as e:
            raise ModelUnavailableError("QLoRA needs bitsandbytes", fix="pip install 'mad-guardrails[train]'") from e
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_use_double_quant=True,
                                                       bnb_4bit_compute_dtype=getattr(torch, p.dtype))
        kw["device_map"] = {"": device}
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, **kw)
    except OSError as e:
        raise ModelUnavailableError(f"cannot load the base model ({e})", where=path,
                                    fix="pass a local model folder, 'bundled:smollm2' or a cached hub id") from e
    if p.quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=p.gradient_checkpointing)
    else:
        model.to(device)
        if p.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


def _lr_lambda(p: LoraPreset, total: int):
    warm = int(round(p.warmup_ratio * total))

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if p.scheduler == "constant":
            return 1.0
        frac = (step - warm) / max(1, total - warm)
        return max(0.0, 1 - frac) if p.scheduler == "linear" else 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return f


# ------------------------------------------------------------------------------------------------ checkpoints
def _latest_checkpoint(out: Path) -> Path | None:
    ck = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    ck = [c for c in ck if (c / "state.pt").is_file() and (c / "adapter_model.safetensors").is_file()]
    return ck[-1] if ck else None


def _save_checkpoint(out: Path, model, opt, sched, step: int, losses: list[float], keep: int = 2) -> Path:
    import torch

    d = out / "checkpoints" / f"step-{step:06d}"
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "losses": losses,
                "rng": {"python": random.getstate(), "torch": torch.get_rng_state()}}, tmp / "state.pt")
    shutil.rmtree(d, ignore_errors=True)
    tmp.rename(d)
    old = sorted((out / "checkpoints").glob("step-*"), key=lambda p: p.name)[:-keep]
    for o in old:
        shutil.rmtree(o, ignore_errors=True)
    return d


def _load_checkpoint(ck: Path, model, opt, sched) -> tuple[int, list[float]]:
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(ck / "adapter_model.safetensors")))
    st = torch.load(ck / "state.pt", weights_only=False)
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    random.setstate(st["rng"]["python"])
    torch.set_rng_state(st["rng"]["torch"])
    return int(st["step"]), list(st["losses"])


def _save_final(model, out: Path, p: LoraPreset, base_name: str | None) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    model.save_pretrained(str(out), safe_serialization=True)
    f = out / "adapter_model.safetensors"
    sd = load_file(str(f))
    dt = getattr(torch, p.save_dtype)
    save_file({k: v.to(dt).contiguous() for k, v in sd.items()}, str(f), metadata={"format": "pt"})
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if base_name:
        cfg["base_model_name_or_path"] = base_name
    cfg["target_modules"] = sorted(cfg.get("target_modules") or [])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_vllm_compatible(adapter_dir: str | Path, max_lora_rank: int = 32) -> list[str]:
    """Problems that would stop vLLM from serving the adapter (empty list: none found).

    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "adapter_config.json").write_text(json.dumps({"r": 64, "target_modules": ["q_proj", "lm_head"]}))
    >>> check_vllm_compatible(d)  # doctest: +NORMALIZE_WHITESPACE
    ['rank 64 > max_lora_rank 32', "target modules vLLM cannot serve LoRA on: ['lm_head']",
     'adapter_model.safetensors is missing']
    """
    d = Path(adapter_dir)
    try:
        cfg = json.loads((d / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return [f"adapter_config.json unreadable: {e}"]
    out = []
    if int(cfg.get("r", 0)) > max_lora_rank:
        out.append(f"rank {cfg.get('r')} > max_lora_rank {max_lora_rank}")
    tm = cfg.get("target_modules") or []
    bad = sorted(set([tm] if isinstance(tm, str) else tm) - set(VLLM_LORA_TARGETS))
    if bad:
        out.append(f"target modules vLLM cannot serve LoRA on: {bad}")
    if cfg.get("modules_to_save"):
        out.append(f"modules_to_save {cfg['modules_to_save']} (vLLM serves LoRA weights only)")
    if cfg.get("bias", "none") != "none":
        out.append(f"bias {cfg['bias']!r} (vLLM needs bias 'none')")
    if not (d / "adapter_model.safetensors").is_file():
        out.append("adapter_model.safetensors is missing")
    return out


# ------------------------------------------------------------------------------------------------------ train
def train_lora(examples: Sequence[TrainExample], base_model: str, out_dir: str | Path, p: LoraPreset, *,
               seed: int = 0, device: str = "auto", resume: bool = True, save_every: int = 10,
               max_steps: int | None = None, base_name: str | None = None, keep_checkpoints: bool = False,
               progress: bool = True) -> TrainResult:
    """Fine-tune a LoRA adapter on ``examples`` (see the module docstring). ``base_model``: a local folder or a hub
    id (``bundled:`` specs are resolved by the caller or here); ``base_name``: what ``adapter_config.json`` records
    as its base (default: ``base_model``); ``max_steps``: stop early; ``keep_checkpoints``: also checkpoint the last
    step and keep the checkpoints (a later call with a larger ``max_steps`` continues from there)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from mad_guardrails.agents.models import resolve_model
    from mad_guardrails.core.progress import make_progress

    if not examples:
        raise ConfigError("no training examples", fix="build them first: mad-guardrails train coordinator build")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = _device(device)
    random.seed(seed)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    path = resolve_model(base_model)
    model, tok = load_base(path, p, dev)
    encoded_all = [encode(tok, ex.messages, ex.target) for ex in examples]
    encoded = [e for e in encoded_all if len(e[0]) <= p.max_len]
    dropped = len(encoded_all) - len(encoded)
    if dropped:
        log.warning("%d example(s) longer than max_len=%d tokens dropped", dropped, p.max_len)
    if not encoded:
        raise ConfigError(f"every example is longer than max_len={p.max_len} tokens", fix="raise --max-len")
    lcfg = LoraConfig(r=p.r, lora_alpha=p.alpha, lora_dropout=p.dropout, target_modules=list(p.target_modules),
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    trainable = sum(x.numel() for x in model.parameters() if x.requires_grad)
    params = [x for x in model.parameters() if x.requires_grad]
    opt = torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    micro_per_epoch = math.ceil(len(encoded) / p.batch_size)
    total = max(1, math.ceil(micro_per_epoch * p.epochs / p.grad_accum))
    if max_steps is not None:
        total = min(total, max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(p, total))
    step, losses, resumed = 0, [], None
    ck = _latest_checkpoint(out) if resume else None
    if ck is not None:
        step, losses = _load_checkpoint(ck, model, opt, sched)
        resumed = step
        log.info("resuming from %s (step %d of %d)", ck, step, total)
    elif not resume:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)

    def order_of(epoch: int) -> list[int]:
        o = list(range(len(encoded)))
        random.Random(seed * 7919 + epoch).shuffle(o)
        return o

    def micro_batches():
        epoch = 0
        while True:
            yield from _batches(encoded, order_of(epoch), p.batch_size, tok.pad_token_id)
            epoch += 1

    stream = micro_batches()
    for _ in range(step * p.grad_accum):  # skip what the checkpoint already trained on
        next(stream)
    model.train()
    with make_progress(disable=not progress) as bar:
        task = bar.add_task(f"LoRA r={p.r} ({dev})", total=total, completed=step)
        while step < total:
            opt.zero_grad(set_to_none=True)
            acc = 0.0
            for _ in range(p.grad_accum):
                ids, lab, att = next(stream)
                ids, lab, att = ids.to(dev), lab.to(dev), att.to(dev)
                loss = model(input_ids=ids, attention_mask=att, labels=lab).loss / p.grad_accum
                loss.backward()
                acc += float(loss.detach())
            if p.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, p.max_grad_norm)
            opt.step()
            sched.step()
            step += 1
            losses.append(round(acc, 5))
            bar.update(task, advance=1, description=f"LoRA r={p.r} ({dev}) loss {acc:.3f}")
            if save_every and step % save_every == 0 and step < total:
                _save_checkpoint(out, model, opt, sched, step, losses)
    if keep_checkpoints and resumed != step:
        _save_checkpoint(out, model, opt, sched, step, losses)
    _save_final(model, out, p, base_name or base_model)
    res = TrainResult(adapter_dir=str(out), preset=p, seed=seed, examples=len(encoded), dropped_too_long=dropped,
                      steps=step, total_steps=total, losses=losses, resumed_from=resumed, trainable_params=trainable,
                      seconds=round(time.perf_counter() - t0, 1), device=dev, base_model=base_name or base_model,
                      peak_gpu_memory_gb=_peak_gpu_gb(dev))
    (out / "training.json").write_text(res.model_dump_json(indent=2) + "\n", encoding="utf-8")
    if not keep_checkpoints:
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    return res
