//! Budgets hold whatever the upstream counts: an OpenAI-compatible server
//! whose tokenizer bills twice what cl100k counts (as a Llama model served
//! by vLLM does for much text), under a name of its own or under
//! `gpt-3.5-turbo` (a proxy aliasing a Llama model to it), 300 concurrent
//! requests against a $1 budget, in memory, in Redis and across two
//! replicas; an honest upstream's first burst admits about as many as
//! one whose tokenizer is already verified; and an upstream that ignores
//! `max_tokens`, charged in full and bounded from then on.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::{Fake, Options as FakeOptions};
use support::{hash, serve, RedisServer};
use tollgate::gateway::{Gateway, Options};

const KEY: &str = "tg_overspend_key";
/// $1 in nano-dollars.
const LIMIT: i64 = 1_000_000_000;

/// The tests here are bursts of hundreds of requests that compare
/// admissions: one at a time, so one burst's load does not skew another's
/// count.
static ONE_BURST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn yaml(upstream: &str, ledger: &str, state: &str, model: &str) -> String {
    format!(
        r#"
version: 1
ledger: "sqlite:{ledger}"
{state}
providers:
  vllm: {{ kind: openai, base_url: "{upstream}", api_key: upstream-secret, timeout: 5s }}
models:
  llama: {{ provider: vllm, upstream_model: {model}, price: {{ input: 1000, output: 1000 }} }}
keys:
  - {{ id: k, team: agents, hash: "{}" }}
budgets:
  - {{ scope: {{ team: agents }}, limit_usd: 1, period: day }}
"#,
        hash(KEY)
    )
}

fn overrun(gw: &Gateway) -> tollgate::money::Nanos {
    gw.bounds.overrun(gw.policy.model_ids["llama"])
}

fn gateway(yaml: &str) -> Arc<Gateway> {
    let p = tollgate::policy::load_str("overspend.yaml", yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Gateway::new(p, &Options::default()).unwrap())
}

fn spent(gw: &Gateway, ledger: &str) -> (i64, i64) {
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(10)));
    let conn = rusqlite::Connection::open(ledger).unwrap();
    conn.query_row(
        "SELECT COALESCE(SUM(cost_nanos), 0), COUNT(*) FILTER (WHERE status = 200) FROM tollgate_ledger",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

/// 300 requests at once, spread over `urls`; how many were answered.
async fn flood(urls: &[String], max_tokens: u32) -> usize {
    let client = reqwest::Client::new();
    let text = "Summarise the following paragraph for a busy reader. The quarterly \
        report shows revenue growing in every region, with costs held flat and the \
        new product line ahead of plan; hiring slowed in the second half.";
    let mut tasks = Vec::new();
    for i in 0..300 {
        let (client, url) = (client.clone(), urls[i % urls.len()].clone());
        let body = json!({"model": "llama", "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": format!("{text} ({i})")}]});
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            assert!(matches!(status, 200 | 429), "{status}");
            status == 200
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += usize::from(t.await.unwrap());
    }
    ok
}

