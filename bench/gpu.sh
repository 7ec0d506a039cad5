#!/usr/bin/env bash
# The embedded engine on an NVIDIA GPU, with binaries built on another
# machine (the GPU host needs no Rust toolchain and no network):
#
#   bench/gpu.sh            # on the GPU host, from the repository root
#   bench/gpu.sh --dry-run  # anywhere: the plan, and which inputs are missing
#
# Inputs (scripts/build-cuda builds the three binaries where Rust is; copy them over):
#   $BIN_DIR/tollgate     tollgate built with --features cuda (CUDA_COMPUTE_CAP=90 for an H100/H200)
#   $BIN_DIR/local_bench  examples/local_bench.rs, same build
#   $BIN_DIR/local_tests  tests/local.rs, same build (cargo test --features cuda --test local --no-run)
#   $CUDA_LIBS            libcudart, libcublas(Lt), libcurand of the CUDA 12 runtime, when the
#                         host has none of its own (the nvidia-*-cu12 wheels' lib folders)
#   models/               the test model, and the Llama-2-7B shape (scripts/make-llama2-shape)
# Measures: tests/local.rs on the GPU; then per model single-stream prefill and generation
# tok/s, TTFT, and aggregate tok/s at 1, 8 and 32 concurrent requests, with paged attention
# (kv_cache: { memory_gb: $KV_GB }) and the prefix cache on.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
BIN_DIR=${BIN_DIR:-dist/cuda}
CUDA_LIBS=${CUDA_LIBS:-dist/cuda/lib}
KV_GB=${KV_GB:-16}
LAYERS=${LAYERS:-32}
SHAPE=${SHAPE:-models/llama-2-7b-shape-${LAYERS}L.Q4_K_M.gguf}
MAX_TOKENS=${MAX_TOKENS:-128}

steps=(
  "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader"
  "$BIN_DIR/tollgate --version"
  "env TOLLGATE_TEST_DEVICE=cuda:0 $BIN_DIR/local_tests --test-threads 1"
  "$BIN_DIR/local_bench --model models/SmolLM2-135M-Instruct.Q4_1.gguf --device cuda:0 --concurrency 1,8,32 --max-tokens $MAX_TOKENS --kv-cache-gb $KV_GB --no-fifo"
  "$BIN_DIR/local_bench --model $SHAPE --template templates/llama2-chat.jinja --device cuda:0 --concurrency 1,8,32 --max-tokens $MAX_TOKENS --kv-cache-gb $KV_GB --no-fifo"
)
inputs=("$BIN_DIR/tollgate" "$BIN_DIR/local_bench" "$BIN_DIR/local_tests" models/SmolLM2-135M-Instruct.Q4_1.gguf "$SHAPE")

missing=0
for f in "${inputs[@]}"; do
  if [ ! -f "$f" ]; then
    echo "missing: $f"
    missing=$((missing + 1))
  fi
done
if [ $DRY = 1 ]; then
  for s in "${steps[@]}"; do echo "would run: $s"; done
  echo "dry run: ${#steps[@]} steps, $missing inputs missing"
  exit 0
fi
if ! command -v nvidia-smi >/dev/null; then
  echo "no NVIDIA GPU visible (nvidia-smi not found); bench/gpu.sh --dry-run shows the plan" >&2
  exit 2
fi
if [ $missing -gt 0 ]; then
  echo "$missing inputs missing (above); nothing was run" >&2
  exit 2
fi
[ -d "$CUDA_LIBS" ] && export LD_LIBRARY_PATH="$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for s in "${steps[@]}"; do
  echo "## $s"
  # shellcheck disable=SC2086
  $s
done
