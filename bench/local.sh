#!/usr/bin/env bash
# The embedded engine's throughput on the test model, and llama.cpp on the
# same file, prompt and thread count when llama-cpp-python is installed.
#
#   bench/local.sh                       # SmolLM2-135M, 64 tokens, 3 rounds, 1/4/8 concurrent
#   MODEL=models/llama-2-7b-chat.Q4_K_M.gguf TEMPLATE=templates/llama2-chat.jinja bench/local.sh
#   CONCURRENCY=1 FIFO=0 PYTHON=venv/bin/python bench/local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
MAX_TOKENS=${MAX_TOKENS:-64}
ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-python3}
[ -f "$MODEL" ] || scripts/fetch-test-model
args=(--model "$MODEL" --max-tokens "$MAX_TOKENS" --rounds "$ROUNDS" --concurrency "${CONCURRENCY:-1,4,8}")
[ -z "${TEMPLATE:-}" ] || args+=(--template "$TEMPLATE")
[ "${FIFO:-1}" = 1 ] || args+=(--no-fifo)
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo run --release --quiet --example local_bench -- "${args[@]}"
if "$PYTHON" -c 'import llama_cpp' 2>/dev/null; then
  "$PYTHON" bench/llamacpp_bench.py --model "$MODEL" --max-tokens "$MAX_TOKENS" --rounds "$ROUNDS" --threads "$(nproc)"
else
  echo "llama.cpp: not installed (pip install llama-cpp-python) - skipped"
fi
