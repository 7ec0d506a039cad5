//! Claude models behind the gateway: Chat Completions (and Responses)
//! requests answered by an `anthropic` provider (the fake Anthropic
//! upstream in `support::fake_anthropic`), translated both ways, JSON and
//! streamed, with every usage part priced into the ledger, budgets that
//! refuse, and what Messages cannot carry refused with a clear 400.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_anthropic::{FakeAnthropic, KEY as ANTHROPIC_KEY};
use support::{hash, serve, sse_chunks};
use tollgate::gateway::{Gateway, Options};

const KEY: &str = "tg_claude_key";

async fn gateway(up: &FakeAnthropic, ledger: &str, budgets: &str) -> (String, Arc<Gateway>) {
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  claude: {{ kind: anthropic, base_url: \"{}\", api_key: {ANTHROPIC_KEY} }}\nmodels:\n  sonnet: {{ provider: claude, upstream_model: claude-sonnet-4-5-20250929 }}\nkeys:\n  - {{ id: k, team: agents, hash: \"{}\" }}\n{budgets}\n",
        up.base_url(),
        hash(KEY)
    );
    let p = tollgate::policy::load_str("claude.yaml", &yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.warnings().is_empty(),
        "priced from the catalog: {:?}",
        p.warnings()
    );
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    (format!("http://{}", serve(gw.clone()).await), gw)
}

async fn post(url: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/{path}"))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn ask() -> Value {
    json!({"model": "sonnet", "max_tokens": 50, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say hello to the whole team please"}]})
}

#[tokio::test]
async fn chat_requests_are_answered_by_claude_and_priced_in_full() {
    // 13 input tokens at the fake's count (3 of system, 7 words + 3 for
    // the message): 8 read from the cache, 4 written, 1 plain.
    let up = FakeAnthropic::start(8, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let (url, gw) = gateway(&up, &ledger, "").await;
    let res = post(&url, "chat/completions", &ask()).await;
    assert_eq!(res.status(), 200);
    // claude-sonnet-4-5: $3/M input, $0.30 cache read, $3.75 cache write,
    // $15 output: 1 × 3 + 8 × 0.3 + 4 × 3.75 + 3 × 15 = 65.4 µ$.
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.0000654");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sonnet");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from Claude."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 13);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 8);
    // What went upstream: Messages, with the key and version, never ours.
    let (headers, sent) = up.requests().pop().unwrap();
    assert_eq!(headers["x-api-key"], ANTHROPIC_KEY);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert!(headers.get("authorization").is_none());
    assert_eq!(sent["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(sent["system"][0]["text"], "You are terse.");
    assert_eq!(sent["max_tokens"], 50);
    // Streamed: chat chunks, the usage chunk, [DONE]; the same cost.
    let mut streamed = ask();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let text = post(&url, "chat/completions", &streamed)
        .await
        .text()
        .await
        .unwrap();
    let (chunks, content) = sse_chunks(&text);
    assert_eq!(content, "Hello from Claude.");
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 3);
    // A tool call, both ways.
    let mut tools = ask();
    tools["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let body: Value = post(&url, "chat/completions", &tools)
        .await
        .json()
        .await
        .unwrap();
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
    tools["stream"] = json!(true);
    let text = post(&url, "chat/completions", &tools)
        .await
        .text()
        .await
        .unwrap();
    let (chunks, _) = sse_chunks(&text);
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(args, "{\"city\": \"Paris\"}");
    // Responses ingress, translated through chat.
    let res = post(
        &url,
        "responses",
        &json!({"model": "sonnet", "input": "Say hello", "max_output_tokens": 20}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["output"][0]["content"][0]["text"], "Hello from Claude.");
    // Every row: the usage parts and the price charged.
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let rows: Vec<(i64, i64, i64, i64, String)> = conn
        .prepare("SELECT prompt_tokens, cached_tokens, cache_write_tokens, cost_nanos, certainty FROM tollgate_ledger ORDER BY ts, rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 5, "{rows:?}");
    assert_eq!(rows[0], (13, 8, 4, 65_400, "exact".to_string()));
    assert_eq!(rows[1], rows[0], "streamed and not cost the same");
}

#[tokio::test]
async fn what_messages_cannot_carry_is_a_400_and_budgets_refuse() {
    let up = FakeAnthropic::start(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let budgets = "budgets:\n  - { scope: { team: agents }, limit_usd: 0.0001, period: day }";
    let (url, _gw) = gateway(&up, &ledger, budgets).await;
    let mut two = ask();
    two["n"] = json!(2);
    let res = post(&url, "chat/completions", &two).await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["param"], "n", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("several choices"),
        "{e}"
    );
    assert!(up.requests().is_empty(), "refused before any call");
    // $0.0001 cannot cover 50 output tokens at $15/M plus the prompt.
    let res = post(&url, "chat/completions", &ask()).await;
    assert_eq!(res.status(), 429);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "insufficient_quota", "{e}");
}

async fn messages(url: &str, key: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_ingress_reaches_claude_priced_and_in_anthropics_shapes() {
    let up = FakeAnthropic::start(8, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let budgets = "budgets:\n  - { scope: { team: agents }, limit_usd: 1, period: day }";
    let (url, gw) = gateway(&up, &ledger, budgets).await;
    support::verified(&gw);
    let ask = json!({"model": "sonnet", "max_tokens": 50, "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello to the whole team please"}]});
    let res = messages(&url, KEY, &ask).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-cost-usd"], "0.0000654");
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["type"], "message");
    assert_eq!(m["model"], "sonnet");
    assert_eq!(
        m["content"],
        json!([{"type": "text", "text": "Hello from Claude."}])
    );
    assert_eq!(m["stop_reason"], "end_turn");
    // Claude's own usage, passed on: 1 plain, 8 read, 4 written.
    assert_eq!(m["usage"]["cache_read_input_tokens"], 8);
    assert_eq!(m["usage"]["cache_creation_input_tokens"], 4);
    assert_eq!(m["usage"]["input_tokens"], 1);
    // Our key went nowhere; Anthropic's went upstream.
    let (headers, _) = up.requests().pop().unwrap();
    assert_eq!(headers["x-api-key"], ANTHROPIC_KEY);
    // Streamed: Anthropic's event sequence.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let text = messages(&url, KEY, &streamed).await.text().await.unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    assert!(text.contains(r#""output_tokens":3"#), "{text}");
    // Errors in Anthropic's shape: a bad key, an unknown model, no max_tokens.
    let e = messages(&url, "tg_wrong", &ask).await;
    assert_eq!(e.status(), 401);
    let e: Value = e.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "authentication_error");
    let mut unknown = ask.clone();
    unknown["model"] = json!("claude-9");
    let e = messages(&url, KEY, &unknown).await;
    assert_eq!(e.status(), 404);
    assert_eq!(
        e.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    let mut no_max = ask.clone();
    no_max.as_object_mut().unwrap().remove("max_tokens");
    let e = messages(&url, KEY, &no_max).await;
    assert_eq!(e.status(), 400);
    assert_eq!(
        e.json::<Value>().await.unwrap()["error"]["type"],
        "invalid_request_error"
    );
    // count_tokens, without calling anything.
    let calls = up.requests().len();
    let n: Value = reqwest::Client::new()
        .post(format!("{url}/v1/messages/count_tokens"))
        .header("x-api-key", KEY)
        .json(&json!({"model": "sonnet", "messages": ask["messages"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(n["input_tokens"].as_u64().unwrap() > 0, "{n}");
    assert_eq!(up.requests().len(), calls);
    // The rows: the same cost for both answers, the parts apart.
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let rows: Vec<(i64, i64, i64, String)> = conn
        .prepare("SELECT cached_tokens, cache_write_tokens, cost_nanos, ending FROM tollgate_ledger WHERE status = 200 ORDER BY ts, rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![(8, 4, 65_400, "complete".to_string()); 2]);
}

#[tokio::test]
async fn an_exhausted_budget_is_anthropics_rate_limit_error() {
    let up = FakeAnthropic::start(0, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let budgets = "budgets:\n  - { scope: { team: agents }, limit_usd: 0.0000001, period: day }";
    let (url, _gw) = gateway(&up, &ledger, budgets).await;
    let ask = json!({"model": "sonnet", "max_tokens": 50,
        "messages": [{"role": "user", "content": "Hello"}]});
    let res = messages(&url, KEY, &ask).await;
    assert_eq!(res.status(), 429);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("Budget"),
        "{e}"
    );
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn messages_to_claude_pass_through_unchanged_and_what_only_claude_takes_is_kept() {
    let up = FakeAnthropic::start(8, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let (url, gw) = gateway(&up, &ledger, "").await;
    // `top_k`, a document block and extended thinking: no chat equivalent.
    let ask = json!({"model": "sonnet", "max_tokens": 50, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "Notes."}},
            {"type": "text", "text": "Say hello to the whole team please"}]}]});
    let res = messages(&url, KEY, &ask).await;
    assert_eq!(res.status(), 200);
    let m: Value = res.json().await.unwrap();
    assert_eq!(m["id"], "msg_fake", "the upstream's own answer: {m}");
    assert_eq!(m["model"], "sonnet");
    // The upstream got the client's body, its model name aside.
    let (_, sent) = up.requests().pop().unwrap();
    // And the client's version and beta headers, in place of the provider's.
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-01-01")
        .header("anthropic-beta", "context-1m-2025-08-07")
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (headers, _) = up.requests().pop().unwrap();
    assert_eq!(headers["anthropic-version"], "2023-01-01");
    assert_eq!(headers["anthropic-beta"], "context-1m-2025-08-07");
    let mut expected = ask.clone();
    expected["model"] = json!("claude-sonnet-4-5-20250929");
    assert_eq!(sent, expected);
    // Streamed: the upstream's events, in order, as they came.
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let text = messages(&url, KEY, &streamed).await.text().await.unwrap();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    assert!(text.contains(r#""model":"sonnet""#), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    // Priced in full, streamed or not.
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let costs: Vec<(i64, String)> = conn
        .prepare("SELECT cost_nanos, certainty FROM tollgate_ledger ORDER BY ts, rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(costs.len(), 3);
    assert_eq!(costs[0], costs[1]);
    assert_eq!(costs[0], costs[2]);
    assert_eq!(costs[0].1, "exact");
}

#[tokio::test]
async fn what_only_a_messages_provider_takes_is_a_400_for_any_other_model() {
    let openai = support::fake_openai::Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\nmodels:\n  gpt-4: {{ provider: up }}\nkeys:\n  - {{ id: k, team: agents, hash: \"{}\" }}\n",
        openai.base_url(),
        hash(KEY)
    );
    let p = tollgate::policy::load_str("gpt.yaml", &yaml, Path::new("."), &|_| None).unwrap();
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    let url = format!("http://{}", serve(gw.clone()).await);
    let ask = json!({"model": "gpt-4", "max_tokens": 20, "top_k": 5,
        "messages": [{"role": "user", "content": "Hello"}]});
    let res = messages(&url, KEY, &ask).await;
    assert_eq!(res.status(), 400);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["type"], "invalid_request_error");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("top_k") && msg.contains("Messages"), "{msg}");
    assert_eq!(openai.hits(), 0);
    // Without it, GPT answers the Messages client.
    let mut plain = ask.clone();
    plain.as_object_mut().unwrap().remove("top_k");
    let m: Value = messages(&url, KEY, &plain).await.json().await.unwrap();
    assert_eq!(
        m["content"][0]["text"], "Hello from the fake upstream.",
        "{m}"
    );
}

/// An Anthropic upstream that answers every request with the golden
/// fixtures (`tests/fixtures/anthropic/golden.json`), as JSON or events.
async fn golden_anthropic() -> (String, Value) {
    use axum::response::IntoResponse;
    let golden: Value =
        serde_json::from_str(include_str!("fixtures/anthropic/golden.json")).unwrap();
    let g = golden.clone();
    let app = axum::Router::new().route(
        "/v1/messages",
        axum::routing::post(move |axum::Json(req): axum::Json<Value>| {
            let g = g.clone();
            async move {
                if req["stream"] != json!(true) {
                    return axum::Json(g["message"].clone()).into_response();
                }
                let body: String = g["stream"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
                    .collect();
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), golden)
}

#[tokio::test]
async fn golden_claude_answers_are_priced_to_the_nano_dollar_on_every_path() {
    let (base, golden) = golden_anthropic().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
        "version: 1\nledger: \"sqlite:{ledger}\"\nproviders:\n  claude: {{ kind: anthropic, base_url: \"{base}\", api_key: k }}\nmodels:\n  sonnet: {{ provider: claude, upstream_model: claude-sonnet-4-5-20250929 }}\nkeys:\n  - {{ id: k, team: agents, hash: \"{}\" }}\n",
        hash(KEY)
    );
    let p = tollgate::policy::load_str("golden.yaml", &yaml, Path::new("."), &|_| None).unwrap();
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    let url = format!("http://{}", serve(gw.clone()).await);
    // 21 × $3/M + 188,086 × $3.75/M (cache write) + 393 × $15/M = $0.7112805.
    let cost = "0.7112805";
    let chat = json!({"model": "sonnet", "max_tokens": 500, "messages": [{"role": "user", "content": "Hi"}]});
    let res = post(&url, "chat/completions", &chat).await;
    assert_eq!(res.headers()["x-tollgate-cost-usd"], cost);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hi! My name is Claude."
    );
    let mut streamed = chat.clone();
    streamed["stream"] = json!(true);
    let text = post(&url, "chat/completions", &streamed)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(sse_chunks(&text).1, "Hi! My name is Claude.");
    // Messages, passed through: the golden answer, the model renamed.
    let ask = json!({"model": "sonnet", "max_tokens": 500, "messages": [{"role": "user", "content": "Hi"}]});
    let res = messages(&url, KEY, &ask).await;
    assert_eq!(res.headers()["x-tollgate-cost-usd"], cost);
    let mut expected = golden["message"].clone();
    expected["model"] = json!("sonnet");
    assert_eq!(res.json::<Value>().await.unwrap(), expected);
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    let text = messages(&url, KEY, &streamed).await.text().await.unwrap();
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let mut expected = golden["stream"].as_array().unwrap().clone();
    expected[0]["message"]["model"] = json!("sonnet");
    assert_eq!(events, expected);
    assert!(gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let rows: Vec<(i64, i64, i64, i64)> = conn
        .prepare("SELECT prompt_tokens, cache_write_tokens, completion_tokens, cost_nanos FROM tollgate_ledger ORDER BY ts, rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        vec![(188_107, 188_086, 393, 711_280_500); 4],
        "chat, chat stream, messages, messages stream"
    );
}
