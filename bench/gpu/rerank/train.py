#!/usr/bin/env python3
"""GPU trainer of the clause reranker: all-MiniLM-L6-v2 read as a cross-encoder, LoRA r=16 on attention + MLP of
every layer, one-logit classifier (+ pooler) -- the format ``retrieval/relevance_head.py`` loads.

Standalone (torch, transformers, peft):
  python train.py --base BASE_DIR --data DATA_DIR --out OUT_DIR [--sets base,new,offtopic] [--epochs 2]
DATA_DIR: the folder ``bench/gpu/rerank/prepare.py`` writes (passages.jsonl.gz, groups.jsonl.gz).

Loss per query group (its positive + up to 7 hard negatives from the retriever's own wrong hits): listwise softmax
cross-entropy (the positive against its negatives: ranking) + weighted pointwise BCE (positive 1, negatives 0;
off-topic groups: every passage 0, weight 2) so that sigmoid(logit) is a probability the retriever can abstain on.
Writes OUT_DIR/adapter_config.json, adapter_model.safetensors, relevance_head.json, train_log.json.
"""
import argparse
import gzip
import json
import math
import random
import time
from pathlib import Path

import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from base_io import load_base, optimizer_step  # noqa: E402

LORA_TARGET = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"


def rows(p):
    with gzip.open(p, "rt", encoding="utf-8") as fh:
        return [json.loads(x) for x in fh]