async fn holds(model: &str, max_tokens: u32, redis: Option<&RedisServer>, replicas: usize) {
    let fake = Fake::start_with(FakeOptions {
        prompt_scale: Some(2),
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state = redis.map_or(String::new(), |r| format!("state: \"{}\"", r.url()));
    let mut gws = Vec::new();
    let mut urls = Vec::new();
    for i in 0..replicas {
        let ledger = dir
            .path()
            .join(format!("ledger{i}.sqlite"))
            .display()
            .to_string();
        let gw = gateway(&yaml(&fake.base_url(), &ledger, &state, model));
        urls.push(format!("http://{}", serve(gw.clone()).await));
        gws.push((gw, ledger));
    }
    let mut answered = flood(&urls, max_tokens).await;
    // Then one at a time until the budget refuses: once a replica has seen
    // what the upstream bills, its reservations fit it, so the money left
    // at the end is less than about two answers.
    for _ in 0..40 {
        let res = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", urls[0]))
            .bearer_auth(KEY)
            .json(&json!({"model": "llama", "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "Summarise the quarterly report for a busy reader, please: revenue grew in every region while costs held flat."}]}))
            .send()
            .await
            .unwrap();
        if res.status() != 200 {
            assert_eq!(res.status(), 429);
            break;
        }
        answered += 1;
    }
    let (mut total, mut rows) = (0, 0);
    for (gw, ledger) in &gws {
        let (cost, ok) = spent(gw, ledger);
        total += cost;
        rows += ok;
    }
    let what = format!(
        "{model}, max_tokens {max_tokens}, redis {}, {replicas} replica(s)",
        redis.is_some()
    );
    assert!(
        total <= LIMIT,
        "{what}: spent {total} nano-dollars of {LIMIT}"
    );
    assert_eq!(rows as usize, answered, "{what}");
    // An answer bills about $0.07 to $0.13 here: the budget was used up.
    if replicas == 1 {
        assert!(total > LIMIT - 260_000_000, "{what}: spent only {total}");
    }
    assert!(answered >= 3, "{what}: only {answered} answered");
    eprintln!("{what}: {answered} answered, spent ${}", total as f64 / 1e9);
}

const LLAMA: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// A name whose tokenizer (cl100k) is known, served by an upstream that
/// bills by another.
const ALIASED: &str = "gpt-3.5-turbo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_bills_twice_cl100k_cannot_overspend_in_memory() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    holds(LLAMA, 1, None, 1).await;
    holds(LLAMA, 16, None, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nor_in_redis_nor_across_two_replicas() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    let redis = RedisServer::start();
    holds(LLAMA, 1, Some(&redis), 1).await;
    let redis = RedisServer::start();
    holds(LLAMA, 16, Some(&redis), 2).await;
    let redis = RedisServer::start();
    holds(LLAMA, 1, Some(&redis), 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nor_under_a_known_name_whose_tokenizer_it_does_not_use() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    holds(ALIASED, 1, None, 1).await;
    holds(ALIASED, 16, None, 1).await;
    let redis = RedisServer::start();
    holds(ALIASED, 1, Some(&redis), 1).await;
    let redis = RedisServer::start();
    holds(ALIASED, 16, Some(&redis), 2).await;
}

/// As if settlements had shown `llama`'s prompt count right already.
fn verify(gw: &Gateway) {
    let id = gw.policy.model_ids["llama"];
    gw.bounds.merge(
        id,
        &tollgate::state::bounds::Learnt {
            shape: tollgate::state::bounds::Shape::Plain,
            prompt_milli: 1000,
            completion_milli: 0,
            settled: tollgate::state::bounds::VERIFY_AFTER,
        },
    );
    assert!(gw.bounds.verified(id).0);
}

/// One burst of 300 on an honest upstream under `gpt-3.5-turbo`; with
/// `verified`, the gateway starts as if settlements had already shown its
/// count right (reservations at the cl100k count from the first request).
async fn honest_burst(verified: bool) -> (usize, i64) {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let gw = gateway(&yaml(&fake.base_url(), &ledger, "", ALIASED));
    if verified {
        verify(&gw);
    }
    let url = format!("http://{}", serve(gw.clone()).await);
    let answered = flood(&[url], 1).await;
    let (total, rows) = spent(&gw, &ledger);
    assert_eq!(rows as usize, answered);
    assert!(total <= LIMIT, "spent {total}");
    (answered, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_upstreams_first_burst_admits_about_as_many_as_a_verified_one() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    let (fresh, fresh_spent) = honest_burst(false).await;
    let (verified, verified_spent) = honest_burst(true).await;
    eprintln!(
        "first burst: {fresh} answered (${}) unverified, {verified} (${}) verified",
        fresh_spent as f64 / 1e9,
        verified_spent as f64 / 1e9
    );
    // The first reservations hold the byte bound; the rest of the burst
    // waits for their settlements instead of being refused. How the burst
    // ends is a race between settlements and the retries waiting on them:
    // on a loaded 2-core machine the unverified burst answered 20 to 24
    // against 21 to 24 verified, so the bound is four fifths.
    assert!(
        fresh * 5 >= verified * 4,
        "{fresh} answered before verification against {verified} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_ignores_max_tokens_is_charged_counted_and_bounded() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    let fake = Fake::start_with(FakeOptions {
        ignore_max_tokens: true,
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let gw = gateway(&yaml(&fake.base_url(), &ledger, "", "gpt-4"));
    // Its count verified already, so reservations hold gpt-4's count
    // (before verification the byte bound would cover the overrun).
    verify(&gw);
    let url = format!("http://{}", serve(gw.clone()).await);
    let client = reqwest::Client::new();
    let ask = || async {
        let res = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "llama", "max_tokens": 1,
                "messages": [{"role": "user", "content": "Hello there"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()
    };
    let first = ask().await;
    assert_eq!(
        first["usage"]["completion_tokens"], 7,
        "billed 7 for max_tokens 1"
    );
    let over = overrun(&gw);
    let (cost, _) = spent(&gw, &ledger);
    let billed = first["usage"]["prompt_tokens"].as_i64().unwrap() + 7;
    assert_eq!(cost, billed * 1_000_000, "charged in full");
    // Reserved: "Hello there" as gpt-4 counts it (9 tokens) + 1, at $1000/M.
    assert_eq!(over.0 as i64, cost - 10_000_000, "{over}");
    assert!(over.0 > 0);
    // The next reservation holds the 7 the upstream bills: no new overrun.
    ask().await;
    assert_eq!(overrun(&gw), over);
    let metrics = tollgate::server::metrics_text(&gw).await;
    let line = format!("tollgate_budget_overrun_usd_total{{model=\"llama\"}} {over}");
    assert!(metrics.contains(&line), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_settlements_taught_survives_a_restart_through_the_ledger() {
    let _one = ONE_BURST_AT_A_TIME.lock().await;
    let fake = Fake::start_with(FakeOptions {
        prompt_scale: Some(2),
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let policy = yaml(&fake.base_url(), &ledger, "", ALIASED);
    let first = gateway(&policy);
    let id = first.policy.model_ids["llama"];
    let url = format!("http://{}", serve(first.clone()).await);
    for _ in 0..tollgate::state::bounds::VERIFY_AFTER {
        let res = reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(KEY)
            .json(&json!({"model": "llama", "max_tokens": 1,
                "messages": [{"role": "user", "content": "Hello there, how are you?"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let (verified, ratio) = first.bounds.verified(id);
    assert!(verified);
    assert!(ratio >= 1500, "billed about twice the count: {ratio}");
    first.ledger.as_ref().unwrap().close();
    // A new process on the same ledger starts verified, with the ratio.
    let second = gateway(&policy);
    let mut waited = 0;
    while !second.bounds.verified(id).0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        second.absorb_learnt();
        waited += 1;
    }
    assert_eq!(second.bounds.verified(id), (true, ratio));
    let metrics = tollgate::server::metrics_text(&second).await;
    assert!(
        metrics.contains("tollgate_prompt_count_verified{model=\"llama\"} 1"),
        "{metrics}"
    );
}
