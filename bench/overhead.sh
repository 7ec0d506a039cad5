#!/usr/bin/env bash
# Gateway overhead, measured in one run: the fake OpenAI upstream
# (examples/fake_openai.rs) straight, through a bare nginx reverse proxy
# (the floor: one proxy hop with keep-alive to the upstream, nothing else),
# and through tollgate.
#
#   bench/overhead.sh                 # 10 s per scenario
#   DURATION=30 bench/overhead.sh
#
# Scenarios (chat completions, keep-alive connections):
#   max RPS   closed loop, $CONNS connections (default 64)
#   fixed     open loop at $RATE requests/s (default 2000), $CONNS connections,
#             oha --latency-correction, so p50/p99 include queueing
#   stream    closed loop, $STREAM_CONNS connections (default 16), "stream": true:
#             chunks per second, time to the first byte and to the last chunk
# Prints a table with the added latency (proxy − direct) and each proxy's
# CPU time per request. Needs oha (installed into ~/.cache/tollgate/tools
# with cargo if missing) and nginx (Debian's package, installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CONNS=${CONNS:-64}
STREAM_CONNS=${STREAM_CONNS:-16}
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
"$BIN/tollgate" key new --id bench --team bench > "$tmp/key.out"
key=$(sed -n 's/^key:  //p' "$tmp/key.out")
cat > "$tmp/policy.yaml" <<YAML
version: 1
ledger: "sqlite:$tmp/ledger.sqlite"
providers:
  fake: { kind: openai, base_url: "$upstream/v1", api_key: upstream-secret }
models:
  gpt-3.5-turbo: { provider: fake, price: { input: 0.5, output: 1.5 } }
keys:
  - { id: bench, team: bench, hash: "$(sed -n 's/^hash: //p' "$tmp/key.out")" }
YAML
env ${TOLLGATE_ENV:-} "$BIN/tollgate" serve --config "$tmp/policy.yaml" --listen 127.0.0.1:0 > "$tmp/tg.out" 2> "$tmp/tg.log" &
tg_pid=$!
pids+=($tg_pid)
gateway=$(url_from "$tmp/tg.out")

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
  esac
  "$OHA" --no-tui -z 2s -c 16 -m POST -H "authorization: Bearer $k" -H 'content-type: application/json' \
    -d "$b" "$url/v1/chat/completions" > /dev/null 2>&1 || true
  local before up_before; before=$(cpu_ticks "$proxy_pid"); up_before=$(cpu_ticks "$up_pid")
  "$OHA" --no-tui --output-format json -o "$tmp/$label-$sc.json" -z "${DURATION}s" "${load[@]}" -m POST \
    -H "authorization: Bearer $k" -H 'content-type: application/json' -d "$b" "$url/v1/chat/completions" \
    > /dev/null 2> "$tmp/oha.err"
  echo "$(( $(cpu_ticks "$proxy_pid") - before ))" > "$tmp/$label-$sc.cpu"
  echo "$(( $(cpu_ticks "$up_pid") - up_before ))" > "$tmp/$label-$sc.upcpu"
}

echo "oha $("$OHA" --version | awk '{print $2}'); $("$NGINX" -v 2>&1 | sed 's/.*: //'); ${DURATION}s per scenario; $(nproc) cores; $(uname -m)"
for sc in max fixed stream; do
  run direct "$upstream" upstream-secret "$sc" "$up_pid"
  run nginx "$floor" upstream-secret "$sc" "$nginx_pid"
  run tollgate "$gateway" "$key" "$sc" "$tg_pid"
done

python3 - "$tmp" "$RATE" "$CONNS" "$(getconf CLK_TCK)" "$STREAM_CONNS" "$chunks" <<'PY'
import json, sys
tmp, rate, conns, hz, sconns, chunks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
def load(label, sc):
    r = json.load(open(f"{tmp}/{label}-{sc}.json"))
    s, lat = r["summary"], r["latencyPercentiles"]
    codes = r.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) or 1
    cpu = int(open(f"{tmp}/{label}-{sc}.cpu").read()) / hz
    up = int(open(f"{tmp}/{label}-{sc}.upcpu").read()) / hz
    fb = r.get("firstBytePercentiles") or {}
    return {"rps": s["requestsPerSec"], "p50": lat["p50"] * 1e6, "p99": lat["p99"] * 1e6,
            "fb50": (fb.get("p50") or 0) * 1e6,
            "ok": 100.0 * ok / total, "cpu_us": 1e6 * cpu / max(ok, 1), "up_us": 1e6 * up / max(ok, 1)}
labels = ("direct", "nginx", "tollgate")
rows = {(l, sc): load(l, sc) for l in labels for sc in ("max", "fixed", "stream")}
print(f"\n| scenario | target | ok % | RPS | p50 µs | p99 µs | proxy CPU µs/req | upstream CPU µs/req |")
print("|---|---|---|---|---|---|---|---|")
for sc, name in (("max", f"max RPS, {conns} conns"), ("fixed", f"{rate} RPS fixed, {conns} conns")):
    for l in labels:
        r = rows[(l, sc)]
        cpu = f"{r['cpu_us']:.0f}" if l != "direct" else ""
        print(f"| {name} | {l} | {r['ok']:.2f} | {r['rps']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {cpu} | {r['up_us']:.0f} |")
d = rows[("direct", "fixed")]
print()
for l in ("nginx", "tollgate"):
    t = rows[(l, "fixed")]
    m = rows[(l, "max")]["rps"] / rows[("direct", "max")]["rps"]
    print(f"{l}: added latency at {rate} RPS p50 +{t['p50'] - d['p50']:.0f} µs, p99 +{t['p99'] - d['p99']:.0f} µs; "
          f"CPU {t['cpu_us']:.0f} µs/req; max RPS {100 * m:.0f}% of direct")
ds = rows[("direct", "stream")]
print(f"\nstreams, {sconns} conns, {chunks} chunks each:")
print("| target | chunks/s | share of direct | first byte p50 µs | last chunk p50 µs | added first byte | added last chunk | proxy CPU µs/stream |")
print("|---|---|---|---|---|---|---|---|")
for l in labels:
    r = rows[(l, "stream")]
    added = "" if l == "direct" else f"+{r['fb50'] - ds['fb50']:.0f} | +{r['p50'] - ds['p50']:.0f}"
    cpu = f"{r['cpu_us']:.0f}" if l != "direct" else ""
    print(f"| {l} | {r['rps'] * chunks:.0f} | {r['rps'] / ds['rps']:.3f}× | {r['fb50']:.0f} | {r['p50']:.0f} | "
          f"{added if added else ' | '} | {cpu} |")
PY
