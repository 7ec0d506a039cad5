#!/usr/bin/env bash
# What router learning (`shadow:`) costs the client: the same sequential
# chat requests through tollgate with shadow sampling off (sample: 0) and
# on for 2% and for every request (sample: 0.02, 1), in one run against the fake OpenAI
# upstream (examples/fake_openai.rs; the judge is a second fake answering
# as a judge). Prints the client's p50 / p90 / p99 latency for each, and
# how many outcome lines and ledger rows the run left.
#
#   bench/shadow.sh              # 400 requests each
#   REQUESTS=2000 bench/shadow.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-400}

. scripts/lib.sh
build_binaries
tmp=$(mktemp -d)
start_fake "$tmp"
"$BIN/examples/fake_openai" --listen 127.0.0.1:0 --judge > "$tmp/judge.out" 2>&1 &
pids+=($!)
judge=$(url_from "$tmp/judge.out")

run() { # NAME SAMPLE: serves, measures, stops
  cat > "$tmp/$1.yaml" <<YAML
version: 1
ledger: "sqlite:$tmp/$1.sqlite"
providers:
  fake: { kind: openai, base_url: "$upstream/v1", api_key: upstream-secret }
  judge: { kind: openai, base_url: "$judge/v1", api_key: upstream-secret }
models:
  big: { provider: fake, price: { input: 10, output: 30 } }
  small: { provider: fake, price: { input: 0.5, output: 1.5 } }
  grader: { provider: judge, price: { input: 2, output: 8 } }
baseline: big
aliases: { auto: router }
routes:
  - { name: all, to: small }
shadow: { sample: $2, strong: big, weak: small, judge: grader, budget_usd: 1000, outcomes: "$tmp/$1.jsonl" }
YAML
  "$BIN/tollgate" serve --allow-anonymous --router off --listen 127.0.0.1:0 \
    --config "$tmp/$1.yaml" > "$tmp/$1.out" 2> "$tmp/$1.log" &
  local pid=$!
  local url
  url=$(url_from "$tmp/$1.out")
  python3 - "$url" "$REQUESTS" "$1" <<'PY'
import http.client, json, sys, time, urllib.parse
url, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port)
body = json.dumps({"model": "auto", "max_tokens": 16,
                   "messages": [{"role": "user", "content": "Write a short poem about the sea"}]})
took = []
for i in range(n + 20):
    t = time.perf_counter()
    c.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
    if i >= 20:  # warm-up
        took.append((time.perf_counter() - t) * 1e6)
took.sort()
q = lambda p: took[min(len(took) - 1, int(p * len(took)))]
print(f"{name:<12} p50 {q(0.5):7.0f} us   p90 {q(0.9):7.0f} us   p99 {q(0.99):7.0f} us   ({n} requests)")
PY
  sleep 2
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
echo "client latency, sequential requests, one keep-alive connection"
run off 0
run sample-2% 0.02
run on 1
lines=$(cat "$tmp/on.jsonl" 2>/dev/null | wc -l)
rows=$(python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(\"select count(*), sum(key_id='router-learning') from tollgate_ledger\").fetchone())" "$tmp/on.sqlite")
echo "shadow on: $lines outcome lines; ledger rows (all, router learning): $rows"
