#!/usr/bin/env bash
# Soak: mixed traffic through tollgate for a long run, then throughput,
# status mix per stream of traffic, and the gateway's RSS over time.
#
#   bench/soak.sh                 # 600 s (10 minutes)
#   DURATION=60 bench/soak.sh
#
# Traffic, all at once (each an oha open loop):
#   cached     temperature 0, the same prompt: cache hits after the first
#   fresh      temperature 0.7, not cacheable, through the fallback chain
#   stream     SSE streams
#   limited    a key limited to 600 requests/minute, sent 20/s: ~half 429
# The primary upstream fails every 7th request (a flapping upstream): the
# router falls back to the second one and the circuit breaker may open.
# A team budget, the SQLite ledger and rate limits are on. RSS is sampled
# every 10 s; the run fails if it grows more than 10% from the first
# sample after warm-up to the last.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
TOOLS=${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}
OHA=${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}
[ -x "$OHA" ] || { echo "error: oha not found; bench/overhead.sh installs it" >&2; exit 1; }

. scripts/lib.sh
build_binaries
tmp=$(mktemp -d)

"$BIN/examples/fake_openai" --listen 127.0.0.1:0 --fail-every 7 > "$tmp/flappy.out" 2>&1 &
pids+=($!)
"$BIN/examples/fake_openai" --listen 127.0.0.1:0 > "$tmp/steady.out" 2>&1 &
pids+=($!)
flappy=$(url_from "$tmp/flappy.out")
steady=$(url_from "$tmp/steady.out")
for k in app limited; do "$BIN/tollgate" key new --id "$k" --team soak > "$tmp/$k.key"; done
keyof() { sed -n 's/^key:  //p' "$tmp/$1.key"; }
hashof() { sed -n 's/^hash: //p' "$tmp/$1.key"; }
cat > "$tmp/policy.yaml" <<YAML
version: 1
ledger: "sqlite:$tmp/ledger.sqlite"
server: { metrics: open }
providers:
  flappy: { kind: openai, base_url: "$flappy/v1", api_key: upstream-secret }
  steady: { kind: openai, base_url: "$steady/v1", api_key: upstream-secret }
models:
  gpt-4: { provider: flappy }
  gpt-3.5-turbo: { provider: steady }
aliases: { auto: router }
routes:
  - { name: main, to: gpt-4, fallback: [gpt-3.5-turbo] }
keys:
  - { id: app, team: soak, hash: "$(hashof app)" }
  - { id: limited, team: soak, hash: "$(hashof limited)" }
rate_limits:
  - { scope: { key: limited }, requests_per_minute: 600 }
budgets:
  - { scope: { team: soak }, limit_usd: 100000, period: month }
cache: { ttl: 1h, max_entries: 10000 }
circuit_breaker: { failures: 5, cooldown: 2s }
retry: { max_attempts: 3, backoff: 1ms }
YAML
"$BIN/tollgate" serve --config "$tmp/policy.yaml" --listen 127.0.0.1:0 > "$tmp/tg.out" 2> "$tmp/tg.log" &
tg=$!
pids+=($tg)
gw=$(url_from "$tmp/tg.out")

post() { # post NAME KEY RATE BODY
  "$OHA" --no-tui --output-format json -o "$tmp/$1.json" -z "${DURATION}s" -c 8 -q "$3" \
    --latency-correction -m POST -H "authorization: Bearer $2" -H 'content-type: application/json' \
    -d "$4" "$gw/v1/chat/completions" > /dev/null 2> "$tmp/$1.err" &
  pids+=($!)
  loads+=($!)
}
loads=()
post cached "$(keyof app)" 150 '{"model":"auto","temperature":0,"max_tokens":32,"messages":[{"role":"user","content":"What is the capital of France?"}]}'
post fresh "$(keyof app)" 100 '{"model":"auto","temperature":0.7,"max_tokens":32,"messages":[{"role":"user","content":"Write one line about the sea."}]}'
post stream "$(keyof app)" 30 '{"model":"auto","stream":true,"max_tokens":32,"messages":[{"role":"user","content":"Count to five."}]}'
post limited "$(keyof limited)" 20 '{"model":"auto","temperature":0.7,"max_tokens":32,"messages":[{"role":"user","content":"Hello"}]}'

rss() { awk '/VmRSS/ {print $2}' "/proc/$tg/status"; }
echo "t_s rss_kib" > "$tmp/rss.txt"
start=$(date +%s)
while :; do
  now=$(( $(date +%s) - start ))
  echo "$now $(rss)" >> "$tmp/rss.txt"
  [ "$now" -ge "$DURATION" ] && break
  sleep 10
done
for p in "${loads[@]}"; do wait "$p" || true; done
curl -sf -H "authorization: Bearer $(keyof app)" "$gw/metrics" > "$tmp/metrics.txt" || true

python3 - "$tmp" "$DURATION" <<'PY'
import json, sys
tmp, duration = sys.argv[1], int(sys.argv[2])
print(f"\nsoak: {duration} s of mixed traffic\n")
print("| traffic | requests | RPS | 2xx | 429 | 5xx | other | p50 ms | p99 ms |")
print("|---|---|---|---|---|---|---|---|---|")
for name in ("cached", "fresh", "stream", "limited"):
    r = json.load(open(f"{tmp}/{name}.json"))
    codes = {int(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
    total = sum(codes.values())
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    lim = codes.get(429, 0)
    err = sum(v for k, v in codes.items() if k >= 500)
    other = total - ok - lim - err
    lat = r["latencyPercentiles"]
    print(f"| {name} | {total} | {total / duration:.0f} | {ok} | {lim} | {err} | {other} | {lat['p50'] * 1e3:.1f} | {lat['p99'] * 1e3:.1f} |")
rows = [l.split() for l in open(f"{tmp}/rss.txt").read().splitlines()[1:]]
rss = [(int(t), int(k)) for t, k in rows]
warm = next((r for r in rss if r[0] >= 30), rss[0])
end = rss[-1]
growth = 100.0 * (end[1] - warm[1]) / warm[1]
print(f"\nRSS: {rss[0][1] / 1024:.1f} MiB at start, {warm[1] / 1024:.1f} MiB at {warm[0]} s, "
      f"{end[1] / 1024:.1f} MiB at {end[0]} s: {growth:+.1f}% after warm-up")
m = open(f"{tmp}/metrics.txt").read() if open(f"{tmp}/metrics.txt").read() else ""
for line in m.splitlines():
    if line.startswith(("tollgate_cache_hits_total", "tollgate_rate_limited_total", "tollgate_circuit_open")):
        print(line)
sys.exit(0 if growth <= 10 else 1)
PY
