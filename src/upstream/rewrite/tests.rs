//! Unit tests of `rewrite`.

use super::*;

/// What the client would parse out of a rewrite's bytes.
fn parsed(body: Option<Vec<u8>>) -> Option<Value> {
    body.map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[test]
fn splicing_gives_what_the_full_rewrite_gives() {
    let objects = [
        r#"{"id":"c","model":"gpt-x-0613","choices":[{"delta":{"content":"hi"}}],"usage":null}"#,
        r#"{"usage":null,"id":"c","model":"gpt-x-0613","choices":[{"delta":{}}]}"#,
        r#"{ "usage" : null , "model" : "m" }"#,
        r#"{"usage":null}"#,
        r#"{"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        r#"{"model":"m","choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":2}}"#,
        r#"{"choices":[]}"#,
        r#"{"error":{"message":"overloaded"}}"#,
        r#"{"mod\u0065l":"m","us\u0061ge":null,"choices":[{"delta":{}}]}"#,
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"gpt-4","x":"caf\u00e9 \"quoted\""}"#,
    ];
    for o in objects {
        for drop in [false, true] {
            for model in ["gpt-4", "név \"odd\""] {
                let full = rewrite_map(o.as_bytes(), model, drop).unwrap();
                let fast = rewrite(o.as_bytes(), model, drop).unwrap();
                assert_eq!(fast.1, full.1, "{o} {drop} {model}");
                assert_eq!(parsed(fast.0), parsed(full.0), "{o} {drop} {model}");
            }
        }
    }
}

#[test]
fn a_chunk_that_needs_no_change_is_left_alone() {
    let chunk = br#"{"id":"c", "model":"gpt-4","choices":[{"delta":{"content":"hi"}}]}"#;
    let (out, usage) = splice(chunk, "\"gpt-4\"", true, (b"data: ", b"\n\n")).unwrap();
    assert_eq!((out, usage), (Spliced::Unchanged, None));
    // A renamed one comes back as one SSE frame.
    let (out, _) = splice(chunk, "\"mine\"", false, (b"data: ", b"\n\n")).unwrap();
    let framed = br#"data: {"id":"c", "model":"mine","choices":[{"delta":{"content":"hi"}}]}"#;
    assert_eq!(out, Spliced::Rewritten([&framed[..], b"\n\n"].concat()));
    // What only the full rewrite can tell.
    for odd in [
        &br#"[1,2]"#[..],
        br#"{"model":"a","model":"b"}"#,
        b"[DONE]",
        br#"{"#,
    ] {
        assert!(splice(odd, "\"m\"", true, (b"", b"")).is_none());
    }
}
