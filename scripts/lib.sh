# Shared by the scripts and benchmarks that run tollgate in front of the
# fake OpenAI upstream (examples/fake_openai.rs). Source it from the
# repository root: `. scripts/lib.sh`.

# Processes to stop on exit, and a temp dir to remove (if set).
pids=()
tmp=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$tmp" ]; then rm -rf "$tmp"; fi
}
trap cleanup EXIT

# Builds tollgate and the fake upstream (release) and sets BIN to their dir.
build_binaries() {
  cargo build --release --quiet --bin tollgate --example fake_openai
  BIN=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
}

# url_from FILE [TRIES]: waits for "<what> listening on URL" in FILE (0.1 s
# per try, 100 tries by default) and prints the URL.
url_from() {
  for _ in $(seq 1 "${2:-100}"); do
    url=$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$1" | head -1)
    [ -n "$url" ] && { echo "$url"; return 0; }
    sleep 0.1
  done
  echo "error: nothing listening, see $1:" >&2; cat "$1" >&2; return 1
}

# start_fake DIR: builds nothing; starts the fake upstream (logging to
# DIR/fake.out), adds it to the processes stopped on exit, and sets
# $upstream to its URL.
start_fake() {
  "$BIN/examples/fake_openai" --listen 127.0.0.1:0 > "$1/fake.out" 2>&1 &
  pids+=($!)
  upstream=$(url_from "$1/fake.out")
}

# ensure_oha: sets OHA to the load generator, installing oha 1.16.0 into
# ${TOLLGATE_TOOLS:-~/.cache/tollgate/tools} with cargo when it is missing.
ensure_oha() {
  local tools=${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}
  OHA=${OHA:-$(command -v oha || echo "$tools/bin/oha")}
  if [ ! -x "$OHA" ]; then
    echo "oha not found: installing oha 1.16.0 into $tools (a few minutes)"
    cargo install --locked --no-default-features --features native-tls --root "$tools" --version 1.16.0 oha
    OHA="$tools/bin/oha"
  fi
}

# shipped_policy OUT KEY_HASH: policies/default.yaml as shipped, with one
# gateway key (id and team `bench`) added, written to OUT. Run it with
# OPENAI_BASE_URL, OPENAI_API_KEY and TOLLGATE_LEDGER set.
shipped_policy() {
  { cat policies/default.yaml; printf 'keys:\n  - { id: bench, team: bench, hash: "%s" }\n' "$2"; } > "$1"
}
