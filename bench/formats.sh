#!/usr/bin/env bash
# The embedded engine on the CPU per GGUF format, each next to llama.cpp on
# the same file, prompt and threads (single stream):
#   - the test model requantized to Q8_0 and Q4_0 (scripts/requantize,
#     SHA-256 pinned), and the shipped Q4_1 (candle's worst case: no SIMD);
#   - the Llama-2-7B-shaped model, Q4_K_M, LAYERS of its 32 blocks
#     (scripts/make-llama2-shape), for per-layer figures of a real Llama 2.
#
#   bench/formats.sh         # LAYERS=4 MAX_TOKENS=64 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-4}
VENV=${TOLLGATE_CACHE:-$HOME/.cache/tollgate}/gguf-venv
scripts/requantize
scripts/make-llama2-shape
export PYTHON=$VENV/bin/python CONCURRENCY=1 FIFO=0
for q in Q8_0 Q4_0 Q4_1; do
  echo "## SmolLM2-135M-Instruct $q"
  MODEL=models/SmolLM2-135M-Instruct.$q.gguf bench/local.sh
done
echo "## Llama-2-7B shape, $LAYERS of 32 blocks, Q4_K_M"
MODEL=models/llama-2-7b-shape-${LAYERS}L.Q4_K_M.gguf TEMPLATE=templates/llama2-chat.jinja \
  MAX_TOKENS=${MAX_TOKENS:-32} bench/local.sh
