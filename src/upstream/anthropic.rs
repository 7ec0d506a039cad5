//! Anthropic's Messages API as an upstream for Chat Completions requests:
//! the request translated to Messages (`request`), the answer back to a
//! chat completion (`reply`) or, streamed, event by event to chat chunks
//! (`stream::Translator`). Usage keeps every part Anthropic bills apart
//! (`usage`).
//!
//! What Messages cannot carry is refused before any call (`untranslatable`),
//! never dropped: several choices (`n`), log probabilities, audio,
//! structured outputs (`response_format` json_schema), `logit_bias`,
//! seeded sampling and predicted outputs.

pub mod stream;

use serde_json::{json, Map, Value};

use super::Usage;

/// The first chat field Messages cannot carry, as (what, field).
pub fn untranslatable(body: &Map<String, Value>) -> Option<(String, String)> {
    let set = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
        return Some(("several choices (`n` > 1)".into(), "n".into()));
    }
    for (field, what) in [
        ("logprobs", "log probabilities"),
        ("top_logprobs", "log probabilities"),
        ("audio", "audio output"),
        ("logit_bias", "`logit_bias`"),
        ("seed", "seeded sampling"),
        ("prediction", "predicted outputs"),
    ] {
        if set(field) && body.get(field) != Some(&Value::Bool(false)) {
            return Some((what.into(), field.into()));
        }
    }
    if body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != "text")
    {
        return Some(("structured outputs".into(), "response_format".into()));
    }
    None
}

/// The Messages request for a chat request's `body`: system messages
/// joined into `system`, tool results as user `tool_result` blocks,
/// assistant tool calls as `tool_use` blocks, images as image blocks,
/// tools and `tool_choice`, `stop` as `stop_sequences`, `user` as
/// `metadata.user_id`; `max_tokens` as given (Messages requires it).
pub fn request(body: &Map<String, Value>, model: &str, max_tokens: u32) -> Result<Value, String> {
    let mut system: Vec<Value> = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let empty = Vec::new();
    let chat = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for m in chat {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
        match role {
            "system" | "developer" => system.extend(blocks(m.get("content"))?),
            "tool" => {
                let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                let result = json!({"type": "tool_result", "tool_use_id": id,
                    "content": blocks(m.get("content"))?});
                push(&mut messages, "user", vec![result]);
            }
            "assistant" => {
                let mut content = blocks(m.get("content"))?;
                for call in m
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .unwrap_or(&empty)
                {
                    let f = &call["function"];
                    let args = f["arguments"].as_str().unwrap_or("{}");
                    let input: Value = serde_json::from_str(args)
                        .map_err(|_| "a tool call's `arguments` is not JSON".to_string())?;
                    content.push(json!({"type": "tool_use", "id": call["id"],
                        "name": f["name"], "input": input}));
                }
                push(&mut messages, "assistant", content);
            }
            _ => push(&mut messages, "user", blocks(m.get("content"))?),
        }
    }
    let mut out = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
    if !system.is_empty() {
        out["system"] = Value::Array(system);
    }
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stream", "stream"),
    ] {
        if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
            out[to] = v.clone();
        }
    }
    match body.get("stop") {
        Some(Value::String(s)) => out["stop_sequences"] = json!([s]),
        Some(Value::Array(a)) if !a.is_empty() => out["stop_sequences"] = Value::Array(a.clone()),
        _ => {}
    }
    if let Some(Value::String(u)) = body.get("user") {
        out["metadata"] = json!({"user_id": u});
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let f = &t["function"];
                let mut tool = json!({"name": f["name"],
                    "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"}))});
                if let Some(d) = f.get("description") {
                    tool["description"] = d.clone();
                }
                tool
            })
            .collect();
        if !tools.is_empty() {
            out["tools"] = Value::Array(tools);
        }
    }
    let parallel = body.get("parallel_tool_calls") == Some(&Value::Bool(false));
    let mut choice = match body.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({"type": "any"})),
        Some(Value::String(s)) if s == "none" => Some(json!({"type": "none"})),
        Some(Value::String(s)) if s == "auto" => Some(json!({"type": "auto"})),
        Some(Value::Object(o)) => Some(json!({"type": "tool", "name": o
            .get("function")
            .and_then(|f| f.get("name"))
            .cloned()
            .unwrap_or(Value::Null)})),
        _ => None,
    };
    if parallel && out.get("tools").is_some() {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        c["disable_parallel_tool_use"] = Value::Bool(true);
    }
    if let Some(c) = choice {
        out["tool_choice"] = c;
    }
    Ok(out)
}

