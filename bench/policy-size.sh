#!/usr/bin/env bash
# Whether the per-request cost stays flat as the policy grows: the same
# load through tollgate with a small policy (1 key, 1 budget, 2 models,
# 2 routes) and a large one (100,000 keys, 10,000 budgets, 1,000 models,
# 200 routes), both with the SQLite ledger, in front of the fake upstream.
# For each: `policy check` time (parse and compile), time from start to
# listening, a hot reload (SIGHUP) as the gateway logs it, RSS once
# listening and after the load, and at $RATE requests/s
# ($CONNS connections, model "auto" so the routes are walked) p50/p99 and
# CPU per request.
#
#   bench/policy-size.sh            # DURATION=8 RATE=2000 CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8} RATE=${RATE:-2000} CONNS=${CONNS:-64}
. scripts/lib.sh
ensure_oha
build_binaries
TG=${TOLLGATE_BIN:-$BIN/tollgate}   # another build: a before/after pair
tmp=$(mktemp -d)
start_fake "$tmp"

# policy.py NAME KEYS BUDGETS MODELS ROUTES: writes $tmp/NAME.yaml; the
# first key (printed) is the one the load uses, and every budget and route
# is one the request must look past or check.
python3 - "$tmp" "$upstream" <<'PY'
import hashlib, sys
tmp, upstream = sys.argv[1], sys.argv[2]
def policy(name, keys, budgets, models, routes):
    out = [f'version: 1', f'ledger: "sqlite:{tmp}/{name}.sqlite"', "providers:",
           f'  fake: {{ kind: openai, base_url: "{upstream}/v1", api_key: upstream-secret }}', "models:",
           "  gpt-3.5-turbo: { provider: fake, price: { input: 0.5, output: 1.5 } }"]
    out += [f"  m{i}: {{ provider: fake, price: {{ input: 0.5, output: 1.5 }} }}" for i in range(models - 1)]
    out.append("aliases: { auto: router }")
    out.append("keys:")
    first = None
    for i in range(keys):
        key = "tg_" + hashlib.sha256(f"{name}-{i}".encode()).hexdigest()[:48]
        first = first or key
        h = hashlib.sha256(key.encode()).hexdigest()
        out.append(f'  - {{ id: k{i}, team: t{i % 1000}, hash: "sha256:{h}" }}')
    out.append("budgets:")
    out.append("  - { scope: { key: k0 }, limit_usd: 1000000, period: month, on_exhausted: reject }")
    out += [f"  - {{ scope: {{ team: t{i} }}, limit_usd: 1000000, period: day, on_exhausted: reject }}"
            for i in range(1, min(budgets, 1000))]
    out += [f"  - {{ scope: {{ key: k{i} }}, limit_usd: 1000000, period: day, on_exhausted: reject }}"
            for i in range(1, budgets - min(budgets, 1000) + 1)]
    out.append("routes:")
    out += [f"  - {{ name: r{i}, when: {{ model: [m{i % max(models - 1, 1)}] }}, to: m{i % max(models - 1, 1)} }}"
            for i in range(routes - 1)]
    out.append("  - { name: rest, to: gpt-3.5-turbo }")
    open(f"{tmp}/{name}.yaml", "w").write("\n".join(out) + "\n")
    open(f"{tmp}/{name}.key", "w").write(first)
policy("small", 1, 1, 2, 2)
policy("large", 100_000, 10_000, 1_000, 200)
PY

body='{"model":"auto","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}'
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
printf '| policy | file | policy check | start to listening | hot reload | RSS listening | RSS after load | p50 µs | p99 µs | CPU µs/req |\n|---|---|---|---|---|---|---|---|---|---|\n'
for name in small large; do
  size=$(du -h "$tmp/$name.yaml" | cut -f1)
  t0=$EPOCHREALTIME
  "$TG" policy check "$tmp/$name.yaml" > /dev/null
  t1=$EPOCHREALTIME
  check=$(python3 -c "print(f'{$t1 - $t0:.2f} s')")
  t0=$EPOCHREALTIME
  "$TG" serve --config "$tmp/$name.yaml" --listen 127.0.0.1:0 > "$tmp/$name.out" 2> "$tmp/$name.log" &
  pid=$!
  pids+=($pid)
  url=$(url_from "$tmp/$name.out" 300)
  t1=$EPOCHREALTIME
  # url_from looks every 0.1 s.
  start=$(python3 -c "print(f'{$t1 - $t0:.1f} s')")
  rss0=$(rss $pid)
  key=$(cat "$tmp/$name.key")
  "$OHA" --no-tui -z 2s -c 16 -m POST -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "$body" "$url/v1/chat/completions" > /dev/null 2>&1 || true
  c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  "$OHA" --no-tui --output-format json -o "$tmp/$name.json" -z "${DURATION}s" -c "$CONNS" -q "$RATE" \
    --latency-correction -m POST -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "$body" "$url/v1/chat/completions" > /dev/null 2>&1
  c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  rss1=$(rss $pid)
  # A hot reload of the same file (SIGHUP), as the gateway times it.
  kill -HUP "$pid"
  reload=""
  for _ in $(seq 1 300); do
    reload=$(sed -n 's/.*policy reloaded.*took_ms=\([0-9]*\).*/\1/p' "$tmp/$name.log" | head -1)
    [ -n "$reload" ] && break
    sleep 0.1
  done
  reload=$(python3 -c "print(f'{${reload:-0} / 1000:.2f} s')")
  python3 - "$tmp/$name.json" "$((c1 - c0))" "$(getconf CLK_TCK)" "$name" "$size" "$check" "$start" "$rss0" "$rss1" "$reload" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); ticks, hz = int(sys.argv[2]), int(sys.argv[3])
codes = r.get("statusCodeDistribution", {}); ok = sum(v for k, v in codes.items() if k.startswith("2"))
lat = r["latencyPercentiles"]
bad = "" if ok == sum(codes.values()) else f" ({sum(codes.values()) - ok} not 2xx: {codes})"
print(f"| {sys.argv[4]} | {sys.argv[5]} | {sys.argv[6]} | {sys.argv[7]} | {sys.argv[10]} | {sys.argv[8]} MiB | {sys.argv[9]} MiB | "
      f"{lat['p50'] * 1e6:.0f} | {lat['p99'] * 1e6:.0f} | {1e6 * ticks / hz / max(ok, 1):.0f} |{bad}")
PY
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
