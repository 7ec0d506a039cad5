#!/usr/bin/env bash
# The upstream client's own cost: examples/client_cost.rs sends the bench's
# chat request to the fake upstream through reqwest (built as
# src/upstream/http.rs builds it for upstreams behind a proxy) and through
# the gateway's client (src/upstream/http.rs: hyper's pooled client on the
# direct path), each on one current-thread runtime, and prints the CPU of
# the client's thread per request. The two alternate, $ROUNDS times.
#
#   bench/client.sh              # ROUNDS=3 REQUESTS=40000 CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3} REQUESTS=${REQUESTS:-40000} CONNS=${CONNS:-64}
. scripts/lib.sh
cargo build --release --quiet --example client_cost --example fake_openai
BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
tmp=$(mktemp -d)
start_fake "$tmp"
for _ in $(seq 1 "$ROUNDS"); do
  "$BIN/examples/client_cost" "$upstream" "$REQUESTS" "$CONNS"
done
