#!/usr/bin/env python3
"""GPU trainer of the embedder's domain LoRA on the pairs ``mad-guardrails train embedder --from-rerank-data DIR
--prepare-only`` writes (template, everyday-wording and people-written queries with the hybrid retriever's own wrong
hits as hard negatives; every article that is gold for an evaluation query held out). Standalone: torch,
transformers, peft — the GPU machine has no project install, so the project's sentence-transformers trainer
(``retrieval/training/embedder_trainer.py``) is mirrored here in plain torch:

  python bench/gpu/embed/train.py --base BASE_DIR --pairs PAIRS.jsonl.gz --out OUT_DIR [--hard-negatives 1]
      [--epochs 3] [--init ADAPTER_DIR]

PAIRS may be the output of ``filter_negatives.py`` (the same pairs, the near-positive hard negatives dropped).

Recipe (the shipped adapter's, ``retrieval/adapters/minilm-regulatory/README.md``): LoRA r=16, alpha=32, dropout 0.05
on every query/key/value/dense module of the encoder; masked mean pooling, L2-normalised; MultipleNegativesRankingLoss
(scale 20: each query against every positive and hard negative of the batch) inside a Matryoshka sum over 384 / 256
/ 128 / 64 dims; no two pairs with the same positive passage in a batch; batch 64, lr 2e-4, cosine with 10 % warmup,
256 tokens. BASE_DIR: ``bench/gpu/base_io.py`` export (fp16, cut vocabulary; trained in fp32). Writes OUT_DIR/
adapter_config.json + adapter_model.safetensors in the format ``mad_guardrails.retrieval.embedder`` merges
(``base_model_name_or_path: bundled:all-MiniLM-L6-v2``) and train_log.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from base_io import load_base, optimizer_step  # noqa: E402

TARGET = r"^(?!.*pooler).*\.(dense|key|query|value)$"  # the shipped adapter's target_modules
DIMS = (384, 256, 128, 64)


def read_pairs(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(x) for x in fh]


def batches(pairs: list[dict], bs: int, rng: random.Random) -> list[list[dict]]:
    """Shuffled batches in which no positive passage appears twice (an in-batch duplicate would be a false negative)."""
    order = pairs[:]
    rng.shuffle(order)
    out, cur, seen, held = [], [], set(), []
    for p in order:
        if p["pid"] in seen:
            held.append(p)
            continue
        cur.append(p)
        seen.add(p["pid"])
        if len(cur) == bs:
            out.append(cur)
            cur, seen = [], set()
            again, held = held, []
            for q in again:  # retry held pairs in the next batch
                if q["pid"] in seen:
                    held.append(q)
                else:
                    cur.append(q)
                    seen.add(q["pid"])
    if len(cur) >= bs // 2:
        out.append(cur)
    return out


def encode(model, tok, texts: list[str], max_length: int, device: str) -> torch.Tensor:
    t = tok(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt").to(device)
    h = model(input_ids=t["input_ids"], attention_mask=t["attention_mask"],
              token_type_ids=t.get("token_type_ids")).last_hidden_state
    m = t["attention_mask"].unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def mnrl(q: torch.Tensor, docs: torch.Tensor, scale: float = 20.0) -> torch.Tensor:
    """Matryoshka MNRL: query i's positive is docs[i]; every other doc of the batch (positives and negatives) competes."""
    loss = q.new_zeros(())
    target = torch.arange(q.shape[0], device=q.device)
    for d in DIMS:
        a, b = F.normalize(q[:, :d], dim=-1), F.normalize(docs[:, :d], dim=-1)
        loss = loss + F.cross_entropy(scale * a @ b.T, target)
    return loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--pairs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hard-negatives", type=int, default=1)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--init", default=None, help="continue this adapter folder instead of a fresh LoRA")
    a = ap.parse_args()
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(a.base)
    base = load_base(a.base, AutoModel)
    if a.init:
        model = PeftModel.from_pretrained(base, a.init, is_trainable=True)
    else:
        model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=TARGET,
                                                bias="none", task_type="FEATURE_EXTRACTION"))
    model.to(device).train()
    pairs = read_pairs(Path(a.pairs))
    steps_per_epoch = len(batches(pairs, a.bs, random.Random(0)))
    total = max(1, int(steps_per_epoch * a.epochs))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01)
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, max(0, s - warm) / max(1, total - warm)))))
    log, step, t0 = [], 0, time.time()
    while step < total:
        for b in batches(pairs, a.bs, rng):
            if step >= total:
                break
            docs = [p["positive"] for p in b] + [n for p in b for n in p["negatives"][: a.hard_negatives]]
            with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                q = encode(model, tok, [p["query"] for p in b], a.max_length, device).float()
                d = encode(model, tok, docs, a.max_length, device).float()
            loss = mnrl(q, d)
            optimizer_step(loss, model, opt, sched)
            step += 1
            if step % 50 == 0 or step == total:
                log.append({"step": step, "loss": round(loss.item() / len(DIMS), 4), "s": round(time.time() - t0, 1)})
                print(json.dumps(log[-1]), flush=True)
    out = Path(a.out)
    model.save_pretrained(str(out))
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "bundled:all-MiniLM-L6-v2"
    cfg["inference_mode"] = True
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (out / "train_log.json").write_text(json.dumps({
        "pairs": len(pairs), "steps": total, "epochs": a.epochs, "bs": a.bs, "lr": a.lr, "hard_negatives":
        a.hard_negatives, "max_length": a.max_length, "seed": a.seed, "init": a.init, "pairs_file": a.pairs, "device":
        torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "seconds": round(time.time() - t0, 1),
        "log": log}, indent=1))


if __name__ == "__main__":
    main()
