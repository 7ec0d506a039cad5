//! A catalogue of bad requests: each gets the right status and an
//! OpenAI-shaped error naming what is wrong, nothing reaches the upstream,
//! and the gateway stays healthy.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use serde_json::Value;
use support::fake_openai::Fake;
use support::{policy, start, KEY};

fn nested(depth: usize) -> Vec<u8> {
    let mut s =
        String::from(r#"{"model":"auto","messages":[{"role":"user","content":"x"}],"metadata":"#);
    s.push_str(&"[".repeat(depth));
    s.push_str(&"]".repeat(depth));
    s.push('}');
    s.into_bytes()
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_error_and_nothing_breaks() {
    let up = Fake::start().await;
    let backup = Fake::start().await;
    let url = format!(
        "http://{}",
        start(&policy(&up.base_url(), &backup.base_url(), "2s")).await
    );
    let msg = r#""messages":[{"role":"user","content":"hi"}]"#;
    let many = format!(
        "{{\"model\":\"auto\",\"messages\":[{}]}}",
        vec![r#"{"role":"user","content":"x"}"#; 2049].join(",")
    );
    // (what, body, status, expected param or code)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "malformed JSON",
            b"{\"model\": \"auto\",".to_vec(),
            400,
            "invalid_request_error",
        ),
        (
            "not an object",
            b"[1, 2, 3]".to_vec(),
            400,
            "invalid_request_error",
        ),
        ("empty body", Vec::new(), 400, "invalid_request_error"),
        (
            "invalid UTF-8",
            b"{\"model\":\"auto\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}"
                .to_vec(),
            400,
            "invalid_request_error",
        ),
        (
            "deeply nested",
            nested(20_000),
            400,
            "invalid_request_error",
        ),
        (
            "model missing",
            format!("{{{msg}}}").into_bytes(),
            400,
            "model",
        ),
        (
            "model not a string",
            format!("{{\"model\":42,{msg}}}").into_bytes(),
            400,
            "model",
        ),
        (
            "unknown model",
            format!("{{\"model\":\"gpt-9\",{msg}}}").into_bytes(),
            404,
            "model",
        ),
        (
            "messages missing",
            br#"{"model":"auto"}"#.to_vec(),
            400,
            "messages",
        ),
        (
            "messages empty",
            br#"{"model":"auto","messages":[]}"#.to_vec(),
            400,
            "messages",
        ),
        (
            "messages not a list",
            br#"{"model":"auto","messages":"hi"}"#.to_vec(),
            400,
            "messages",
        ),
        (
            "message not an object",
            br#"{"model":"auto","messages":["hi"]}"#.to_vec(),
            400,
            "messages[0]",
        ),
        (
            "unknown role",
            br#"{"model":"auto","messages":[{"role":"wizard","content":"x"}]}"#.to_vec(),
            400,
            "messages[0].role",
        ),
        (
            "role missing",
            br#"{"model":"auto","messages":[{"content":"x"}]}"#.to_vec(),
            400,
            "messages[0].role",
        ),
        (
            "content a number",
            br#"{"model":"auto","messages":[{"role":"user","content":7}]}"#.to_vec(),
            400,
            "messages[0].content",
        ),
        (
            "negative max_tokens",
            format!("{{\"model\":\"auto\",{msg},\"max_tokens\":-5}}").into_bytes(),
            400,
            "max_tokens",
        ),
        (
            "zero max_tokens",
            format!("{{\"model\":\"auto\",{msg},\"max_tokens\":0}}").into_bytes(),
            400,
            "max_tokens",
        ),
        (
            "fractional max_tokens",
            format!("{{\"model\":\"auto\",{msg},\"max_tokens\":1.5}}").into_bytes(),
            400,
            "max_tokens",
        ),
        (
            "absurd max_tokens",
            format!("{{\"model\":\"auto\",{msg},\"max_tokens\":1000000000000}}").into_bytes(),
            400,
            "max_tokens",
        ),
        (
            "max_tokens over the cap",
            format!("{{\"model\":\"auto\",{msg},\"max_tokens\":2000000}}").into_bytes(),
            400,
            "max_tokens",
        ),
        ("too many messages", many.into_bytes(), 400, "messages"),
        (
            "stream not a bool",
            format!("{{\"model\":\"auto\",{msg},\"stream\":\"yes\"}}").into_bytes(),
            400,
            "stream",
        ),
        (
            "temperature a string",
            format!("{{\"model\":\"auto\",{msg},\"temperature\":\"hot\"}}").into_bytes(),
            400,
            "temperature",
        ),
        (
            "huge body",
            format!(
                "{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
                "x".repeat(200_000)
            )
            .into_bytes(),
            413,
            "request_too_large",
        ),
    ];
    let client = reqwest::Client::new();
    for (what, body, status, expect) in cases {
        let res = client
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{what}");
        let b: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: not JSON: {e}"));
        let e = &b["error"];
        for field in ["message", "type", "param", "code"] {
            assert!(e.get(field).is_some(), "{what}: no `{field}` in {b}");
        }
        assert!(!e["message"].as_str().unwrap_or("").is_empty(), "{what}");
        let matched = [&e["param"], &e["code"], &e["type"]]
            .iter()
            .any(|v| v.as_str() == Some(expect));
        assert!(matched, "{what}: expected {expect} in {b}");
    }
    assert_eq!(
        up.hits() + backup.hits(),
        0,
        "no bad request reached an upstream"
    );
    // Still healthy, still serving.
    assert_eq!(
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    let ok = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(
            &serde_json::json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// A prompt of one word as large as the body allows (the worst case for a
/// byte-pair encoder that merges a word in time quadratic in its length)
/// is counted exactly and answered at once: here, that it is larger than
/// every model's context.
#[tokio::test]
async fn a_megabyte_word_is_counted_exactly() {
    let up = Fake::start().await;
    let yaml = policy(&up.base_url(), &up.base_url(), "30s").replace("64KiB", "1MiB");
    let url = format!("http://{}", start(&yaml).await);
    let word = "abcdefghij".repeat(100_000);
    let res = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .timeout(std::time::Duration::from_secs(120))
        .json(&serde_json::json!({"model": "gpt-3.5-turbo",
            "messages": [{"role": "user", "content": word}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "context_length_exceeded", "{b}");
    // cl100k reads the word as 200,000 tokens; the chat format adds 3 + 1 + 3.
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.contains("200007 in the messages"), "{message}");
    assert_eq!(up.hits(), 0);
}