def expand(groups, n_neg):
    """One item per (group, positive): (query, [pos] + negs, has_pos)."""
    out = []
    for g in groups:
        negs = g["neg"][:n_neg]
        if g["pos"]:
            for p in g["pos"]:
                out.append((g["q"], [p] + [n for n in negs if n not in g["pos"]], True))
        elif negs:
            out.append((g["q"], negs, False))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sets", default="base,new,offtopic")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--bs", type=int, default=32, help="query groups per step")
    ap.add_argument("--neg", type=int, default=7)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--layers", type=int, default=0, help="keep only the first N encoder layers (0 = all): latency")
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--bce", type=float, default=1.0, help="weight of the pointwise term")
    ap.add_argument("--offtopic-weight", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=150.0, help="stop (and save) after this much training time")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", default="", help="SET=N,...: show that set's groups N times per epoch (written=4)")
    ap.add_argument("--max-train", type=int, default=0, help="random subset of the train items (0 = all; CPU runs)")
    ap.add_argument("--max-test", type=int, default=0, help="evaluate on at most this many test items (0 = all)")
    a = ap.parse_args()

    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    random.seed(a.seed)
    torch.manual_seed(a.seed)
    d = Path(a.data)
    text = {r["i"]: r["text"] for r in rows(d / "passages.jsonl.gz")}
    groups = rows(d / "groups.jsonl.gz")
    sets = set(a.sets.split(","))
    repeat = {k: int(v) for k, v in (x.split("=") for x in a.repeat.split(",") if x)}
    train = expand([g for g in groups if g["split"] == "train" and g["set"] in sets
                    for _ in range(repeat.get(g["set"], 1))], a.neg)
    test = expand([g for g in groups if g["split"] == "test" and g["set"] in ("base", "new") and g["pos"]], a.neg)
    if a.max_train and len(train) > a.max_train:
        train = random.Random(a.seed).sample(train, a.max_train)
    if a.max_test:
        test = test[: a.max_test]
    print(f"train items {len(train)}  test items {len(test)}  sets {sorted(sets)}", flush=True)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(a.base)
    model = load_base(a.base, AutoModelForSequenceClassification, num_labels=1,
                      **({"num_hidden_layers": a.layers} if a.layers else {}))
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=16, lora_alpha=32, lora_dropout=0.05,
                                             target_modules=LORA_TARGET, modules_to_save=["classifier", "pooler"]))
    model.to(dev)
    steps_per_epoch = math.ceil(len(train) / a.bs)
    total = int(steps_per_epoch * a.epochs)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=a.lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(0.06 * total), total)

    def logits_of(batch):
        qs, ps, sizes = [], [], []
        for q, cands, _ in batch:
            for c in cands:
                qs.append(q)
                ps.append(text[c])
            sizes.append(len(cands))
        enc = tok(qs, ps, truncation="only_second", max_length=a.max_length, padding=True,
                  return_tensors="pt").to(dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            out = model(**enc).logits.float().reshape(-1)
        return out, sizes

    log = []
    t0 = time.perf_counter()
    step = 0
    model.train()
    stop = False
    for ep in range(math.ceil(a.epochs)):
        order = list(range(len(train)))
        random.Random(a.seed + ep).shuffle(order)
        for s in range(0, len(order), a.bs):
            if step >= total or time.perf_counter() - t0 > a.seconds:
                stop = True
                break
            batch = [train[i] for i in order[s : s + a.bs]]
            flat, sizes = logits_of(batch)
            ce_terms, bce_terms, w_terms = [], [], []
            o = 0
            for (q, cands, has_pos), n in zip(batch, sizes):
                lg = flat[o : o + n]
                o += n
                y = torch.zeros(n, device=dev)
                if has_pos:
                    ce_terms.append(F.cross_entropy(lg.unsqueeze(0), torch.zeros(1, dtype=torch.long, device=dev)))
                    y[0] = 1.0
                    w = torch.ones(n, device=dev)
                    w[0] = max(1.0, n - 1) ** 0.5  # balance the one positive against its negatives
                else:
                    w = torch.full((n,), a.offtopic_weight, device=dev)
                bce_terms.append((F.binary_cross_entropy_with_logits(lg, y, reduction="none") * w).sum())
                w_terms.append(w.sum())
            ce = torch.stack(ce_terms).mean() if ce_terms else flat.sum() * 0
            bce = torch.stack(bce_terms).sum() / torch.stack(w_terms).sum()
            loss = ce + a.bce * bce
            optimizer_step(loss, model, opt, sched)
            step += 1
            if step % 50 == 0:
                log.append({"step": step, "ce": round(ce.item(), 4), "bce": round(bce.item(), 4),
                            "s": round(time.perf_counter() - t0, 1)})
                print(log[-1], flush=True)
        if stop:
            break
    train_s = time.perf_counter() - t0

    # held-out *generated* pairs (test units only): positive's rank among its negatives, P(pos) / P(neg)
    model.eval()
    mrr, top1, pp, pn = [], [], [], []
    with torch.no_grad():
        for s in range(0, len(test), 64):
            batch = test[s : s + 64]
            flat, sizes = logits_of(batch)
            o = 0
            for n in sizes:
                lg = flat[o : o + n]
                o += n
                r = int((lg > lg[0]).sum().item()) + 1
                mrr.append(1 / r)
                top1.append(float(r == 1))
                pr = torch.sigmoid(lg)
                pp.append(pr[0].item())
                pn += pr[1:].tolist()
    ev = {"test_items": len(test), "mrr": round(sum(mrr) / max(1, len(mrr)), 4),
          "top1": round(sum(top1) / max(1, len(top1)), 4),
          "pos_p>=0.5": round(sum(p >= 0.5 for p in pp) / max(1, len(pp)), 4),
          "neg_p>=0.5": round(sum(p >= 0.5 for p in pn) / max(1, len(pn)), 4)}
    print("eval", ev, flush=True)

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    c = json.loads((out / "adapter_config.json").read_text())
    c["base_model_name_or_path"] = "bundled:all-MiniLM-L6-v2"
    (out / "adapter_config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
    (out / "README.md").unlink(missing_ok=True)
    (out / "relevance_head.json").write_text(json.dumps({
        "base_model": "bundled:all-MiniLM-L6-v2", "max_length": a.max_length,
        **({"num_layers": a.layers} if a.layers else {}), "task": "clause reranker",
        "labels": {"0": "not relevant", "1": "relevant"}, "decision": "P(relevant) >= 0.5",
        "config": vars(a), "steps": step, "train_seconds": round(train_s, 1), "eval_generated_test": ev,
        "device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu",
    }, indent=1) + "\n")
    (out / "train_log.json").write_text(json.dumps(log) + "\n")


if __name__ == "__main__":
    main()
