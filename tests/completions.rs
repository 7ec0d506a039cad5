//! `POST /v1/completions` (legacy) end to end: JSON and SSE passthrough
//! with the policy's model name, cost in the ledger (task `completion`),
//! fallback, budgets and bad input.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use serde_json::{json, Value};
use support::fake_openai::Behavior;
use support::{hash, sse_chunks, stack, Stack};

const KEY: &str = "tg_completions_key";

async fn setup(extra: &str) -> Stack {
    stack(|primary, backup, ledger| {
        format!(
            r#"
version: 1
ledger: "sqlite:{ledger}"
providers:
  primary: {{ kind: openai, base_url: "{}", api_key: upstream-secret, timeout: 2s }}
  backup: {{ kind: openai, base_url: "{}", api_key: upstream-secret, timeout: 2s }}
models:
  gpt-3.5-turbo-instruct: {{ provider: primary, price: {{ input: 1.5, output: 2 }} }}
  instruct-backup: {{ provider: backup, price: {{ input: 1, output: 1 }} }}
aliases: {{ text: router }}
routes:
  - name: text
    when: {{ model: [text] }}
    to: gpt-3.5-turbo-instruct
    fallback: [instruct-backup]
keys:
  - {{ id: k, team: search, hash: "{}" }}
cache: {{ ttl: 60s }}
{extra}
"#,
            primary,
            backup,
            hash(KEY)
        )
    })
    .await
}

async fn post(s: &Stack, body: &Value) -> reqwest::Response {
    s.post("/v1/completions", KEY, body).await
}

fn rows(s: &Stack) -> Vec<(String, String, i64, i64, String, u16)> {
    s.rows("task, model, prompt_tokens + completion_tokens, cost_nanos, ending, status")
}

#[tokio::test]
async fn json_and_streams_pass_through_and_are_accounted() {
    let s = setup("").await;
    let res = post(
        &s,
        &json!({"model": "text", "prompt": "Say this is a test", "max_tokens": 7}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "gpt-3.5-turbo-instruct");
    assert_eq!(h["x-tollgate-task"], "completion");
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(
        answer["choices"][0]["text"],
        "Hello from the fake upstream."
    );
    assert_eq!(answer["model"], "gpt-3.5-turbo-instruct");
    // 18/4+1 = 5 prompt tokens at $1.5/M + 5 completion tokens at $2/M.
    assert_eq!(h["x-tollgate-cost-usd"], "0.0000175");
    // A stream without include_usage: the usage chunk is kept for the
    // ledger, not forwarded; max_tokens bounds the answer upstream.
    let res = post(
        &s,
        &json!({"model": "text", "prompt": "Say this is a test", "max_tokens": 3, "stream": true}),
    )
    .await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let text = res.text().await.unwrap();
    // sse_chunks checks the stream ends with [DONE].
    let (chunks, _) = sse_chunks(&text);
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{text}");
    let got: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(got, "Hello from the");
    let sent = s.primary.requests();
    assert_eq!(sent[1].body["stream_options"]["include_usage"], true);
    assert_eq!(sent[0].body["max_tokens"], 7);
    let r = rows(&s);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0],
        (
            "completion".into(),
            "gpt-3.5-turbo-instruct".into(),
            10,
            17_500,
            "complete".into(),
            200
        )
    );
    // The stream: 5 prompt + 3 completion tokens, accounted once it ended.
    assert_eq!((r[1].2, r[1].4.as_str()), (8, "complete"));
}

#[tokio::test]
async fn fallback_budgets_and_bad_input() {
    let s =
        setup("budgets:\n  - { scope: { team: search }, limit_usd: 0.00002, period: day }").await;
    s.primary.script([Behavior::Status(503)]);
    let res = post(
        &s,
        &json!({"model": "text", "prompt": "hi", "max_tokens": 2}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "instruct-backup");
    assert_eq!((s.primary.hits(), s.backup.hits()), (1, 1));
    // No max_tokens: 16, as in OpenAI's API, is reserved; 4,000 cannot be.
    let res = post(
        &s,
        &json!({"model": "text", "prompt": "hi", "max_tokens": 4000}),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "insufficient_quota"
    );
    for (bad, param) in [
        (json!({"model": "text"}), "prompt"),
        (json!({"model": "text", "prompt": [1, "x"]}), "prompt"),
        (
            json!({"model": "text", "prompt": "x", "max_tokens": "many"}),
            "max_tokens",
        ),
    ] {
        let res = post(&s, &bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"]["param"],
            param,
            "{bad}"
        );
    }
}
