//! Unit tests of `request`.

use super::*;

fn parse(s: &str) -> Result<ChatRequest, Invalid> {
    ChatRequest::parse(s.as_bytes())
}

#[test]
fn names_the_bad_field() {
    let p = |s| parse(s).unwrap_err().param;
    assert_eq!(
        p(r#"{"messages":[{"role":"user","content":"hi"}]}"#).as_deref(),
        Some("model")
    );
    assert_eq!(p(r#"{"model":"m"}"#).as_deref(), Some("messages"));
    assert_eq!(
        p(r#"{"model":"m","messages":[]}"#).as_deref(),
        Some("messages")
    );
    assert_eq!(
        p(r#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#).as_deref(),
        Some("messages[0].role")
    );
    assert_eq!(
        p(r#"{"model":"m","messages":[{"role":"user"}],"temperature":7}"#).as_deref(),
        Some("temperature")
    );
    assert_eq!(
        p(r#"{"model":"m","messages":[{"role":"user"}],"max_tokens":0}"#).as_deref(),
        Some("max_tokens")
    );
    assert!(parse("{not json")
        .unwrap_err()
        .message
        .contains("parse the JSON"));
    assert!(parse("[1]").is_err());
}

#[test]
fn upstream_body_keeps_unknown_fields_and_asks_for_usage() {
    let r = parse(
        r#"{"model":"auto","stream":true,"messages":[{"role":"user","content":"hi"}],
                "tools":[{"type":"function","function":{"name":"f"}}],"seed":7,"x_new":1}"#,
    )
    .unwrap();
    assert!(!r.include_usage);
    let out: Value = serde_json::from_slice(&r.upstream_body("gpt-4-0613", None)).unwrap();
    assert_eq!(out["model"], "gpt-4-0613");
    assert_eq!(out["tools"][0]["function"]["name"], "f");
    assert_eq!(out["seed"], 7);
    assert_eq!(out["x_new"], 1);
    assert_eq!(out["stream_options"]["include_usage"], true);
}
