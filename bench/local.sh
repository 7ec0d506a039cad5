#!/usr/bin/env bash
# The embedded engine's throughput on the test model, and llama.cpp on the
# same file, prompt and thread count when llama-cpp-python is installed.
#
#   bench/local.sh                       # SmolLM2-135M, 64 tokens, 3 rounds
#   MODEL=models/llama-2-7b-chat.Q4_K_M.gguf bench/local.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
MAX_TOKENS=${MAX_TOKENS:-64}
ROUNDS=${ROUNDS:-3}
[ -f "$MODEL" ] || scripts/fetch-test-model
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
cargo run --release --quiet --example local_bench -- --model "$MODEL" --max-tokens "$MAX_TOKENS" --rounds "$ROUNDS"
if python3 -c 'import llama_cpp' 2>/dev/null; then
  python3 bench/llamacpp_bench.py --model "$MODEL" --max-tokens "$MAX_TOKENS" --rounds "$ROUNDS" --threads "$(nproc)"
else
  echo "llama.cpp: not installed (pip install llama-cpp-python) - skipped"
fi
