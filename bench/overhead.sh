#!/usr/bin/env bash
# Gateway overhead, measured in one run: the fake OpenAI upstream
# (examples/fake_openai.rs) straight, through a bare nginx reverse proxy
# (the floor: one proxy hop with keep-alive to the upstream, nothing else),
# through Helicone's ai-gateway where it is built, and through tollgate
# twice: as shipped (policies/default.yaml with one gateway key: the
# embedded local model and learned router loaded, the SQLite ledger and
# its crash journal on) and with a stripped policy (one provider, one
# model, one key, the SQLite ledger).
#
#   bench/overhead.sh                 # 10 s per scenario
#   DURATION=30 bench/overhead.sh
#   TOLLGATE_BIN=/path/to/tollgate bench/overhead.sh   # another build
#
# Scenarios (chat completions, keep-alive connections):
#   max RPS   closed loop, $CONNS connections (default 64)
#   fixed     open loop at $RATE requests/s (default 2000), $CONNS connections,
#             oha --latency-correction, so p50/p99 include queueing
#   stream    closed loop, $STREAM_CONNS connections (default 16), "stream": true:
#             chunks per second, time to the first byte and to the last chunk
#   stream1   the same on one connection: the added times without queueing
# Prints a table with the added latency (proxy − direct) and each proxy's
# CPU time per request, then counts each tollgate's ledger rows against the
# requests it answered. Needs oha (installed into ~/.cache/tollgate/tools
# with cargo if missing) and nginx (Debian's package, installed if missing).
# Helicone's gateway is started with $PEERS_RUST (default
# ../shared/bench/peers-rust.sh) when that script and its binary are there.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
STREAM_CONNS=${STREAM_CONNS:-16}
PEERS_RUST=${PEERS_RUST:-../shared/bench/peers-rust.sh}
TOOLS=${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}
OHA=${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}

if [ ! -x "$OHA" ]; then
  echo "oha not found: installing oha 1.16.0 into $TOOLS (a few minutes)"
  cargo install --locked --no-default-features --features native-tls --root "$TOOLS" --version 1.16.0 oha
  OHA="$TOOLS/bin/oha"
fi
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [ ! -x "$NGINX" ]; then
  echo "nginx not found: installing Debian's nginx"
  as_root=""; [ "$(id -u)" = 0 ] || as_root=sudo
  $as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq nginx > /dev/null
  NGINX=/usr/sbin/nginx
fi
. scripts/lib.sh
build_binaries
# TOLLGATE_BIN=path runs another build of tollgate (a before/after pair).
TG=${TOLLGATE_BIN:-$BIN/tollgate}
tmp=$(mktemp -d)

"$BIN/examples/fake_openai" --listen 127.0.0.1:0 > "$tmp/fake.out" 2>&1 &
up_pid=$!
pids+=($up_pid)
upstream=$(url_from "$tmp/fake.out")

