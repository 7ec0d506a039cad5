//! `POST /v1/responses` end to end: passthrough to a provider that speaks
//! the Responses API (JSON and every event in order), translation for a
//! provider marked `chat_only` (JSON and streams), classification and
//! routing of `auto`, fallback, budgets, the cache, the ledger, and the
//! 400s for state only a Responses upstream can hold.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::Behavior;
use support::{hash, stack, Stack};

const KEY: &str = "tg_responses_key";

/// `native` (the primary fake) speaks Responses; `vllm` (the backup
/// fake) is marked chat-only.
async fn setup(extra: &str) -> Stack {
    stack(|native, chat, ledger| {
        format!(
            r#"
version: 1
ledger: "sqlite:{ledger}"
providers:
  native: {{ kind: openai, base_url: "{}", api_key: upstream-secret, timeout: 2s }}
  vllm: {{ kind: openai, base_url: "{}", api_key: upstream-secret, timeout: 2s, chat_only: true }}
models:
  gpt-4o: {{ provider: native, price: {{ input: 2.5, output: 10 }} }}
  llama: {{ provider: vllm, upstream_model: meta-llama, price: {{ input: 0.1, output: 0.1 }} }}
aliases: {{ auto: router, cheap: router, chatonly: router }}
routes:
  - name: chat-only
    when: {{ model: [chatonly] }}
    to: llama
  - name: cheap
    when: {{ model: [cheap] }}
    to: llama
    fallback: [gpt-4o]
  - name: native-first
    to: gpt-4o
    fallback: [llama]
keys:
  - {{ id: k, team: agents, hash: "{}" }}
cache: {{ ttl: 60s }}
{extra}
"#,
            native,
            chat,
            hash(KEY)
        )
    })
    .await
}

async fn post(s: &Stack, body: &Value) -> reqwest::Response {
    s.post("/v1/responses", KEY, body).await
}

/// (event type, data) of a Responses event stream.
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let (head, data) = f.split_once("\ndata: ").unwrap_or(("", f));
            let kind = head.strip_prefix("event: ").unwrap_or("").to_string();
            let data = data.strip_prefix("data: ").unwrap_or(data);
            (kind, serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn rows(s: &Stack) -> Vec<(String, i64, i64, i64, String, u16)> {
    s.rows("model, prompt_tokens, completion_tokens, cost_nanos, ending, status")
}

#[tokio::test]
async fn a_responses_provider_gets_the_body_untouched_json_and_stream() {
    let s = setup("").await;
    let body = json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "Say hello to the team",
        "previous_response_id": "resp_prev", "store": true, "include": ["reasoning.encrypted_content"]});
    let res = post(&s, &body).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "gpt-4o");
    assert!(!h["x-tollgate-reason"]
        .to_str()
        .unwrap()
        .contains("translated"));
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(
        r["model"], "gpt-4o",
        "the policy's name, not the upstream's"
    );
    assert_eq!(
        r["output"][0]["content"][0]["text"],
        "Hello from the fake upstream."
    );
    assert_eq!(r["previous_response_id"], "resp_prev");
    // 2 instruction words + 5 input words + 4, at $2.5/M; 5 output at $10/M.
    assert_eq!(r["usage"]["input_tokens"], 11);
    assert_eq!(h["x-tollgate-cost-usd"], "0.0000775");
    let sent = &s.primary.requests()[0].body;
    assert_eq!(*sent, body, "passed through as sent");

    let res = post(
        &s,
        &json!({"model": "gpt-4o", "input": "Say hello", "stream": true, "max_output_tokens": 3}),
    )
    .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    let evs = events(&text);
    let kinds: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds[0], "response.created");
    assert_eq!(*kinds.last().unwrap(), "response.incomplete");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "response.output_text.delta")
            .count(),
        3
    );
    for (i, (kind, e)) in evs.iter().enumerate() {
        assert_eq!(e["type"], json!(kind));
        assert_eq!(e["sequence_number"], json!(i), "in order");
    }
    assert_eq!(evs[0].1["response"]["model"], "gpt-4o");
    assert!(!text.contains("[DONE]"));
    let r = rows(&s);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0],
        ("gpt-4o".into(), 11, 5, 77_500, "complete".into(), 200)
    );
    // The stream's usage came from its terminal event: 2 + 4 in, 3 out.
    assert_eq!((r[1].1, r[1].2, r[1].4.as_str()), (6, 3, "complete"));
}

#[tokio::test]
async fn a_chat_only_provider_is_translated_both_ways() {
    let s = setup("").await;
    let res = post(
        &s,
        &json!({"model": "cheap", "instructions": "Be brief.", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]}],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "max_output_tokens": 40}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "llama");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.contains("llama answered through Chat Completions"),
        "{reason}"
    );
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["object"], "response");
    assert_eq!(r["model"], "llama");
    assert_eq!(r["output"][0]["type"], "function_call");
    assert_eq!(r["output"][0]["name"], "get_weather");
    assert_eq!(r["output"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(r["usage"]["output_tokens"], 7);
    assert_eq!(r["instructions"], "Be brief.");
    let sent = &s.backup.requests()[0].body;
    assert_eq!(sent["model"], "meta-llama");
    assert_eq!(sent["max_tokens"], 40);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(s.primary.hits(), 0);

    let res = post(
        &s,
        &json!({"model": "cheap", "input": "Hi there", "stream": true}),
    )
    .await;
    let text = res.text().await.unwrap();
    let evs = events(&text);
    let (last_kind, last) = evs.last().unwrap();
    assert_eq!(last_kind, "response.completed", "{text}");
    let done = &last["response"];
    assert_eq!(
        done["output"][0]["content"][0]["text"],
        "Hello from the fake upstream."
    );
    assert_eq!(done["model"], "llama");
    let deltas: String = evs
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "Hello from the fake upstream.");
    // The fake counts a word each + 4: 2 + 4 in, 5 out.
    assert_eq!(done["usage"]["input_tokens"], 6);
    assert_eq!(done["usage"]["output_tokens"], 5);
    let r = rows(&s);
    assert_eq!((r[1].1, r[1].2, r[1].4.as_str()), (6, 5, "complete"));
}

