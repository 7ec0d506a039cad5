//! Anthropic's Messages API (`POST /v1/messages`) in terms of Chat
//! Completions, for clients that speak it (the `anthropic` SDKs, agent
//! tools): the request is read into its chat equivalent (`to_chat`),
//! which runs every stage of the chat path (auth, classification and
//! routing, budgets, rate limits, cache, ledger, fallbacks), and the
//! answer comes back as a Messages object (`reply`), event stream
//! (`stream`) or error (`error`).
//!
//! What Chat Completions cannot carry is refused with a 400 naming the
//! field, never dropped: `top_k`, extended thinking, documents, server
//! tools (web search, code execution), container and MCP options.

pub mod reply;
pub mod stream;

use serde_json::{json, Map, Value};

/// What the answer needs of the request.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The model name as the client sent it.
    pub model: String,
    pub stream: bool,
}

/// A Messages request as a chat request body, or the reason (and field)
/// it cannot be one.
pub fn to_chat(v: &Value) -> Result<(Value, Ask), (String, &'static str)> {
    let Some(o) = v.as_object() else {
        return Err(("the body must be a JSON object".into(), "body"));
    };
    let model = match o.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => return Err(("model: Field required".into(), "model")),
    };
    let Some(max_tokens) = o.get("max_tokens").and_then(Value::as_u64) else {
        return Err(("max_tokens: Field required".into(), "max_tokens"));
    };
    for (field, what) in [
        ("top_k", "`top_k`"),
        ("thinking", "extended thinking"),
        ("container", "containers"),
        ("mcp_servers", "MCP servers"),
    ] {
        if o.get(field).is_some_and(|v| !v.is_null()) {
            return Err((
                format!("{what} cannot be routed through this gateway"),
                field,
            ));
        }
    }
    let mut messages = Vec::new();
    match o.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(Value::Array(blocks)) => {
            let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
            messages.push(json!({"role": "system", "content": text.join("\n")}));
        }
        Some(_) => return Err(("system: must be a string or text blocks".into(), "system")),
    }
    let Some(turns) = o.get("messages").and_then(Value::as_array) else {
        return Err(("messages: Field required".into(), "messages"));
    };
    for m in turns {
        let role = m["role"].as_str().unwrap_or("");
        if role != "user" && role != "assistant" {
            return Err((
                "messages: each role must be `user` or `assistant`".into(),
                "messages",
            ));
        }
        turn(role, &m["content"], &mut messages)?;
    }
    let mut chat = Map::new();
    chat.insert("model".into(), Value::String(model.clone()));
    chat.insert("messages".into(), Value::Array(messages));
    chat.insert("max_tokens".into(), json!(max_tokens));
    for k in ["temperature", "top_p", "stream"] {
        if let Some(v) = o.get(k).filter(|v| !v.is_null()) {
            chat.insert(k.into(), v.clone());
        }
    }
    let stream = o.get("stream") == Some(&Value::Bool(true));
    if stream {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(Value::Array(stop)) = o.get("stop_sequences") {
        if !stop.is_empty() {
            chat.insert("stop".into(), Value::Array(stop.clone()));
        }
    }
    if let Some(u) = o
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        chat.insert("user".into(), Value::String(u.into()));
    }
    tools(o, &mut chat)?;
    Ok((Value::Object(chat), Ask { model, stream }))
}

/// One Messages turn as chat messages: text and images as content parts,
/// `tool_use` as the assistant's tool calls, `tool_result` as tool
/// messages.
fn turn(role: &str, content: &Value, out: &mut Vec<Value>) -> Result<(), (String, &'static str)> {
    let blocks = match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(b) => b,
        _ => {
            return Err((
                "messages: content must be a string or blocks".into(),
                "messages",
            ))
        }
    };
    let mut parts = Vec::new();
    let mut calls = Vec::new();
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => parts.push(json!({"type": "text", "text": b["text"]})),
            Some("image") => {
                let s = &b["source"];
                let url = match s["type"].as_str() {
                    Some("base64") => format!(
                        "data:{};base64,{}",
                        s["media_type"].as_str().unwrap_or("image/png"),
                        s["data"].as_str().unwrap_or("")
                    ),
                    _ => s["url"].as_str().unwrap_or("").to_string(),
                };
                parts.push(json!({"type": "image_url", "image_url": {"url": url}}));
            }
            Some("tool_use") => calls.push(json!({"id": b["id"], "type": "function",
                "function": {"name": b["name"], "arguments": b["input"].to_string()}})),
            Some("tool_result") => {
                let text = match &b["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|c| c["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                out.push(
                    json!({"role": "tool", "tool_call_id": b["tool_use_id"], "content": text}),
                );
            }
            other => {
                return Err((
                    format!(
                        "content blocks of type `{}` cannot be routed through this gateway",
                        other.unwrap_or("?")
                    ),
                    "messages",
                ))
            }
        }
    }
    if parts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let content = match (parts.len(), parts.first()) {
        (1, Some(p)) if p["type"] == "text" => p["text"].clone(),
        (0, _) => Value::Null,
        _ => Value::Array(parts),
    };
    let mut m = json!({"role": role, "content": content});
    if !calls.is_empty() {
        m["tool_calls"] = Value::Array(calls);
    }
    out.push(m);
    Ok(())
}

fn tools(
    o: &Map<String, Value>,
    chat: &mut Map<String, Value>,
) -> Result<(), (String, &'static str)> {
    if let Some(Value::Array(tools)) = o.get("tools") {
        let mut out = Vec::new();
        for t in tools {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "custom")
            {
                return Err((
                    "server tools cannot be routed through this gateway".into(),
                    "tools",
                ));
            }
            let mut f = json!({"name": t["name"],
                "parameters": t.get("input_schema").cloned().unwrap_or(json!({"type": "object"}))});
            if let Some(d) = t.get("description") {
                f["description"] = d.clone();
            }
            out.push(json!({"type": "function", "function": f}));
        }
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    if let Some(c) = o.get("tool_choice") {
        let choice = match c["type"].as_str() {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({"type": "function", "function": {"name": c["name"]}}),
            _ => json!("auto"),
        };
        chat.insert("tool_choice".into(), choice);
        if c["disable_parallel_tool_use"] == json!(true) {
            chat.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
