#!/usr/bin/env bash
# Memory the learned router adds to a running gateway: `tollgate serve`
# with a cloud-only policy, started with --router off and with the default
# router directory; resident memory (VmRSS) once it listens, and after 200
# classified requests against the fake upstream. Needs models/wordllama
# (scripts/fetch-test-model).
#
#   bench/router-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-test-model >/dev/null
. scripts/lib.sh
build_binaries
tmp=$(mktemp -d)
start_fake "$tmp"
cat > "$tmp/policy.yaml" <<YAML
version: 1
ledger: none
providers:
  up: { kind: openai, base_url: "$upstream", api_key: k }
models:
  gpt-4: { provider: up }
aliases: { auto: router }
routes:
  - { name: all, to: gpt-4 }
YAML
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for router in off models/wordllama; do
  "$BIN/tollgate" serve --config "$tmp/policy.yaml" --listen 127.0.0.1:0 --allow-anonymous \
    --router "$router" > "$tmp/serve.out" 2>&1 &
  pid=$!
  pids+=($pid)
  url=$(url_from "$tmp/serve.out")
  idle=$(rss $pid)
  for i in $(seq 1 200); do
    curl -s -o /dev/null "$url/v1/chat/completions" -H 'content-type: application/json' \
      -d "{\"model\":\"auto\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"Question $i: why is the sky blue at noon and red at sunset? Explain the physics in three steps.\"}]}"
  done
  echo "router=$router  RSS listening: $((idle / 1024)) MiB  after 200 requests: $(( $(rss $pid) / 1024 )) MiB"
  kill $pid
  wait $pid 2>/dev/null || true
done
