//! Messages content blocks and tools as their chat equivalents.

use serde_json::{json, Map, Value};

/// One Messages turn as chat messages: text and images as content parts,
/// `tool_use` as the assistant's tool calls, `tool_result` as tool
/// messages.
pub(super) fn turn(
    role: &str,
    content: &Value,
    out: &mut Vec<Value>,
    only: &mut Option<(String, &'static str)>,
) -> Result<(), (String, &'static str)> {
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
                // Documents, thinking, server tool results: only a
                // Messages provider can take them.
                only.get_or_insert_with(|| {
                    (
                        format!("content blocks of type `{}`", other.unwrap_or("?")),
                        "messages",
                    )
                });
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

pub(super) fn tools(
    o: &Map<String, Value>,
    chat: &mut Map<String, Value>,
    only: &mut Option<(String, &'static str)>,
) {
    if let Some(Value::Array(tools)) = o.get("tools") {
        let mut out = Vec::new();
        for t in tools {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|k| k != "custom")
            {
                only.get_or_insert_with(|| ("server tools".to_string(), "tools"));
                continue;
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
}
