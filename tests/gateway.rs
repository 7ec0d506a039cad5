//! Full-stack tests: a real gateway in-process, a fake upstream on port 0,
//! and plain HTTP in between.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake};
use support::{policy, sse_chunks, sse_events, start, KEY, LIMITED_KEY};

struct Setup {
    url: String,
    primary: Fake,
    backup: Fake,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    setup_with_timeout("2s").await
}

async fn setup_with_timeout(timeout: &str) -> Setup {
    let primary = Fake::start().await;
    let backup = Fake::start().await;
    let addr = start(&policy(&primary.base_url(), &backup.base_url(), timeout)).await;
    Setup {
        url: format!("http://{addr}"),
        primary,
        backup,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    async fn chat(&self, body: Value) -> reqwest::Response {
        chat_as(&self.url, KEY, body).await
    }
}

async fn chat_as(base: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

async fn error_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    let e = &body["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(e.get(field).is_some(), "error body lacks `{field}`: {body}");
    }
    (status, body)
}

#[tokio::test]
async fn non_streaming_answer_carries_route_model_and_cost() {
    let s = setup().await;
    let res = s.chat(hello("auto")).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-route"], "main");
    assert_eq!(h["x-tollgate-model"], "gpt-4");
    assert!(h["x-request-id"].to_str().unwrap().starts_with("req_"));
    // The fake counts 6 prompt tokens: 6 × $30/M + 7 × $60/M = $0.0006.
    assert_eq!(h["x-tollgate-cost-usd"], "0.0006");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["model"], "gpt-4", "the body names the policy model");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the fake upstream."
    );
    assert_eq!(body["usage"]["completion_tokens"], 7);

    let sent = &s.primary.requests()[0];
    assert_eq!(
        sent.body["model"], "gpt-4-0613",
        "upstream_model is sent upstream"
    );
    assert_eq!(sent.headers["authorization"], "Bearer upstream-secret");
    let all_headers = format!("{:?}", sent.headers);
    assert!(
        !all_headers.contains(KEY),
        "the client key must not reach the upstream"
    );
}

