#!/usr/bin/env bash
# The cost of shared state on the request path, measured in one run against
# the fake OpenAI upstream (examples/fake_openai.rs):
#
#   proxied            tollgate, no rate limits, budgets or cache
#   limits+budgets     the same with a per-key rate limit (requests and
#                      tokens) and a team budget checked on every request
#   cache hit          every request answered from the response cache
# each with state in memory and in Redis (a throwaway redis-server on a
# free port). Non-streaming chat completions, keep-alive connections.
#
#   bench/state.sh                    # 10 s per scenario
#   DURATION=30 CONNS=64 RATE=2000 bench/state.sh
#
# Closed loop ($CONNS connections) gives max RPS; an open loop at $RATE
# requests/s with oha --latency-correction gives p50/p99. Needs oha (see
# bench/overhead.sh) and redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
TOOLS=${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}
OHA=${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}
[ -x "$OHA" ] || { echo "error: oha not found; bench/overhead.sh installs it" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "error: redis-server not found" >&2; exit 1; }

. scripts/lib.sh
build_binaries
tmp=$(mktemp -d)

"$BIN/examples/fake_openai" --listen 127.0.0.1:0 > "$tmp/fake.out" 2>&1 &
pids+=($!)
upstream=$(url_from "$tmp/fake.out")
redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no > /dev/null &
pids+=($!)
"$BIN/tollgate" key new --id bench --team bench > "$tmp/key.out"
key=$(sed -n 's/^key:  //p' "$tmp/key.out")
hash=$(sed -n 's/^hash: //p' "$tmp/key.out")

# policy NAME STATE EXTRA: writes $tmp/NAME.yaml
policy() {
  cat > "$tmp/$1.yaml" <<YAML
version: 1
state: $2
ledger: "sqlite:$tmp/$1.sqlite"
providers:
  fake: { kind: openai, base_url: "$upstream/v1", api_key: upstream-secret }
models:
  gpt-3.5-turbo: { provider: fake, price: { input: 0.5, output: 1.5 } }
keys:
  - { id: bench, team: bench, hash: "$hash" }
$3
YAML
}
LIMITS='rate_limits:
  - { scope: { key: "*" }, requests_per_minute: 100000000, tokens_per_minute: 2000000000 }
budgets:
  - { scope: { team: bench }, limit_usd: 1000000, period: month }'
CACHE='cache: { ttl: 1h, max_entries: 10000 }'
redis="\"redis://127.0.0.1:$redis_port/0\""
policy proxied memory ""
policy limits-memory memory "$LIMITS"
policy limits-redis "$redis" "$LIMITS"
policy cache-memory memory "$CACHE"
policy cache-redis "$redis" "$CACHE"

body='{"model":"gpt-3.5-turbo","temperature":0,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}'

bench() { # bench NAME SCENARIO
  local name=$1 sc=$2 load
  "$BIN/tollgate" serve --config "$tmp/$name.yaml" --listen 127.0.0.1:0 > "$tmp/$name.out" 2> "$tmp/$name.log" &
  local pid=$!
  local url; url=$(url_from "$tmp/$name.out")
  if [ "$sc" = max ]; then load=(-c "$CONNS"); else load=(-c "$CONNS" -q "$RATE" --latency-correction); fi
  "$OHA" --no-tui -z 2s -c 16 -m POST -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "$body" "$url/v1/chat/completions" > /dev/null 2>&1 || true
  "$OHA" --no-tui --output-format json -o "$tmp/$name-$sc.json" -z "${DURATION}s" "${load[@]}" -m POST \
    -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" "$url/v1/chat/completions" \
    > /dev/null 2> "$tmp/oha.err"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "oha $("$OHA" --version | awk '{print $2}'); redis-server $(redis-server --version | awk '{print $3}'); ${DURATION}s per scenario; $(nproc) cores"
names=(proxied limits-memory limits-redis cache-memory cache-redis)
for name in "${names[@]}"; do
  for sc in max fixed; do bench "$name" "$sc"; done
done

python3 - "$tmp" "$RATE" "$CONNS" "${names[@]}" <<'PY'
import json, sys
tmp, rate, conns, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def load(name, sc):
    r = json.load(open(f"{tmp}/{name}-{sc}.json"))
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) or 1
    lat = r["latencyPercentiles"]
    return {"rps": r["summary"]["requestsPerSec"], "ok": 100.0 * ok / total,
            "p50": lat["p50"] * 1e6, "p99": lat["p99"] * 1e6}
rows = {n: (load(n, "max"), load(n, "fixed")) for n in names}
base = rows["proxied"][0]["rps"]
print(f"\n| scenario | ok % | max RPS ({conns} conns) | vs proxied | p50 µs at {rate} RPS | p99 µs at {rate} RPS |")
print("|---|---|---|---|---|---|")
for n in names:
    m, f = rows[n]
    print(f"| {n} | {min(m['ok'], f['ok']):.2f} | {m['rps']:.0f} | {m['rps'] / base:.2f}× | {f['p50']:.0f} | {f['p99']:.0f} |")
PY
