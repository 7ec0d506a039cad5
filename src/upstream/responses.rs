//! Responses API events from an upstream that speaks it, on their way to
//! the client: each keeps its type, order and fields; the response object
//! they carry names the policy model; the terminal event's usage is read
//! out for accounting.

use bytes::Bytes;
use serde_json::Value;

use super::Usage;

/// Events after which a Responses stream has ended.
const TERMINAL: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

/// One rewritten event.
pub(super) struct Event {
    /// `event: <type>\ndata: <json>\n\n`.
    pub frame: Bytes,
    pub usage: Option<Usage>,
    /// The stream's last event: completed, incomplete or failed.
    pub terminal: bool,
    /// An `error` event: the upstream gave up mid-stream.
    pub error: bool,
}

pub(super) fn rewrite_event(data: &[u8], model: &str) -> Event {
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return Event {
            frame: super::sse::frame(data),
            usage: None,
            terminal: false,
            error: false,
        };
    };
    let kind = v
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut usage = None;
    if let Some(r) = v.get_mut("response").and_then(Value::as_object_mut) {
        if r.contains_key("model") {
            r.insert("model".into(), Value::String(model.to_string()));
        }
        usage = r.get("usage").and_then(Usage::from_json);
    }
    let json = serde_json::to_vec(&v).unwrap_or_default();
    let frame = if kind.is_empty() {
        super::sse::frame(&json)
    } else {
        super::sse::typed_frame(&kind, &json)
    };
    Event {
        frame,
        usage,
        terminal: TERMINAL.contains(&kind.as_str()),
        error: kind == "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_policy_model_and_reads_the_final_usage() {
        let data = br#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","model":"gpt-4o-2024-08-06","usage":{"input_tokens":12,"output_tokens":30,"output_tokens_details":{"reasoning_tokens":20},"total_tokens":42}}}"#;
        let e = rewrite_event(data, "smart");
        assert!(e.terminal && !e.error);
        let usage = Usage {
            reasoning_tokens: 20,
            ..Usage::new(12, 30)
        };
        assert_eq!(e.usage, Some(usage));
        let text = std::str::from_utf8(&e.frame).unwrap();
        assert!(
            text.starts_with("event: response.completed\ndata: {"),
            "{text}"
        );
        assert!(text.contains(r#""model":"smart""#), "{text}");
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn deltas_pass_unchanged_and_are_not_terminal() {
        let data = br#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","sequence_number":4}"#;
        let e = rewrite_event(data, "smart");
        assert!(!e.terminal && e.usage.is_none());
        let back: Value = serde_json::from_slice(
            e.frame
                .strip_prefix(b"event: response.output_text.delta\ndata: ")
                .unwrap()
                .trim_ascii_end(),
        )
        .unwrap();
        assert_eq!(back, serde_json::from_slice::<Value>(data).unwrap());
    }
}