#[tokio::test]
async fn request_id_from_the_client_is_kept() {
    let s = setup().await;
    let res = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(KEY)
        .header("x-request-id", "client-id-42")
        .json(&hello("auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-id-42");
}

#[tokio::test]
async fn stream_relays_chunks_in_order_with_done_last() {
    let s = setup().await;
    let mut body = hello("auto");
    body["stream"] = json!(true);
    let res = s.chat(body).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-4");
    let text = res.text().await.unwrap();
    let (chunks, content) = sse_chunks(&text);
    assert_eq!(content, "Hello from the fake upstream.");
    assert!(chunks.iter().all(|c| c["model"] == "gpt-4"));
    // The client did not ask for usage: no usage chunk, no usage field.
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{text}");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    // ...but the gateway asked the upstream for it, for accounting.
    assert_eq!(
        s.primary.requests()[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn stream_usage_chunk_reaches_clients_that_ask() {
    let s = setup().await;
    let mut body = hello("auto");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = s.chat(body).await.text().await.unwrap();
    let events = sse_events(&text);
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn openai_parameters_pass_through_untouched() {
    let s = setup().await;
    let extra = json!({
        "tools": [{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "n": 2, "stop": ["\n\n", "END"], "response_format": {"type": "json_object"},
        "seed": 1234, "temperature": 0.2, "max_tokens": 99, "user": "u-1", "logit_bias": {"50256": -100}
    });
    let mut body = hello("gpt-4");
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let res = s.chat(body).await;
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        answer["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent = &s.primary.requests()[0].body;
    for (k, v) in extra.as_object().unwrap() {
        assert_eq!(&sent[k], v, "`{k}` changed on its way upstream");
    }
}

#[tokio::test]
async fn falls_back_to_the_next_model_on_500() {
    let s = setup().await;
    s.primary.script([Behavior::Status(500)]);
    let res = s.chat(hello("auto")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    assert_eq!(
        res.headers()["x-tollgate-reason"],
        "rule main: model=auto; fell back to gpt-3.5-turbo after status 500"
    );
    let sent: Vec<String> = s
        .primary
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["gpt-4-0613", "gpt-3.5-turbo"]);
}

#[tokio::test]
async fn falls_back_on_429_then_across_providers() {
    let s = setup().await;
    s.primary
        .script([Behavior::Status(429), Behavior::Status(503)]);
    let res = s.chat(hello("auto")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "backup-model");
    assert_eq!((s.primary.hits(), s.backup.hits()), (2, 1));
}

#[tokio::test]
async fn falls_back_when_the_upstream_times_out() {
    let s = setup_with_timeout("300ms").await;
    s.primary.script([
        Behavior::Delay(Duration::from_secs(5)),
        Behavior::Delay(Duration::from_secs(5)),
    ]);
    let started = Instant::now();
    let res = s.chat(hello("auto")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "backup-model");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stream_that_closes_before_its_first_event_falls_back() {
    let s = setup().await;
    s.primary.script([Behavior::CloseBeforeFirstEvent]);
    let mut body = hello("auto");
    body["stream"] = json!(true);
    let res = s.chat(body).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    let text = res.text().await.unwrap();
    assert_eq!(sse_events(&text).last().unwrap(), "[DONE]");
}

#[tokio::test]
async fn a_stream_broken_mid_way_ends_with_an_error_event_and_is_not_restarted() {
    let s = setup().await;
    s.primary.script([Behavior::DropMidStream]);
    let mut body = hello("auto");
    body["stream"] = json!(true);
    let res = s.chat(body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let events = sse_events(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!text.contains("[DONE]"));
    assert!(
        text.contains("Hello"),
        "the part already relayed stays: {text}"
    );
    assert_eq!((s.primary.hits(), s.backup.hits()), (1, 0));
}

#[tokio::test]
async fn every_model_down_is_a_502_with_a_generic_message() {
    // Nothing listens on these ports.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let addr = start(&policy(&dead, &dead, "1s")).await;
    let res = chat_as(&format!("http://{addr}"), KEY, hello("auto")).await;
    let (status, body) = error_of(res).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["type"], "server_error");
    assert!(!body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1"));
}

#[tokio::test]
async fn upstream_rate_limits_on_every_model_reach_the_client_as_429() {
    let s = setup().await;
    s.primary
        .script([Behavior::Status(429), Behavior::Status(429)]);
    s.backup.script([Behavior::Status(429)]);
    let res = s.chat(hello("auto")).await;
    assert_eq!(res.headers()["retry-after"], "1");
    let (status, body) = error_of(res).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("rate_limit_exceeded"))
    );
}

#[tokio::test]
async fn an_invalid_request_reported_by_the_upstream_is_passed_on_without_fallback() {
    let s = setup().await;
    s.primary.script([Behavior::Status(400)]);
    let (status, body) = error_of(s.chat(hello("auto")).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_function_parameters");
    assert_eq!(s.primary.hits() + s.backup.hits(), 1);
}

#[tokio::test]
async fn bad_inputs_get_openai_shaped_errors() {
    let s = setup().await;
    let post = |body: &'static str| {
        s.http
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (st, b) = error_of(post("{\"model\": ").await.unwrap()).await;
    assert_eq!(
        (st, b["error"]["type"].as_str()),
        (400, Some("invalid_request_error"))
    );
    let (st, b) = error_of(post(r#"{"model":"auto"}"#).await.unwrap()).await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("messages")));
    let (st, b) = error_of(
        post(r#"{"messages":[{"role":"user","content":"x"}]}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((st, b["error"]["param"].as_str()), (400, Some("model")));
    let (st, b) = error_of(
        post(r#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (404, Some("model_not_found"))
    );

    let big = format!(
        r#"{{"model":"auto","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(70 * 1024)
    );
    let res = s
        .http
        .post(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (st, b) = error_of(res).await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (413, Some("request_too_large"))
    );

    let res = s
        .http
        .get(format!("{}/v1/nope", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 404);
    let res = s
        .http
        .get(format!("{}/v1/chat/completions", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 405);
    assert_eq!(s.primary.hits(), 0, "no bad request reaches the upstream");
}

#[tokio::test]
async fn auth_denies_by_default_except_healthz() {
    let s = setup().await;
    let health = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for path in ["/v1/models", "/readyz", "/v1/chat/completions", "/anything"] {
        let res = s.http.get(format!("{}{path}", s.url)).send().await.unwrap();
        let (st, b) = error_of(res).await;
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (401, Some("invalid_api_key")),
            "{path}"
        );
    }
    let res = chat_as(&s.url, "tg_wrong", hello("auto")).await;
    assert_eq!(error_of(res).await.0, 401);
    let ready = s
        .http
        .get(format!("{}/readyz", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(s.primary.hits(), 0);
}

#[tokio::test]
async fn models_lists_what_the_key_may_use() {
    let s = setup().await;
    let ids = |v: Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all: Value = s
        .http
        .get(format!("{}/v1/models", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["object"], "list");
    let mut got = ids(all);
    got.sort();
    assert_eq!(got, ["auto", "backup-model", "gpt-3.5-turbo", "gpt-4"]);
    let limited: Value = s
        .http
        .get(format!("{}/v1/models", s.url))
        .bearer_auth(LIMITED_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(limited), ["gpt-3.5-turbo"]);

    let res = chat_as(&s.url, LIMITED_KEY, hello("gpt-4")).await;
    assert_eq!(error_of(res).await.0, 404);
    let one = s
        .http
        .get(format!("{}/v1/models/gpt-4", s.url))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(one.json::<Value>().await.unwrap()["owned_by"], "primary");
}

#[tokio::test]
async fn a_policy_without_keys_needs_allow_anonymous() {
    let yaml = policy("http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1", "1s");
    let no_keys = yaml.split("keys:").next().unwrap().to_string() + "retry: { max_attempts: 1 }\n";
    let p = tollgate::policy::load_str("t.yaml", &no_keys, std::path::Path::new("."), &|_| None)
        .unwrap();
    let err = tollgate::gateway::Gateway::new(p, &Default::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("--allow-anonymous"));
}

#[tokio::test]
async fn a_model_without_an_api_key_is_skipped() {
    let fake = Fake::start().await;
    let yaml = format!(
        r#"
version: 1
ledger: none
providers:
  nokey: {{ kind: openai, base_url: "{0}", api_key: "${{MISSING_KEY:-}}" }}
  up: {{ kind: openai, base_url: "{0}", api_key: upstream-secret }}
models:
  gpt-4: {{ provider: nokey, price: {{ input: 30, output: 60 }} }}
  cheap: {{ provider: up, price: {{ input: 1, output: 1 }} }}
aliases: {{ auto: router }}
routes:
  - {{ name: r, to: gpt-4, fallback: [cheap] }}
keys: [{{ id: k, team: t, hash: "{1}" }}]
"#,
        fake.base_url(),
        support::hash(KEY)
    );
    let addr = start(&yaml).await;
    let res = chat_as(&format!("http://{addr}"), KEY, hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "cheap");
    let res = chat_as(&format!("http://{addr}"), KEY, hello("gpt-4")).await;
    let (st, _) = error_of(res).await;
    assert_eq!(st, 503);
    assert_eq!(fake.hits(), 1);
}

#[tokio::test]
async fn requests_are_classified_and_routed_by_task() {
    let fake = Fake::start().await;
    let yaml = format!(
        r#"
version: 1
ledger: none
providers:
  up: {{ kind: openai, base_url: "{}", api_key: upstream-secret }}
models:
  gpt-4: {{ provider: up, price: {{ input: 30, output: 60 }} }}
  gpt-3.5-turbo: {{ provider: up, price: {{ input: 0.5, output: 1.5 }} }}
aliases: {{ auto: router }}
routes:
  - {{ name: code-to-strong, when: {{ task: [code, math] }}, to: gpt-4 }}
  - {{ name: default, to: gpt-3.5-turbo }}
keys: [{{ id: k, team: t, hash: "{}" }}]
"#,
        fake.base_url(),
        support::hash(KEY)
    );
    let url = format!("http://{}", start(&yaml).await);
    let code = json!({"model": "auto", "messages": [{"role": "user",
        "content": "Write a Python function that merges two sorted lists."}]});
    let res = chat_as(&url, KEY, code).await;
    let h = res.headers();
    assert_eq!(h["x-tollgate-task"], "code");
    assert_eq!(h["x-tollgate-route"], "code-to-strong");
    assert_eq!(h["x-tollgate-model"], "gpt-4");
    assert_eq!(h["x-tollgate-reason"], "rule code-to-strong: task=code");
    assert!(h.contains_key("x-tollgate-complexity"));
    let score: f64 = h["x-tollgate-strong-score"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&score));

    let hello = json!({"model": "auto", "messages": [{"role": "user", "content": "hi there"}]});
    let res = chat_as(&url, KEY, hello).await;
    assert_eq!(res.headers()["x-tollgate-task"], "chat");
    assert_eq!(res.headers()["x-tollgate-complexity"], "low");
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-3.5-turbo");
}

/// Three models with growing context windows, all on one fake upstream.
fn context_policy(base: &str) -> String {
    format!(
        r#"
version: 1
ledger: none
providers:
  up: {{ kind: openai, base_url: "{base}", api_key: upstream-secret, timeout: 2s }}
models:
  small: {{ provider: up, price: {{ input: 0.1, output: 0.1 }}, context: 64 }}
  medium: {{ provider: up, price: {{ input: 1, output: 1 }}, context: 400 }}
  large: {{ provider: up, price: {{ input: 10, output: 10 }}, context: 2000 }}
aliases: {{ auto: router }}
routes:
  - {{ name: cheapest-that-fits, to: small, fallback: [medium, large] }}
keys:
  - {{ id: full, team: core, hash: "{}" }}
"#,
        support::hash(KEY)
    )
}

#[tokio::test]
async fn requests_skip_models_whose_context_they_do_not_fit() {
    let up = Fake::start().await;
    let url = format!("http://{}", start(&context_policy(&up.base_url())).await);
    let short =
        json!({"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 20});
    let res = chat_as(&url, KEY, short).await;
    assert_eq!(res.headers()["x-tollgate-model"], "small");
    let reason = res.headers()["x-tollgate-reason"].to_str().unwrap();
    assert!(!reason.contains("skipped"), "{reason}");

    // ~150 prompt tokens (cl100k): too big for `small`, fits `medium`.
    let words = "apple ".repeat(150);
    let long = json!({"model": "auto", "messages": [{"role": "user", "content": words}], "max_tokens": 100});
    let res = chat_as(&url, KEY, long.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "medium");
    let reason = res.headers()["x-tollgate-reason"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("small skipped: needs 258 tokens, context 64"),
        "{reason}"
    );
    // The prompt never reached the small model.
    let sent: Vec<String> = up
        .requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, ["small", "medium"]);

    // max_tokens counts too: the same prompt asking for 1,000 tokens skips two.
    let mut big = long.clone();
    big["max_tokens"] = json!(1000);
    let res = chat_as(&url, KEY, big).await;
    assert_eq!(res.headers()["x-tollgate-model"], "large");
    let reason = res.headers()["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.contains("small skipped")
            && reason.contains("medium skipped: needs 1158 tokens, context 400"),
        "{reason}"
    );

    // Fits nowhere: OpenAI's 400 context_length_exceeded, nothing sent upstream.
    let before = up.hits();
    let mut huge = long;
    huge["max_tokens"] = json!(5000);
    let (status, body) = error_of(chat_as(&url, KEY, huge).await).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["param"], "messages");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("5158 tokens") && msg.contains("2000"), "{msg}");
    assert_eq!(up.hits(), before);
}

#[tokio::test]
async fn a_failing_upstream_is_cut_out_by_its_circuit_and_probed_back() {
    let primary = Fake::start().await;
    let backup = Fake::start().await;
    let yaml = policy(&primary.base_url(), &backup.base_url(), "2s")
        + "circuit_breaker: { failures: 2, cooldown: 300ms }\n";
    let url = format!("http://{}", start(&yaml).await);
    // Two requests: gpt-4 and gpt-3.5-turbo (both on `primary`) fail twice
    // each, the backup answers. Both circuits are open after that.
    primary.script(std::iter::repeat_n(Behavior::Status(500), 4));
    for _ in 0..2 {
        let res = chat_as(&url, KEY, hello("auto")).await;
        assert_eq!(res.headers()["x-tollgate-model"], "backup-model");
    }
    assert_eq!(primary.hits(), 4);
    // While open, the primary is not even tried.
    let res = chat_as(&url, KEY, hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "backup-model");
    assert_eq!(primary.hits(), 4);
    let metrics = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tollgate_circuit_open{model=\"gpt-4\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("tollgate_circuit_open{model=\"backup-model\"} 0"));
    assert!(
        metrics.contains("tollgate_upstream_errors_total{model=\"gpt-4\",kind=\"status 500\"} 2"),
        "{metrics}"
    );
    // After the cool-down one probe goes through; it succeeds and closes it.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let res = chat_as(&url, KEY, hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-4");
    let res = chat_as(&url, KEY, hello("auto")).await;
    assert_eq!(res.headers()["x-tollgate-model"], "gpt-4");
    assert_eq!(primary.hits(), 6);
}

#[tokio::test]
async fn a_stream_past_the_total_timeout_ends_with_an_error_event() {
    let slow = Fake::start_with(support::fake_openai::Options {
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let yaml = format!(
        r#"
version: 1
ledger: none
providers:
  up: {{ kind: openai, base_url: "{}", api_key: upstream-secret, timeout: 5s, connect_timeout: 1s, total_timeout: 350ms }}
models:
  gpt-4: {{ provider: up }}
keys:
  - {{ id: full, team: core, hash: "{}" }}
"#,
        slow.base_url(),
        support::hash(KEY)
    );
    let url = format!("http://{}", start(&yaml).await);
    let started = Instant::now();
    let mut body = hello("gpt-4");
    body["stream"] = json!(true);
    let text = chat_as(&url, KEY, body).await.text().await.unwrap();
    let events = sse_events(&text);
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{text}");
    assert!(!text.contains("[DONE]"));
    // Cut at the deadline, not after the whole 8 × 100 ms stream.
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}
