//! Rate limits, the response cache and budgets: one test body per
//! behaviour, run against the in-memory state and against a throwaway
//! redis-server; plus what happens when Redis goes away and comes back.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake};
use support::{hash, serve, RedisServer};
use tollgate::gateway::{Gateway, Options};

const A: &str = "tg_state_a";
const B: &str = "tg_state_b";
const OTHER_TEAM: &str = "tg_state_c";

/// `state:` for the backend under test (and the server, kept alive).
enum Backend {
    Memory,
    Redis(RedisServer),
}

impl Backend {
    fn redis() -> Backend {
        Backend::Redis(RedisServer::start())
    }

    fn state(&self) -> String {
        match self {
            Backend::Memory => "memory".into(),
            Backend::Redis(r) => format!("\"{}\"", r.url()),
        }
    }
}

fn policy(up: &str, state: &str, ledger: &str, extra: &str) -> String {
    format!(
        r#"
version: 1
state: {state}
ledger: {ledger}
providers:
  up: {{ kind: openai, base_url: "{up}", api_key: upstream-secret, timeout: 2s }}
models:
  gpt-4: {{ provider: up, price: {{ input: 30, output: 60 }} }}
  gpt-3.5-turbo: {{ provider: up, price: {{ input: 1.5, output: 2 }} }}
aliases: {{ auto: router }}
routes:
  - {{ name: main, to: gpt-4, fallback: [gpt-3.5-turbo] }}
keys:
  - {{ id: key-a, team: web, hash: "{}" }}
  - {{ id: key-b, team: web, hash: "{}" }}
  - {{ id: key-c, team: data, hash: "{}" }}
retry: {{ max_attempts: 2, backoff: 1ms }}
{extra}
"#,
        hash(A),
        hash(B),
        hash(OTHER_TEAM)
    )
}

