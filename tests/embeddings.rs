//! `POST /v1/embeddings` end to end: passthrough of batched input, the
//! policy's model name, price per input token in the ledger (task
//! `embedding`), the cache, budgets, fallback and bad input.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use serde_json::{json, Value};
use support::fake_openai::Behavior;
use support::{hash, stack, Stack};

const KEY: &str = "tg_embed_key";

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
  text-embedding-3-small: {{ provider: primary, price: {{ input: 0.02 }} }}
  embed-backup: {{ provider: backup, upstream_model: text-embedding-3-large, price: {{ input: 0.13 }} }}
aliases: {{ embed: router }}
routes:
  - name: embed
    when: {{ model: [embed] }}
    to: text-embedding-3-small
    fallback: [embed-backup]
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
    s.post("/v1/embeddings", KEY, body).await
}

fn rows(s: &Stack) -> Vec<(String, String, i64, i64, String, u16)> {
    s.rows("task, model, prompt_tokens, cost_nanos, cache, status")
}

#[tokio::test]
async fn batched_input_passes_through_priced_per_input_token_and_cached() {
    let s = setup("").await;
    let body = json!({"model": "embed", "input": ["first document", "a second, longer document"]});
    let res = post(&s, &body).await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["x-tollgate-model"], "text-embedding-3-small");
    assert_eq!(h["x-tollgate-task"], "embedding");
    assert_eq!(h["x-tollgate-cache"], "miss");
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["data"].as_array().unwrap().len(), 2);
    assert_eq!(answer["model"], "text-embedding-3-small");
    // The fake bills 14/4+1 + 25/4+1 = 11 tokens: 11 × $0.02/M.
    assert_eq!(answer["usage"]["prompt_tokens"], 11);
    assert_eq!(h["x-tollgate-cost-usd"], "0.00000022");
    let sent = &s.primary.requests()[0].body;
    assert_eq!(
        sent["input"], body["input"],
        "batched input forwarded unchanged"
    );
    assert_eq!(sent["model"], "text-embedding-3-small");

    // The same request again is a hit: the upstream is not called.
    let again = post(&s, &body).await;
    assert_eq!(again.headers()["x-tollgate-cache"], "hit");
    assert_eq!(again.json::<Value>().await.unwrap(), answer);
    assert_eq!(s.primary.hits(), 1);
    let r = rows(&s);
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0],
        (
            "embedding".into(),
            "text-embedding-3-small".into(),
            11,
            220,
            "miss".into(),
            200
        )
    );
    assert_eq!((r[1].3, r[1].4.as_str()), (0, "hit"));

    // Token ids pass through as well.
    let ids = json!({"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]});
    let res = post(&s, &ids).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-route"], "direct");
    assert_eq!(
        s.primary.requests().last().unwrap().body["input"],
        ids["input"]
    );
}

#[tokio::test]
async fn a_failing_model_falls_back_and_bad_input_is_a_400() {
    let s = setup("").await;
    s.primary.script([Behavior::Status(500)]);
    let res = post(&s, &json!({"model": "embed", "input": "hello"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-tollgate-model"], "embed-backup");
    assert_eq!(
        s.backup.requests()[0].body["model"],
        "text-embedding-3-large"
    );
    for bad in [
        json!({"model": "embed"}),
        json!({"model": "embed", "input": []}),
        json!({"model": "embed", "input": [1, "x"]}),
    ] {
        let res = post(&s, &bad).await;
        assert_eq!(res.status(), 400, "{bad}");
        let e: Value = res.json().await.unwrap();
        assert_eq!(e["error"]["param"], "input", "{bad}");
    }
    let res = post(&s, &json!({"model": "nope", "input": "x"})).await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_budget_bounds_embeddings_too() {
    // $0.000001 at $0.02/M covers 50 input tokens.
    let s =
        setup("budgets:\n  - { scope: { team: search }, limit_usd: 0.000001, period: day }").await;
    let long = "word ".repeat(200);
    let res = post(&s, &json!({"model": "embed", "input": long})).await;
    assert_eq!(res.status(), 429);
    let e: Value = res.json().await.unwrap();
    assert_eq!(e["error"]["code"], "insufficient_quota");
    assert_eq!(s.primary.hits() + s.backup.hits(), 0);
    let ok = post(&s, &json!({"model": "embed", "input": "short"})).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("x-tollgate-budget-remaining-usd"));
}