# The floor: nginx as a bare reverse proxy, as many workers as tollgate has
# threads (one per core), keep-alive to the upstream, no access log.
nginx_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx"
cat > "$tmp/nginx.conf" <<NGINX
user $(id -un);
worker_processes $(nproc);
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  upstream fake { server ${upstream#http://}; keepalive 128; }
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      proxy_buffering off;
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX
"$NGINX" -c "$tmp/nginx.conf" -p "$tmp/nginx" 2> "$tmp/nginx/stderr" &
nginx_pid=$!
pids+=($nginx_pid)
floor=http://127.0.0.1:$nginx_port
for _ in $(seq 1 50); do curl -s -o /dev/null "$floor/" && break; sleep 0.1; done
"$TG" key new --id bench --team bench > "$tmp/key.out"
key=$(sed -n 's/^key:  //p' "$tmp/key.out")
key_hash=$(sed -n 's/^hash: //p' "$tmp/key.out")
# As shipped: the default policy, one key added, OpenAI at the fake upstream.
shipped_policy "$tmp/default.yaml" "$key_hash"
cat > "$tmp/stripped.yaml" <<YAML
version: 1
ledger: "sqlite:$tmp/stripped.sqlite"
providers:
  fake: { kind: openai, base_url: "$upstream/v1", api_key: upstream-secret }
models:
  gpt-3.5-turbo: { provider: fake, price: { input: 0.5, output: 1.5 } }
keys:
  - { id: bench, team: bench, hash: "$key_hash" }
YAML
declare -A tg_pid gateway
for v in default stripped; do
  OPENAI_BASE_URL="$upstream/v1" OPENAI_API_KEY=upstream-secret TOLLGATE_LEDGER="sqlite:$tmp/default.sqlite" \
    env ${TOLLGATE_ENV:-} "$TG" serve --config "$tmp/$v.yaml" --listen 127.0.0.1:0 \
    > "$tmp/$v.out" 2> "$tmp/$v.log" &
  tg_pid[$v]=$!
  pids+=($!)
  gateway[$v]=$(url_from "$tmp/$v.out" 600)
done

# Helicone's ai-gateway (direct proxy, no auth, no observability), where built.
targets=(direct nginx)
helicone_pid=""
if [ -x "$PEERS_RUST" ] && UPSTREAM_PORT=${upstream##*:} BENCH_CLIENT_KEY=upstream-secret \
    "$PEERS_RUST" start helicone > "$tmp/helicone.out" 2>&1 && grep -q '^helicone ' "$tmp/helicone.out"; then
  helicone_url=$(awk '/^helicone /{print $2}' "$tmp/helicone.out")
  helicone_pid=$(awk '/^helicone /{print $4}' "$tmp/helicone.out")
  trap '"$PEERS_RUST" stop helicone > /dev/null 2>&1 || true; cleanup' EXIT
  targets+=(helicone)
else
  echo "Helicone's gateway not started (see $PEERS_RUST and its README): left out"
fi
targets+=(tollgate tollgate-stripped)

body='{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}'
stream_body='{"model":"gpt-3.5-turbo","stream":true,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}'
# Data events (the [DONE] line apart) in one streamed answer, straight
# from the upstream: every proxy relays the same ones.
chunks=$(curl -sN -H 'authorization: Bearer upstream-secret' -H 'content-type: application/json' \
  -d "$stream_body" "$upstream/v1/chat/completions" | grep -c '^data: {')
# CPU ticks of a process and its children (nginx's workers).
cpu_ticks() {
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat") ))
  done
  echo $total
}

run() { # run LABEL URL KEY SCENARIO PID (the proxy whose CPU is counted)
  local label=$1 url=$2 k=$3 sc=$4 proxy_pid=$5 load
  local b=$body
  case $sc in
    max) load=(-c "$CONNS") ;;
    fixed) load=(-c "$CONNS" -q "$RATE" --latency-correction) ;;
    stream) load=(-c "$STREAM_CONNS"); b=$stream_body ;;
    stream1) load=(-c 1); b=$stream_body ;;
  esac
  "$OHA" --no-tui --output-format json -o "$tmp/$label-$sc.warm.json" -z 2s -c 16 -m POST \
    -H "authorization: Bearer $k" -H 'content-type: application/json' \
    -d "$b" "$url/v1/chat/completions" > /dev/null 2>&1 || true
  local before up_before; before=$(cpu_ticks "$proxy_pid"); up_before=$(cpu_ticks "$up_pid")
  "$OHA" --no-tui --output-format json -o "$tmp/$label-$sc.json" -z "${DURATION}s" "${load[@]}" -m POST \
    -H "authorization: Bearer $k" -H 'content-type: application/json' -d "$b" "$url/v1/chat/completions" \
    > /dev/null 2> "$tmp/oha.err"
  echo "$(( $(cpu_ticks "$proxy_pid") - before ))" > "$tmp/$label-$sc.cpu"
  echo "$(( $(cpu_ticks "$up_pid") - up_before ))" > "$tmp/$label-$sc.upcpu"
}

echo "oha $("$OHA" --version | awk '{print $2}'); $("$NGINX" -v 2>&1 | sed 's/.*: //'); ${DURATION}s per scenario; $(nproc) cores; $(uname -m); tollgate $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
for sc in max fixed stream stream1; do
  for t in "${targets[@]}"; do
    case $t in
      direct) run direct "$upstream" upstream-secret "$sc" "$up_pid" ;;
      nginx) run nginx "$floor" upstream-secret "$sc" "$nginx_pid" ;;
      helicone) run helicone "${helicone_url%/openai/v1/chat/completions}/openai" upstream-secret "$sc" "$helicone_pid" ;;
      tollgate) run tollgate "${gateway[default]}" "$key" "$sc" "${tg_pid[default]}" ;;
      tollgate-stripped) run tollgate-stripped "${gateway[stripped]}" "$key" "$sc" "${tg_pid[stripped]}" ;;
    esac
  done
done
# Stop both gateways (SIGTERM: they finish what they hold and close the
# ledger) to count their rows.
for v in default stripped; do kill -TERM "${tg_pid[$v]}"; done
for v in default stripped; do wait "${tg_pid[$v]}" || true; done