async fn gateway(yaml: &str) -> (String, Arc<Gateway>) {
    let p = tollgate::policy::load_str("state.yaml", yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    support::verified(&gw);
    (format!("http://{}", serve(gw.clone()).await), gw)
}

async fn post(url: &str, key: &str, body: &Value) -> reqwest::Response {
    post_with(url, key, body, &[]).await
}

async fn post_with(
    url: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn ask(text: &str) -> Value {
    json!({"model": "auto", "temperature": 0, "max_tokens": 7,
           "messages": [{"role": "user", "content": text}]})
}

fn h(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

// ---- rate limits -------------------------------------------------------

async fn rate_limits(backend: Backend) {
    let up = Fake::start().await;
    let limits = "rate_limits:\n  - { scope: { key: \"*\" }, requests_per_minute: 5 }\n  - { scope: { team: data }, tokens_per_minute: 50 }";
    let (url, _gw) = gateway(&policy(&up.base_url(), &backend.state(), "none", limits)).await;
    for left in (0..5).rev() {
        let res = post(&url, A, &ask("Say hello")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(h(&res, "x-ratelimit-limit-requests"), "5");
        assert_eq!(h(&res, "x-ratelimit-remaining-requests"), left.to_string());
        assert!(!h(&res, "x-ratelimit-reset-requests").is_empty());
    }
    let res = post(&url, A, &ask("Say hello")).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(h(&res, "x-ratelimit-remaining-requests"), "0");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(body["error"]["type"], "requests");
    // Each key has its own bucket.
    assert_eq!(post(&url, B, &ask("Say hello")).await.status(), 200);

    // Tokens: 9 prompt tokens at admission, then the 7 completion tokens
    // once usage is known: 16 a request, so the 4th of 50 does not fit.
    for i in 0..3 {
        let res = post(&url, OTHER_TEAM, &ask("Say hello")).await;
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(h(&res, "x-ratelimit-limit-tokens"), "50");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let res = post(&url, OTHER_TEAM, &ask("Say hello")).await;
    assert_eq!(res.status(), 429, "tokens were corrected with real usage");
    // A prompt larger than the whole limit can never pass.
    let res = post(&url, OTHER_TEAM, &ask(&"word ".repeat(80))).await;
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("on their own"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_in_memory() {
    rate_limits(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_in_redis() {
    rate_limits(Backend::redis()).await;
}

// ---- cache -------------------------------------------------------------

async fn cache(backend: Backend) {
    let up = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("\"sqlite:{}\"", dir.path().join("l.sqlite").display());
    let (url, gw) = gateway(&policy(
        &up.base_url(),
        &backend.state(),
        &ledger,
        "cache: { mode: exact, ttl: 1h, max_entries: 1000 }",
    ))
    .await;
    let first = post(&url, A, &ask("What is 2+2?")).await;
    assert_eq!(h(&first, "x-tollgate-cache"), "miss");
    let first_body = first.bytes().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the store is in the background
    let again = post(&url, B, &ask("What is 2+2?")).await;
    assert_eq!(
        h(&again, "x-tollgate-cache"),
        "hit",
        "same team, another key: a hit"
    );
    assert_eq!(h(&again, "x-tollgate-cost-usd"), "0");
    assert_eq!(h(&again, "x-tollgate-model"), "gpt-4");
    assert_eq!(
        again.bytes().await.unwrap(),
        first_body,
        "replayed byte for byte"
    );
    assert_eq!(up.hits(), 1);

    // Never across teams, tools or parameters.
    let res = post(&url, OTHER_TEAM, &ask("What is 2+2?")).await;
    assert_eq!(h(&res, "x-tollgate-cache"), "miss");
    let mut tools = ask("What is 2+2?");
    tools["tools"] = json!([{"type": "function", "function": {"name": "calc", "parameters": {}}}]);
    assert_eq!(h(&post(&url, A, &tools).await, "x-tollgate-cache"), "miss");
    let mut params = ask("What is 2+2?");
    params["top_p"] = json!(0.5);
    assert_eq!(h(&post(&url, A, &params).await, "x-tollgate-cache"), "miss");
    assert_eq!(up.hits(), 4);

    // Only deterministic requests, unless forced; no-cache skips the lookup.
    let mut warm = ask("Tell me a joke");
    warm["temperature"] = json!(0.8);
    for _ in 0..2 {
        assert_eq!(h(&post(&url, A, &warm).await, "x-tollgate-cache"), "bypass");
    }
    assert_eq!(up.hits(), 6);
    post_with(&url, A, &warm, &[("x-tollgate-cache", "force")]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let forced = post_with(&url, A, &warm, &[("x-tollgate-cache", "force")]).await;
    assert_eq!(h(&forced, "x-tollgate-cache"), "hit");
    let nc = post_with(
        &url,
        A,
        &ask("What is 2+2?"),
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(h(&nc, "x-tollgate-cache"), "miss");
    assert_eq!(up.hits(), 8);

    // Streams are cached complete and replayed with the same chunks.
    let mut s = ask("Stream this");
    s["stream"] = json!(true);
    let a = post(&url, A, &s).await.text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let res = post(&url, A, &s).await;
    assert_eq!(h(&res, "x-tollgate-cache"), "hit");
    assert_eq!(h(&res, "content-type"), "text/event-stream");
    assert_eq!(res.text().await.unwrap(), a);
    assert!(a.ends_with("data: [DONE]\n\n"));
    assert_eq!(up.hits(), 9);

    // An error is never cached.
    up.script([Behavior::Status(500), Behavior::Status(500)]);
    assert_eq!(post(&url, A, &ask("Fails once")).await.status(), 502);
    let res = post(&url, A, &ask("Fails once")).await;
    assert_eq!(
        (res.status().as_u16(), h(&res, "x-tollgate-cache")),
        (200, "miss".into())
    );

    // Hits cost nothing and the ledger says what they saved.
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(dir.path().join("l.sqlite")).unwrap();
    let (hits, cost, saved): (i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(cost_nanos), SUM(saved_nanos) FROM tollgate_ledger WHERE cache = 'hit'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    // Saved, at the fake's usage (prompt: words + 4) on gpt-4: the first
    // answer 7 × $30/M + 7 × $60/M, the forced joke 8 + 7 tokens, the
    // stream 6 + 5 tokens.
    assert_eq!((hits, cost, saved), (3, 0, 630_000 + 660_000 + 480_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_in_memory() {
    cache(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_in_redis() {
    cache(Backend::redis()).await;
}

// ---- budgets -----------------------------------------------------------

async fn budgets_under_concurrency(backend: Backend) {
    let up = Fake::start().await;
    up.script(std::iter::repeat_n(
        Behavior::Delay(Duration::from_millis(10)),
        100,
    ));
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("\"sqlite:{}\"", dir.path().join("l.sqlite").display());
    // Worst case $0.00069 a request, real $0.0006: fits 20 worst cases.
    let (url, gw) = gateway(&policy(
        &up.base_url(),
        &backend.state(),
        &ledger,
        "budgets:\n  - { scope: { team: web }, limit_usd: 0.0138, period: day }",
    ))
    .await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let url = url.clone();
        let key = if i % 2 == 0 { A } else { B };
        tasks.push(tokio::spawn(async move {
            post(
                &url,
                key,
                &json!({"model": "gpt-4", "max_tokens": 7,
                "messages": [{"role": "user", "content": "Say hello"}]}),
            )
            .await
            .status()
            .as_u16()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 20, "admitted {ok}");
    gw.shutdown().await;
    let conn = rusqlite::Connection::open(dir.path().join("l.sqlite")).unwrap();
    let (rows, spent): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(cost_nanos) FROM tollgate_ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(rows, 100);
    assert_eq!(spent, ok * 600_000);
    assert!(spent <= 13_800_000, "overspent: {spent}");
    let st = &gw.budgets.status().await.unwrap()[0];
    assert_eq!(
        st.spent_usd,
        tollgate::money::Nanos(spent as u64).to_string()
    );
    assert_eq!(st.reserved_usd, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_in_memory_never_overspend() {
    budgets_under_concurrency(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_in_redis_never_overspend() {
    budgets_under_concurrency(Backend::redis()).await;
}

// ---- Redis failures ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_load_fails_closed_then_recovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut redis = RedisServer::start();
    let up = Fake::start().await;
    let extra = "rate_limits:\n  - { scope: { key: \"*\" }, requests_per_minute: 100000 }\n\
                 budgets:\n  - { scope: { team: web }, limit_usd: 100, period: day }\n\
                 cache: { ttl: 1h }";
    let (url, _gw) = gateway(&policy(
        &up.base_url(),
        &format!("\"{}\"", redis.url()),
        "none",
        extra,
    ))
    .await;
    // Four clients send requests without pause for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for c in 0..4 {
        let (url, stop) = (url.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let res = post(&url, A, &ask(&format!("client {c} request {i}"))).await;
                let status = res.status().as_u16();
                let code = res
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|b| b["error"]["code"].as_str().map(str::to_string));
                seen.push((status, code));
                i += 1;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ready = reqwest::Client::new()
        .get(format!("{url}/readyz"))
        .bearer_auth(A)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["state"], "unreachable");
    redis.restart();
    // Recovery: requests succeed again on their own.
    let mut recovered = false;
    for _ in 0..50 {
        if post(&url, A, &ask("after")).await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for t in load {
        statuses.extend(t.await.unwrap());
    }
    assert!(recovered, "never recovered after Redis came back");
    // Only answers or the documented 503; some of each.
    for (status, code) in &statuses {
        assert!(
            *status == 200 || (*status == 503 && code.as_deref() == Some("state_unavailable")),
            "unexpected {status} {code:?}"
        );
    }
    let failed = statuses.iter().filter(|s| s.0 == 503).count();
    let served = statuses.len() - failed;
    assert!(
        failed > 0 && served > 0,
        "{served} served, {failed} refused"
    );
    assert_eq!(
        statuses.last().unwrap().0,
        200,
        "the last requests were served again"
    );
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_admits_and_the_cache_misses_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let up = Fake::start().await;
    let extra = "rate_limits:\n  - { scope: { key: \"*\" }, requests_per_minute: 1000 }\ncache: { ttl: 1h }";
    let state = format!("{{ url: \"{}\", fail_open: true }}", redis.url());
    let (url, gw) = gateway(&policy(&up.base_url(), &state, "none", extra)).await;
    redis.stop();
    for _ in 0..3 {
        let res = post(&url, A, &ask("same question")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(h(&res, "x-tollgate-cache"), "miss");
    }
    assert_eq!(up.hits(), 3, "no cache while Redis is down");
    let outages = &gw.counters.outages;
    let unchecked = outages.unchecked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(unchecked >= 3);
    // Each lookup and each store was skipped, and counted.
    let skipped = outages
        .cache_skipped
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(skipped >= 3, "{skipped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_answer_was_lost_is_cancelled() {
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let up = Fake::start().await;
    let budget = "budgets:\n  - { scope: { team: web }, limit_usd: 100, period: day }";
    let (url, gw) = gateway(&policy(
        &up.base_url(),
        &format!("\"{}\"", redis.url()),
        "none",
        budget,
    ))
    .await;
    // Warm the connection, then stall Redis for 0.9 s: the reserve's
    // answer times out (500 ms) and its script runs late, when Redis wakes.
    assert_eq!(post(&url, A, &ask("hello")).await.status(), 200);
    let port = redis.port.to_string();
    let stall = std::thread::spawn(move || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port, "DEBUG", "SLEEP", "0.9"])
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let res = post(&url, A, &ask("hello again")).await;
    assert_eq!(res.status(), 503);
    stall.join().unwrap();
    // The late hold was cancelled: only the first request's spend is left.
    let mut reserved = String::new();
    for _ in 0..50 {
        let st = gw.budgets.status().await.unwrap();
        reserved = st[0].reserved_usd.clone();
        if reserved == "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reserved, "0", "a lost reservation is still held");
    assert_eq!(post(&url, A, &ask("and once more")).await.status(), 200);
}
