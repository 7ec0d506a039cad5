//! No request escapes its cost, and no request hurts another tenant:
//! each test is a hole that was open once, named after it.
//! - a stream cut by its client, or broken by its upstream, pays for the
//!   tokens it was sent (counted locally, the row marked `estimated`);
//! - an answer with no usage, or absurd usage, is counted, never free;
//! - `n` choices are reserved `n` times, and the reserved output bound is
//!   always sent upstream;
//! - an image request does not raise plain text reservations for others;
//! - hostile model names are stored cleaned and capped;
//! - `/metrics` needs an admin key; POST bodies must be JSON; HTTP Basic
//!   works for the dashboard only.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use support::fake_openai::Behavior;
use support::{hash, stack, Stack};

const A: &str = "tg_escapes_a";
const B: &str = "tg_escapes_b";
const C: &str = "tg_escapes_c";
const OPS: &str = "tg_escapes_ops";

fn yaml(primary: &str, _backup: &str, ledger: &str) -> String {
    format!(
        r#"
version: 1
ledger: "sqlite:{ledger}"
server: {{ max_body: 4MiB }}
providers:
  primary: {{ kind: openai, base_url: "{primary}", api_key: upstream-secret, timeout: 5s }}
models:
  gpt-4: {{ provider: primary, price: {{ input: 30, output: 60 }} }}
  capped: {{ provider: primary, upstream_model: gpt-4o, price: {{ input: 1, output: 1 }}, max_output: 123 }}
  reasoner: {{ provider: primary, upstream_model: o4-mini, price: {{ input: 1, output: 1 }}, max_output: 77 }}
keys:
  - {{ id: a, team: one, hash: "{}" }}
  - {{ id: b, team: two, hash: "{}" }}
  - {{ id: c, team: three, hash: "{}" }}
  - {{ id: ops, team: platform, hash: "{}", admin: true }}
budgets:
  - {{ scope: {{ key: b }}, limit_usd: 0.001, period: month }}
  - {{ scope: {{ key: c }}, limit_usd: 0.002, period: month }}
"#,
        hash(A),
        hash(B),
        hash(C),
        hash(OPS)
    )
}

