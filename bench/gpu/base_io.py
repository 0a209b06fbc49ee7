"""The bundled all-MiniLM-L6-v2 as a compact training base for the GPU machine, shared by the GPU trainers.

The carry to the GPU machine is capped at 64 MiB with the working tree, so the base travels in fp16 with its word
embeddings cut to the rows the training texts use (frozen in training: the other rows never matter there). Both the
reranker (``rerank/train.py``) and the entailment verifier (``entailment/train.py``) load it with :func:`load_base`.

CPU side (here)::

    GUARDRAILS_HOME=.cache/home .venv/bin/python -P bench/gpu/base_io.py --out .cache/gpu-base \\
        --texts .cache/rerank/data .cache/entail/data
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

WORD_EMB = "embeddings.word_embeddings.weight"
VOCAB_ROWS = "vocab_rows.safetensors"
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# the text fields of the data folders the trainers read
TEXT_FIELDS = {"passages.jsonl.gz": ("text",), "groups.jsonl.gz": ("q",),
               "train.jsonl.gz": ("premise", "hypothesis"), "dev.jsonl.gz": ("premise", "hypothesis")}


def data_texts(folder: Path) -> list[str]:
    """Every text a trainer tokenizes from one data folder."""
    out: list[str] = []
    for name, fields in TEXT_FIELDS.items():
        p = Path(folder) / name
        if p.exists():
            with gzip.open(p, "rt", encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    out += [str(row[f]) for f in fields if f in row]
    return out


def export_base(src: Path, out: Path, texts: list[str]) -> dict:
    """Write ``src`` (a MiniLM folder) to ``out``: tokenizer files, fp16 weights, word embeddings cut to ``texts``."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    out.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(src) / name, out / name)
    sd = load_file(str(Path(src) / "model.safetensors"))
    key = next(k for k in sd if k.endswith(WORD_EMB))
    tok = AutoTokenizer.from_pretrained(str(src))
    used: set[int] = set(tok.all_special_ids)
    for s in range(0, len(texts), 4096):
        for ids in tok(texts[s : s + 4096], add_special_tokens=True)["input_ids"]:
            used.update(ids)
    ids = torch.tensor(sorted(used), dtype=torch.long)
    save_file({"ids": ids, "rows": sd[key][ids].to(torch.float16).contiguous(), "n": torch.tensor([sd[key].shape[0]])},
              str(out / VOCAB_ROWS))
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items() if k != key}, str(out / "model.safetensors"))
    return {"rows_kept": len(ids), "rows": int(sd[key].shape[0]), "texts": len(texts)}


def load_base(base: str | Path, auto_cls, **config_overrides):
    """The base as ``auto_cls`` (``AutoModel``, ``AutoModelForSequenceClassification``, ...) in fp32; word-embedding
    rows from ``vocab_rows.safetensors`` when the export cut them, the rest zero. ``config_overrides`` go to the
    config (``num_labels=1``, ``num_hidden_layers=3``: a truncated encoder keeps the first layers)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig

    base = Path(base)
    cfg = AutoConfig.from_pretrained(str(base), **config_overrides)
    sd = {k: v.float() for k, v in load_file(str(base / "model.safetensors")).items()}
    rows_file = base / VOCAB_ROWS
    if rows_file.exists():
        vr = load_file(str(rows_file))
        emb = torch.zeros(int(vr["n"][0]), cfg.hidden_size)
        emb[vr["ids"]] = vr["rows"].float()
        pos = next(k for k in sd if k.endswith("embeddings.position_embeddings.weight"))  # the export's key prefix
        sd[pos[: -len("embeddings.position_embeddings.weight")] + WORD_EMB] = emb
    model = auto_cls.from_config(cfg)
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and hasattr(model, prefix) and not any(k.startswith(prefix + ".") for k in sd):
        sd = {f"{prefix}.{k}": v for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    print("base loaded; newly initialised:", missing, "unused:", unexpected, flush=True)
    return model


def optimizer_step(loss, model, opt, sched, clip: float = 1.0) -> None:
    """Backward, clip the gradient norm, step the optimiser and the schedule, clear the gradients (the GPU trainers)."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    opt.zero_grad()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--texts", type=Path, nargs="+", required=True, help="data folders whose texts the base must cover")
    a = ap.parse_args()
    from mad_guardrails.retrieval.embedder import resolve_model

    src = Path(resolve_model("bundled:all-MiniLM-L6-v2", what="training base").path)
    texts = [t for d in a.texts for t in data_texts(d)]
    print(json.dumps(export_base(src, a.out, texts)))


if __name__ == "__main__":
    main()
