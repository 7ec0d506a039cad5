//! `POST /v1/completions` (legacy) end to end: JSON and SSE passthrough
//! with the policy's model name, cost in the ledger (task `completion`),
//! fallback, budgets and bad input.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake};
use support::{hash, serve, sse_chunks};
use tollgate::gateway::{Gateway, Options};

const KEY: &str = "tg_completions_key";

struct Setup {
    url: String,
    gw: Arc<Gateway>,
    primary: Fake,
    backup: Fake,
    ledger: String,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &str) -> Setup {
    let (primary, backup) = (Fake::start().await, Fake::start().await);
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite").display().to_string();
    let yaml = format!(
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
        primary.base_url(),
        backup.base_url(),
        hash(KEY)
    );
    let p = tollgate::policy::load_str("completions.yaml", &yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(p, &Options::default()).unwrap());
    let url = format!("http://{}", serve(gw.clone()).await);
    Setup {
        url,
        gw,
        primary,
        backup,
        ledger,
        _dir: dir,
    }
}

async fn post(s: &Setup, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/v1/completions", s.url))
        .bearer_auth(KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn rows(s: &Setup) -> Vec<(String, String, i64, i64, String, u16)> {
    assert!(s.gw.ledger.as_ref().unwrap().flush(Duration::from_secs(5)));
    let conn = rusqlite::Connection::open(&s.ledger).unwrap();
    let mut stmt = conn
        .prepare("SELECT task, model, prompt_tokens + completion_tokens, cost_nanos, ending, status FROM tollgate_ledger ORDER BY ts, rowid")
        .unwrap();
    stmt.query_map([], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
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