python3 - "$tmp" "$RATE" "$CONNS" "$(getconf CLK_TCK)" "$STREAM_CONNS" "$chunks" "${targets[@]}" <<'PY'
import json, sqlite3, sys
tmp, rate, conns, hz, sconns, chunks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
labels = sys.argv[7:]
scenarios = ("max", "fixed", "stream", "stream1")
def codes(path):
    c = json.load(open(path)).get("statusCodeDistribution", {})
    return sum(v for k, v in c.items() if k.startswith("2")), sum(c.values())
def load(label, sc):
    r = json.load(open(f"{tmp}/{label}-{sc}.json"))
    s, lat = r["summary"], r["latencyPercentiles"]
    ok, total = codes(f"{tmp}/{label}-{sc}.json")
    cpu = int(open(f"{tmp}/{label}-{sc}.cpu").read()) / hz
    up = int(open(f"{tmp}/{label}-{sc}.upcpu").read()) / hz
    fb = r.get("firstBytePercentiles") or {}
    return {"rps": s["requestsPerSec"], "p50": lat["p50"] * 1e6, "p99": lat["p99"] * 1e6,
            "fb50": (fb.get("p50") or 0) * 1e6,
            "ok": 100.0 * ok / max(total, 1), "cpu_us": 1e6 * cpu / max(ok, 1), "up_us": 1e6 * up / max(ok, 1)}
rows = {(l, sc): load(l, sc) for l in labels for sc in scenarios}
print(f"\n| scenario | target | ok % | RPS | p50 µs | p99 µs | proxy CPU µs/req | upstream CPU µs/req |")
print("|---|---|---|---|---|---|---|---|")
for sc, name in (("max", f"max RPS, {conns} conns"), ("fixed", f"{rate} RPS fixed, {conns} conns")):
    for l in labels:
        r = rows[(l, sc)]
        cpu = f"{r['cpu_us']:.0f}" if l != "direct" else ""
        print(f"| {name} | {l} | {r['ok']:.2f} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {cpu} | {r['up_us']:.0f} |")
d = rows[("direct", "fixed")]
print()
for l in labels[1:]:
    t = rows[(l, "fixed")]
    m = rows[(l, "max")]["rps"] / rows[("direct", "max")]["rps"]
    print(f"{l}: added latency at {rate} RPS p50 +{t['p50'] - d['p50']:.0f} µs, p99 +{t['p99'] - d['p99']:.0f} µs; "
          f"CPU {t['cpu_us']:.0f} µs/req; max RPS {100 * m:.0f}% of direct")
for sc, n in (("stream", sconns), ("stream1", 1)):
    ds = rows[("direct", sc)]
    print(f"\nstreams, {n} conn{'s' if n != 1 else ''}, {chunks} chunks each:")
    print("| target | chunks/s | share of direct | first byte p50 µs | last chunk p50 µs | added first byte | added last chunk | proxy CPU µs/stream |")
    print("|---|---|---|---|---|---|---|---|")
    for l in labels:
        r = rows[(l, sc)]
        added = "| " if l == "direct" else f"+{r['fb50'] - ds['fb50']:.0f} | +{r['p50'] - ds['p50']:.0f}"
        cpu = f"{r['cpu_us']:.0f}" if l != "direct" else ""
        print(f"| {l} | {r['rps'] * chunks:.0f} | {r['rps'] / ds['rps']:.3f}× | {r['fb50']:.0f} | {r['p50']:.0f} | "
              f"{added} | {cpu} |")
# Every answered request has its ledger row; a request oha cut off at the
# end of a run may have one too (as a stream the client left), so
# answered <= rows <= answered + cut.
print()
for label, db in (("tollgate", "default"), ("tollgate-stripped", "stripped")):
    answered = cut = 0
    for sc in scenarios:
        for part in ("warm.json", "json"):
            ok, total = codes(f"{tmp}/{label}-{sc}.{part}")
            answered += ok
            cut += {"max": int(conns), "fixed": int(conns), "stream": int(sconns), "stream1": 1}[sc] \
                if part == "json" else 16
    n = sqlite3.connect(f"{tmp}/{db}.sqlite").execute("select count(*) from tollgate_ledger").fetchone()[0]
    verdict = "ok" if answered <= n <= answered + cut else "MISMATCH"
    print(f"{label}: {n} ledger rows for {answered} answered requests (at most {cut} cut at run ends): {verdict}")
PY
