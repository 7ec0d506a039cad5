#!/usr/bin/env bash
# Where the gateway's CPU goes on the proxied path: tollgate in front of
# the fake OpenAI upstream (the same policies and body as bench/overhead.sh),
# under an open-loop load of $RATE requests/s, sampled with perf.
#
#   bench/profile.sh              # 10 s at 2000 RPS, prints the top entries
#   RATE=4000 DURATION=20 bench/profile.sh
#   POLICY=stripped bench/profile.sh   # bench/overhead.sh's stripped policy
#   STREAM=1 bench/profile.sh     # streamed answers ("stream": true) instead
#
# By default tollgate runs the shipped policies/default.yaml with one key.
#
# Prints the functions with the most self time (perf report --no-children)
# and, grouped by crate, where the samples fall. Needs perf (Debian's
# linux-perf) and oha (installed like bench/overhead.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
TOOLS=${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}
OHA=${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}
if [ ! -x "$OHA" ]; then
  cargo install --locked --no-default-features --features native-tls --root "$TOOLS" --version 1.16.0 oha
  OHA="$TOOLS/bin/oha"
fi
command -v perf > /dev/null || { echo "perf not found (apt-get install linux-perf)" >&2; exit 1; }
. scripts/lib.sh
build_binaries
tmp=$(mktemp -d)
start_fake "$tmp"
"$BIN/tollgate" key new --id bench --team bench > "$tmp/key.out"
key=$(sed -n 's/^key:  //p' "$tmp/key.out")
key_hash=$(sed -n 's/^hash: //p' "$tmp/key.out")
if [ "${POLICY:-default}" = default ]; then
  # As shipped (bench/overhead.sh's "tollgate"): the default policy, one key.
  shipped_policy "$tmp/policy.yaml" "$key_hash"
else
  cat > "$tmp/policy.yaml" <<YAML
version: 1
ledger: "sqlite:$tmp/ledger.sqlite"
providers:
  fake: { kind: openai, base_url: "$upstream/v1", api_key: upstream-secret }
models:
  gpt-3.5-turbo: { provider: fake, price: { input: 0.5, output: 1.5 } }
keys:
  - { id: bench, team: bench, hash: "$key_hash" }
YAML
fi
OPENAI_BASE_URL="$upstream/v1" OPENAI_API_KEY=upstream-secret TOLLGATE_LEDGER="sqlite:$tmp/ledger.sqlite" \
  env ${TOLLGATE_ENV:-} "$BIN/tollgate" serve --config "$tmp/policy.yaml" --listen 127.0.0.1:0 > "$tmp/tg.out" 2> "$tmp/tg.log" &
tg_pid=$!
pids+=($tg_pid)
gateway=$(url_from "$tmp/tg.out" 600)
body='{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}'
[ -n "${STREAM:-}" ] && body=${body/\"max_tokens\"/\"stream\":true,\"max_tokens\"}
load() {
  "$OHA" --no-tui -z "$1" -c "$CONNS" -q "$RATE" --latency-correction -m POST \
    -H "authorization: Bearer $key" -H 'content-type: application/json' -d "$body" \
    "$gateway/v1/chat/completions" > /dev/null 2>&1
}
# CPU time per request and context switches per thread name (voluntary +
# involuntary), summed over threads.
switches() {
  for t in /proc/"$tg_pid"/task/*; do
    echo "$(cat "$t/comm") $(awk '/ctxt_switches/ {n += $2} END {print n}' "$t/status")"
  done | awk '{n[$1] += $2} END {for (k in n) print k, n[k]}' | sort
}
load 2s
switches > "$tmp/sw0"
cpu0=$(awk '{print $14 + $15}' "/proc/$tg_pid/stat")
load "${DURATION}s"
cpu1=$(awk '{print $14 + $15}' "/proc/$tg_pid/stat")
switches > "$tmp/sw1"
requests=$((RATE * DURATION))
echo "gateway CPU: $(( (cpu1 - cpu0) * 1000000 / $(getconf CLK_TCK) / requests )) µs per request"
echo "context switches per request, by thread (${DURATION}s at $RATE RPS, no profiler):"
join "$tmp/sw0" "$tmp/sw1" | awk -v n="$requests" '{d = ($3 - $2) / n; if (d >= 0.01) printf "  %-20s %.2f\n", $1, d}'
[ -n "${SWITCHES_ONLY:-}" ] && exit 0
load "$((DURATION + 2))s" &
load_pid=$!
sleep 1
perf record -F 1999 -g --call-graph dwarf,16384 -p "$tg_pid" -o "$tmp/perf.data" -- sleep "$DURATION" 2> /dev/null
wait "$load_pid" || true
[ -n "${PERF_DATA:-}" ] && cp "$tmp/perf.data" "$PERF_DATA"
top() { # top SORT FLAGS...: "percent  name" rows
  perf report -i "$tmp/perf.data" --stdio -g none --percent-limit 0.7 "$@" 2> /dev/null \
    | grep -E '^ +[0-9]' | awk '{ $NF == "-" && NF--; $NF == "-" && NF--; print }' | cut -c1-110 | head -"${ROWS:-25}"
}
echo "tollgate at $RATE RPS, $CONNS connections, ${DURATION}s, $(nproc) cores"
echo; echo "self time by function:"; top --no-children --sort symbol
echo; echo "self time by binary:"; ROWS=6 top --no-children --sort dso
echo; echo "self time in tollgate's own binary, by function:"; ROWS=40 top --no-children --sort symbol --dsos tollgate
echo; echo "self time by crate (kernel, mimalloc and libc apart):"
perf report -i "$tmp/perf.data" --no-children --stdio -g none --sort dso,symbol --percent-limit 0 2> /dev/null \
  | python3 -c '
import collections, re, sys
total = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)$", line.rstrip())
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
    if dso.startswith("[kernel"):
        key = "kernel"
    elif dso != "tollgate":
        key = dso
    elif re.match(r"_?mi_", sym):
        key = "mimalloc"
    else:
        crates = [c for c in re.findall(r"([a-z_][a-z0-9_]*)::", sym) if c not in ("core", "alloc", "std", "impl")]
        key = crates[0] if crates else "other"
    total[key] += pct
for k, v in total.most_common(20):
    print(f"  {v:6.2f}%  {k}")
'
[ -n "${CHILDREN:-}" ] && { echo; echo "time including callees (slow to compute):"; ROWS=60 top --children --sort symbol | grep -E 'tollgate::|reqwest|hyper::proto|tracing|tiktoken|serde_json' ; }
