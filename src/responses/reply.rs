//! A Chat Completions answer as a Responses object: the message and the
//! function calls become output items, `usage` gets the Responses names,
//! and the request's settings are echoed as OpenAI does.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::Ask;

/// The Responses object for a chat completion body.
pub fn from_chat(chat: &[u8], ask: &Ask) -> Result<Bytes, String> {
    let c: Value = serde_json::from_slice(chat).map_err(|e| e.to_string())?;
    let choice = c
        .get("choices")
        .and_then(|ch| ch.get(0))
        .ok_or("no choices")?;
    let message = &choice["message"];
    let id = suffix(c["id"].as_str().unwrap_or(""));
    let mut output = Vec::new();
    if let Some(r) = message["refusal"].as_str() {
        output.push(message_item(
            &id,
            json!([{"type": "refusal", "refusal": r}]),
        ));
    } else if let Some(t) = message["content"].as_str().filter(|t| !t.is_empty()) {
        output.push(message_item(&id, json!([text_part(t)])));
    }
    for call in message["tool_calls"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
    {
        let f = &call["function"];
        output.push(call_item(
            call["id"].as_str().unwrap_or(""),
            f["name"].as_str().unwrap_or(""),
            f["arguments"].as_str().unwrap_or(""),
            "completed",
        ));
    }
    let mut r = envelope(
        ask,
        &id,
        c["created"].as_u64().unwrap_or(0),
        c["model"].as_str().unwrap_or(""),
    );
    finish(
        &mut r,
        choice["finish_reason"].as_str(),
        output,
        c.get("usage"),
    );
    serde_json::to_vec(&r)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// `chatcmpl-abc` → `abc`: the id the response's own ids are made from.
pub(super) fn suffix(chat_id: &str) -> String {
    let s = chat_id.strip_prefix("chatcmpl-").unwrap_or(chat_id);
    if s.is_empty() {
        "local".into()
    } else {
        s.to_string()
    }
}

/// The response object, in progress, with the request's settings.
pub(super) fn envelope(ask: &Ask, id: &str, created: u64, model: &str) -> Map<String, Value> {
    let b = &ask.body;
    let or = |k: &str, d: Value| b.get(k).filter(|v| !v.is_null()).cloned().unwrap_or(d);
    let format = b
        .get("text")
        .and_then(|t| t.get("format"))
        .cloned()
        .unwrap_or(json!({"type": "text"}));
    let r = json!({
        "id": format!("resp_{id}"),
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": or("instructions", Value::Null),
        "max_output_tokens": or("max_output_tokens", Value::Null),
        "metadata": or("metadata", json!({})),
        "model": model,
        "output": [],
        "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "reasoning": {"effort": null, "summary": null},
        "store": false,
        "temperature": or("temperature", json!(1.0)),
        "text": {"format": format},
        "tool_choice": or("tool_choice", json!("auto")),
        "tools": or("tools", json!([])),
        "top_p": or("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": null,
        "user": or("user", Value::Null),
    });
    match r {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Completes the response object: its status (from the chat
/// `finish_reason`), its output and its usage.
pub(super) fn finish(
    r: &mut Map<String, Value>,
    finish_reason: Option<&str>,
    output: Vec<Value>,
    usage: Option<&Value>,
) {
    let incomplete = match finish_reason {
        Some("length") => Some("max_output_tokens"),
        Some("content_filter") => Some("content_filter"),
        _ => None,
    };
    r.insert(
        "status".into(),
        json!(if incomplete.is_some() {
            "incomplete"
        } else {
            "completed"
        }),
    );
    if let Some(why) = incomplete {
        r.insert("incomplete_details".into(), json!({ "reason": why }));
    }
    r.insert("output".into(), Value::Array(output));
    r.insert("usage".into(), usage.map_or(Value::Null, usage_of));
}

/// Chat `usage` with the Responses names.
pub(super) fn usage_of(u: &Value) -> Value {
    let input = u["prompt_tokens"].as_u64().unwrap_or(0);
    let output = u["completion_tokens"].as_u64().unwrap_or(0);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    let reasoning = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output,
    })
}

pub(super) fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

pub(super) fn message_item(id: &str, content: Value) -> Value {
    let status = if content.as_array().is_some_and(Vec::is_empty) {
        "in_progress"
    } else {
        "completed"
    };
    json!({"id": format!("msg_{id}"), "type": "message", "status": status,
           "role": "assistant", "content": content})
}

pub(super) fn call_item(call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"id": format!("fc_{call_id}"), "type": "function_call", "status": status,
           "call_id": call_id, "name": name, "arguments": arguments})
}