#[tokio::test]
async fn upstream_state_skips_a_chat_only_model_and_is_a_400_without_another() {
    let s = setup("").await;
    // The cheap route's llama cannot hold a stored response: gpt-4o can.
    let res = post(
        &s,
        &json!({"model": "cheap", "input": "and then?", "previous_response_id": "resp_1"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "gpt-4o");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.contains("llama skipped: cannot honour 'previous_response_id'"),
        "{reason}"
    );
    assert_eq!(s.backup.hits(), 0);
    // A route of chat-only models, or such a model by name: nobody can.
    for body in [
        json!({"model": "chatonly", "input": "and then?", "previous_response_id": "resp_1"}),
        json!({"model": "llama", "input": "news?", "tools": [{"type": "web_search_preview"}]}),
    ] {
        let res = post(&s, &body).await;
        assert_eq!(res.status(), 400, "{body}");
        let e: Value = res.json().await.unwrap();
        let param = e["error"]["param"].as_str().unwrap();
        assert!(
            ["previous_response_id", "background", "tools"].contains(&param),
            "{e}"
        );
        assert!(body.get(param).is_some(), "{e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains("speaks the Responses API"), "{message}");
    }
    assert_eq!(s.backup.hits(), 0);
    // Background mode is billed after the request ends: refused for every
    // model, as no budget could hold it.
    for model in ["llama", "gpt-4o"] {
        let res = post(
            &s,
            &json!({"model": model, "input": "hi", "background": true}),
        )
        .await;
        assert_eq!(res.status(), 400, "{model}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], "background", "{e}");
    }
    // store: false (or absent) is no state: it translates.
    let res = post(
        &s,
        &json!({"model": "llama", "input": "hi", "store": false}),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn fallback_cache_budget_and_bad_input() {
    let s = setup("budgets:\n  - { scope: { team: agents }, limit_usd: 0.01, period: day }").await;
    // gpt-4o fails: llama answers through the translation.
    s.primary.script([Behavior::Status(500)]);
    let res = post(
        &s,
        &json!({"model": "auto", "input": "Hello", "max_output_tokens": 20}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "llama");
    let reason = h["x-tollgate-reason"].to_str().unwrap();
    assert!(
        reason.contains("fell back to llama after status 500"),
        "{reason}"
    );
    assert_eq!(res.json::<Value>().await.unwrap()["object"], "response");

    // Deterministic requests are cached per team and replayed as sent.
    let body = json!({"model": "gpt-4o", "input": "Cache me", "temperature": 0, "stream": true, "max_output_tokens": 20});
    let first = post(&s, &body).await;
    assert_eq!(first.headers()["x-tollgate-cache"], "miss");
    let first = first.text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let again = post(&s, &body).await;
    assert_eq!(again.headers()["x-tollgate-cache"], "hit");
    assert_eq!(again.text().await.unwrap(), first);
    assert_eq!(s.primary.hits(), 2);

    // The budget reserves the prompt plus max_output_tokens.
    let res = post(
        &s,
        &json!({"model": "gpt-4o", "input": "hi", "max_output_tokens": 30000}),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "insufficient_quota"
    );

    for (bad, param) in [
        (json!({"model": "gpt-4o"}), "input"),
        (json!({"input": "hi"}), "model"),
        (json!({"model": "gpt-4o", "input": 7}), "input"),
        (
            json!({"model": "gpt-4o", "input": "x", "max_output_tokens": "many"}),
            "max_output_tokens",
        ),
        (json!({"model": "nope", "input": "x"}), "model"),
    ] {
        let res = post(&s, &bad).await;
        assert!(matches!(res.status().as_u16(), 400 | 404), "{bad}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], param, "{bad}: {e}");
    }
}

#[tokio::test]
async fn auto_is_classified_and_routed() {
    let s = setup("").await;
    let res = post(
        &s,
        &json!({"model": "auto", "input": "Write a Rust function that reverses a string."}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-task"], "code");
    assert_eq!(h["x-tollgate-route"], "native-first");
    assert!(h.contains_key("x-tollgate-strong-score"));
}

#[tokio::test]
async fn input_the_upstream_adds_is_reserved_at_the_whole_context() {
    let s = setup("budgets:\n  - { scope: { global: true }, limit_usd: 0.1, period: day }").await;
    let plain = json!({"model": "gpt-4o", "input": "hi", "max_output_tokens": 8});
    assert_eq!(post(&s, &plain).await.status(), 200);
    // A stored response, or web search results, can fill gpt-4o's context
    // (128,000 tokens in the catalog): $0.32 at $2.5/M, over $0.10.
    for extra in [
        json!({"previous_response_id": "resp_1"}),
        json!({"tools": [{"type": "web_search_preview"}]}),
    ] {
        let mut body = plain.clone();
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let res = post(&s, &body).await;
        assert_eq!(res.status(), 429, "{extra}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["code"], "insufficient_quota", "{e}");
    }
}