fn hello() -> Value {
    json!({"model": "gpt-4", "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The last ledger row: model, status, ending, prompt and completion
/// tokens, certainty.
fn last_row(s: &Stack) -> (String, u16, String, i64, i64, String) {
    let rows = s.rows::<String, u16, String, i64, i64, String>(
        "model, status, ending, prompt_tokens, completion_tokens, certainty",
    );
    rows.last().cloned().unwrap()
}

#[tokio::test]
async fn a_stream_its_client_cuts_pays_for_what_it_was_sent() {
    let s = stack(yaml).await;
    let delay = Duration::from_millis(10);
    s.primary
        .script([Behavior::SlowStream { pieces: 300, delay }]);
    let mut body = hello();
    body["stream"] = json!(true);
    let res = s.post("/v1/chat/completions", A, &body).await;
    assert_eq!(res.status(), 200);
    let mut chunks = res.bytes_stream();
    let mut text = String::new();
    while text.matches("\"content\":\" tok\"").count() < 10 {
        text.push_str(&String::from_utf8_lossy(
            &chunks.next().await.unwrap().unwrap(),
        ));
    }
    drop(chunks);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (model, status, ending, prompt, completion, certainty) = last_row(&s);
    assert_eq!(
        (model.as_str(), status, ending.as_str()),
        ("gpt-4", 499, "client_gone")
    );
    // The prompt at its cl100k count, and every " tok" the gateway was
    // sent: at least the 10 the client read, far fewer than all 300.
    assert_eq!(prompt, 9);
    assert!((10..100).contains(&completion), "{completion}");
    assert_eq!(certainty, "estimated");
}

#[tokio::test]
async fn a_stream_its_upstream_breaks_pays_for_what_it_sent() {
    let s = stack(yaml).await;
    s.primary.script([Behavior::DropMidStream]);
    let mut body = hello();
    body["stream"] = json!(true);
    let text = s
        .post("/v1/chat/completions", A, &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("\"error\"") && !text.contains("[DONE]"),
        "{text}"
    );
    // "Hello" and " from" came before the break: two cl100k tokens.
    assert_eq!(
        last_row(&s),
        (
            "gpt-4".into(),
            200,
            "upstream_broke".into(),
            9,
            2,
            "estimated".into()
        )
    );
}

#[tokio::test]
async fn an_answer_without_believable_usage_is_counted_not_free() {
    let s = stack(yaml).await;
    let absurd =
        json!({"prompt_tokens": u64::MAX / 2, "completion_tokens": 1u64 << 60, "total_tokens": 0});
    for usage in [Value::Null, json!({"tokens": "many"}), absurd] {
        s.primary.script([Behavior::Usage(usage.clone())]);
        let res = s.post("/v1/chat/completions", A, &hello()).await;
        assert_eq!(res.status(), 200, "{usage}");
        // 9 prompt tokens at $30/M and "Hello from the fake upstream."
        // (6 cl100k tokens) at $60/M.
        assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.00063", "{usage}");
        assert_eq!(
            last_row(&s),
            (
                "gpt-4".into(),
                200,
                "complete".into(),
                9,
                6,
                "estimated".into()
            ),
            "{usage}"
        );
    }
    let metrics = s.get_with("/metrics", OPS).await.text().await.unwrap();
    assert!(
        metrics.contains("tollgate_usage_estimated_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn n_choices_are_reserved_n_times() {
    let s = stack(yaml).await;
    // Key c has $0.002. One choice of at most 10 tokens reserves
    // 9 × $30/M + 10 × $60/M = $0.00087, and is billed $0.0006.
    let mut body = hello();
    body["max_tokens"] = json!(10);
    assert_eq!(s.post("/v1/chat/completions", C, &body).await.status(), 200);
    // Four choices reserve $0.00267: more than the $0.0014 left.
    body["n"] = json!(4);
    let res = s.post("/v1/chat/completions", C, &body).await;
    assert_eq!(res.status(), 429);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert_eq!(
        s.primary.hits(),
        1,
        "the refused request never went upstream"
    );
}

#[tokio::test]
async fn the_reserved_output_bound_is_sent_when_the_client_sets_none() {
    let s = stack(yaml).await;
    for (model, field, bound) in [
        ("capped", "max_tokens", 123),
        ("reasoner", "max_completion_tokens", 77),
    ] {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(s.post("/v1/chat/completions", A, &body).await.status(), 200);
        let sent = s.primary.requests().last().unwrap().body.clone();
        assert_eq!(sent[field], bound, "{sent}");
    }
    // A client's own bound is sent as it is.
    let body = json!({"model": "capped", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    s.post("/v1/chat/completions", A, &body).await;
    let sent = s.primary.requests().last().unwrap().body.clone();
    assert_eq!(
        (
            sent["max_tokens"].clone(),
            sent.get("max_completion_tokens")
        ),
        (json!(5), None)
    );
}

#[tokio::test]
async fn an_image_request_does_not_raise_another_keys_plain_text_reservations() {
    let s = stack(yaml).await;
    // Key a: an image, billed 765 tokens where its text counts a dozen.
    let image = json!({"model": "gpt-4", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});
    for _ in 0..2 {
        assert_eq!(
            s.post("/v1/chat/completions", A, &image).await.status(),
            200
        );
    }
    // Key b ($0.001): plain text reserves 9 × $30/M + 5 × $60/M = $0.00057,
    // not the image's ratio (over $0.01).
    let mut plain = hello();
    plain["max_tokens"] = json!(5);
    let res = s.post("/v1/chat/completions", B, &plain).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

#[tokio::test]
async fn hostile_model_names_are_stored_cleaned_and_capped() {
    let s = stack(yaml).await;
    let huge = "m".repeat(1 << 20);
    for name in ["\u{0}", "gpt\u{0}-4\n", huge.as_str()] {
        let body = json!({"model": name, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(s.post("/v1/chat/completions", A, &body).await.status(), 404);
    }
    assert_eq!(
        s.post("/v1/chat/completions", A, &hello()).await.status(),
        200
    );
    let rows = s.rows::<String, u16, String, String, String, String>(
        "requested_model, status, model, ending, key_id, certainty",
    );
    let names: Vec<(String, u16)> = rows.iter().map(|r| (r.0.clone(), r.1)).collect();
    assert_eq!(
        names,
        [
            ("\u{fffd}".into(), 404),
            ("gpt\u{fffd}-4\u{fffd}".into(), 404),
            ("m".repeat(256), 404),
            ("gpt-4".into(), 200)
        ]
    );
}

#[tokio::test]
async fn metrics_need_an_admin_key() {
    let s = stack(yaml).await;
    let anyone = reqwest::get(format!("{}/metrics", s.url)).await.unwrap();
    assert_eq!(anyone.status(), 401);
    let user = s.get_with("/metrics", A).await;
    assert_eq!(user.status(), 403);
    let e: Value = user.json().await.unwrap();
    assert_eq!(e["error"]["type"], "permission_error");
    let ops = s.get_with("/metrics", OPS).await;
    assert_eq!(ops.status(), 200);
    let text = ops.text().await.unwrap();
    assert!(
        text.contains("tollgate_budget_remaining_usd{budget=\"key:b/month\""),
        "{text}"
    );
}

#[tokio::test]
async fn posts_must_be_json_and_basic_auth_opens_the_dashboard_only() {
    let s = stack(yaml).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", s.url);
    let body = hello().to_string();
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut req = http.post(&url).bearer_auth(A).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 415, "{ct:?}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unsupported_media_type");
    }
    let ok = http
        .post(&url)
        .bearer_auth(A)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // What a browser replays to every path once logged in to the dashboard.
    let basic = http
        .post(&url)
        .basic_auth("me", Some(OPS))
        .json(&hello())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
    let page = http
        .get(format!("{}/dashboard", s.url))
        .basic_auth("me", Some(OPS))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(s.primary.hits(), 1, "only the JSON request went upstream");
}

const D: &str = "tg_escapes_d";

fn refusals(primary: &str, _backup: &str, ledger: &str) -> String {
    format!(
        r#"
version: 1
ledger: "sqlite:{ledger}"
server: {{ metrics: open }}
providers:
  primary: {{ kind: openai, base_url: "{primary}", api_key: upstream-secret, timeout: 5s }}
models:
  first: {{ provider: primary, price: {{ input: 30, output: 60 }} }}
  second: {{ provider: primary, price: {{ input: 30, output: 60 }} }}
aliases: {{ any: router }}
routes:
  - {{ name: main, to: first, fallback: [second] }}
keys:
  - {{ id: a, team: one, hash: "{}" }}
  - {{ id: d, team: two, hash: "{}" }}
rate_limits:
  - {{ scope: {{ model: first }}, requests_per_minute: 1 }}
  - {{ scope: {{ model: second }}, requests_per_minute: 1 }}
budgets:
  - {{ scope: {{ key: d }}, limit_usd: 0.000001, period: month, on_exhausted: downgrade }}
"#,
        hash(A),
        hash(D)
    )
}

#[tokio::test]
async fn every_endpoint_refuses_alike_through_one_attempt_loop() {
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "any", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/completions",
            json!({"model": "any", "prompt": "hi", "max_tokens": 5}),
        ),
        ("/v1/embeddings", json!({"model": "any", "input": "hi"})),
    ] {
        let s = stack(refusals).await;
        let first = s.post(path, A, &body).await;
        assert_eq!(first.status(), 200, "{path}");
        assert_eq!(first.headers()["x-tollgate-model"], "first", "{path}");
        // `first` is over its own limit: `second` answers, and says why.
        let second = s.post(path, A, &body).await;
        assert_eq!(second.status(), 200, "{path}");
        assert_eq!(second.headers()["x-tollgate-model"], "second", "{path}");
        let reason = second.headers()["x-tollgate-reason"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            reason.contains("first skipped: rate limited"),
            "{path}: {reason}"
        );
        // Both over their limits: a 429 with Retry-After, not a 503.
        let third = s.post(path, A, &body).await;
        assert_eq!(third.status(), 429, "{path}");
        assert!(third.headers().contains_key("retry-after"), "{path}");
        let e: Value = third.json().await.unwrap();
        assert_eq!(e["error"]["code"], "rate_limit_exceeded", "{path}");
        assert_eq!(s.primary.hits(), 2, "{path}");
        // A downgrade budget that covers no model of the chain: 429
        // insufficient_quota, counted as two downgrades and one rejection.
        let s = stack(refusals).await;
        let broke = s.post(path, D, &body).await;
        assert_eq!(broke.status(), 429, "{path}");
        let e: Value = broke.json().await.unwrap();
        assert_eq!(e["error"]["code"], "insufficient_quota", "{path}");
        let metrics = reqwest::get(format!("{}/metrics", s.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in [
            "tollgate_budget_downgrades_total 2",
            "tollgate_budget_rejections_total 1",
        ] {
            assert!(metrics.contains(line), "{path}: {line}\n{metrics}");
        }
        assert_eq!(s.primary.hits(), 0, "{path}");
    }
}