/// Appends `content` as a `role` turn, merged into the last one when it
/// has the same role (Messages alternates user and assistant).
fn push(messages: &mut Vec<Value>, role: &str, content: Vec<Value>) {
    if let Some(last) = messages.last_mut().filter(|m| m["role"] == role) {
        if let Some(a) = last["content"].as_array_mut() {
            a.extend(content);
            return;
        }
    }
    messages.push(json!({"role": role, "content": content}));
}

/// A chat message's content as Messages blocks: text, and images from
/// `image_url` parts (data URLs as base64, others as URLs).
fn blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => Ok(json!({"type": "text", "text": p["text"]})),
                Some("image_url") => {
                    let url = p["image_url"]["url"].as_str().unwrap_or("");
                    match url
                        .strip_prefix("data:")
                        .and_then(|r| r.split_once(";base64,"))
                    {
                        Some((media, data)) => Ok(json!({"type": "image", "source":
                            {"type": "base64", "media_type": media, "data": data}})),
                        None => Ok(json!({"type": "image", "source": {"type": "url", "url": url}})),
                    }
                }
                other => Err(format!(
                    "content parts of type `{}` cannot be sent to an Anthropic model",
                    other.unwrap_or("?")
                )),
            })
            .collect(),
        Some(_) => Err("`content` must be a string or an array of parts".into()),
    }
}

/// Anthropic's `usage`: `input_tokens` excludes the cached and
/// cache-written parts, which are added to the prompt total here.
pub fn usage(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let input = v.get("input_tokens")?.as_u64()?;
    let (write, read) = (
        n("cache_creation_input_tokens"),
        n("cache_read_input_tokens"),
    );
    Some(Usage {
        prompt_tokens: input + write + read,
        completion_tokens: n("output_tokens"),
        cached_tokens: read,
        cache_write_tokens: write,
        ..Usage::default()
    })
}

/// Chat's `finish_reason` for a Messages `stop_reason`.
pub fn finish_reason(stop: Option<&str>) -> &'static str {
    match stop {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Chat's `usage` object for `u`, with the cached part.
pub fn chat_usage(u: &Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens}})
}

/// A Messages answer as a chat completion named `model`, and its usage.
pub fn reply(bytes: &[u8], model: &str) -> Result<(Value, Option<Usage>), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in v["content"].as_array().map_or(&[][..], Vec::as_slice) {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            _ => {}
        }
    }
    let usage = usage(&v["usage"]);
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let mut out = json!({"id": v["id"], "object": "chat.completion", "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": finish_reason(v["stop_reason"].as_str())}]});
    if let Some(u) = &usage {
        out["usage"] = chat_usage(u);
    }
    Ok((out, usage))
}

/// A Messages answer passed on: `model` renamed, its usage read.
pub fn renamed(bytes: &[u8], model: &str) -> Result<(bytes::Bytes, Option<Usage>), String> {
    let mut v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let usage = usage(&v["usage"]);
    v["model"] = Value::String(model.to_string());
    Ok((bytes::Bytes::from(v.to_string()), usage))
}

/// A `message_start` event with `model` renamed (`None`: any other event,
/// passed on as it is).
pub fn renamed_event(data: &[u8], model: &str) -> Option<Vec<u8>> {
    if !data.windows(15).any(|w| w == b"\"message_start\"") {
        return None;
    }
    let mut v: Value = serde_json::from_slice(data).ok()?;
    v["message"]["model"] = Value::String(model.to_string());
    serde_json::to_vec(&v).ok()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
