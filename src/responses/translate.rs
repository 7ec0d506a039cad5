//! Responses request → Chat Completions request: `instructions` become
//! the system message, `input` items become messages (function calls and
//! their outputs become tool calls and tool messages), function tools
//! keep their schema, and the sampling fields keep their meaning.

use serde_json::{json, Map, Value};

use super::type_error;
use crate::request::Invalid;

pub struct Translated {
    /// A Chat Completions body.
    pub chat: Map<String, Value>,
    /// What Chat Completions cannot carry (see `Ask::upstream_only`).
    pub upstream_only: Option<(String, String)>,
}

struct Out {
    messages: Vec<Value>,
    upstream_only: Option<(String, String)>,
}

impl Out {
    fn needs(&mut self, what: impl Into<String>, param: &str) {
        self.upstream_only
            .get_or_insert_with(|| (what.into(), param.to_string()));
    }
}

pub fn to_chat(body: &Map<String, Value>) -> Result<Translated, Invalid> {
    let mut out = Out {
        messages: Vec::new(),
        upstream_only: None,
    };
    for (field, what) in [
        (
            "previous_response_id",
            "'previous_response_id' (a stored response)",
        ),
        ("conversation", "'conversation' (a stored conversation)"),
        ("prompt", "'prompt' (a stored prompt template)"),
    ] {
        if body.get(field).is_some_and(|v| !v.is_null()) {
            out.needs(what, field);
        }
    }
    if body.get("store") == Some(&Value::Bool(true)) {
        out.needs("'store: true' (a stored response)", "store");
    }
    if body.get("background") == Some(&Value::Bool(true)) {
        out.needs("background mode", "background");
    }
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.messages.push(json!({"role": "system", "content": s})),
        Some(_) => return Err(type_error("instructions", "a string")),
    }
    match body.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => out.messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(&mut out, i, item)?;
            }
        }
        Some(_) => return Err(type_error("input", "a string or an array of input items")),
    }
    if out.messages.is_empty() {
        // Only stored state was given: something to classify.
        out.messages.push(json!({"role": "user", "content": ""}));
    }
    let mut chat = Map::new();
    chat.insert("model".into(), body["model"].clone());
    for key in [
        "temperature",
        "top_p",
        "parallel_tool_calls",
        "user",
        "stream",
    ] {
        if let Some(v) = body.get(key).filter(|v| !v.is_null()) {
            chat.insert(key.into(), v.clone());
        }
    }
    if body.get("stream") == Some(&Value::Bool(true)) {
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(v) = body.get("max_output_tokens").filter(|v| !v.is_null()) {
        chat.insert("max_tokens".into(), v.clone());
    }
    if let Some(v) = body.get("top_logprobs").filter(|v| !v.is_null()) {
        chat.insert("logprobs".into(), Value::Bool(true));
        chat.insert("top_logprobs".into(), v.clone());
    }
    if let Some(e) = body.get("reasoning").and_then(|r| r.get("effort")) {
        if !e.is_null() {
            chat.insert("reasoning_effort".into(), e.clone());
        }
    }
    if let Some(f) = text_format(body)? {
        chat.insert("response_format".into(), f);
    }
    if let Some(tools) = tools(&mut out, body.get("tools"))? {
        chat.insert("tools".into(), tools);
    }
    if let Some(c) = tool_choice(&mut out, body.get("tool_choice"))? {
        chat.insert("tool_choice".into(), c);
    }
    chat.insert("messages".into(), Value::Array(out.messages));
    Ok(Translated {
        chat,
        upstream_only: out.upstream_only,
    })
}

const ROLES: &[&str] = &["user", "system", "developer", "assistant"];

fn input_item(out: &mut Out, i: usize, item: &Value) -> Result<(), Invalid> {
    let at = format!("input[{i}]");
    let Value::Object(m) = item else {
        return Err(type_error(&at, "an object"));
    };
    let kind = match m.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(type_error(&format!("{at}.type"), "a string")),
    };
    match kind {
        "message" => message(out, &at, m),
        "function_call" => {
            let (Some(call_id), Some(name)) = (str_of(m, "call_id"), str_of(m, "name")) else {
                return Err(Invalid::new(
                    format!("Missing required parameter: '{at}.call_id' or '{at}.name'."),
                    Some(&at),
                ));
            };
            let call = json!({"id": call_id, "type": "function", "function": {
                "name": name, "arguments": str_of(m, "arguments").unwrap_or("{}")}});
            // Calls in a row are one assistant turn.
            match out.messages.last_mut() {
                Some(Value::Object(last)) if last["role"] == "assistant" => {
                    let calls = last.entry("tool_calls").or_insert_with(|| json!([]));
                    if let Value::Array(a) = calls {
                        a.push(call);
                    }
                }
                _ => out
                    .messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
            }
            Ok(())
        }
        "function_call_output" => {
            let Some(call_id) = str_of(m, "call_id") else {
                return Err(Invalid::new(
                    format!("Missing required parameter: '{at}.call_id'."),
                    Some(&format!("{at}.call_id")),
                ));
            };
            let content = match m.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => text_of(parts),
                _ => return Err(type_error(&format!("{at}.output"), "a string")),
            };
            out.messages
                .push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            Ok(())
        }
        // A model's own reasoning has no place in a chat request.
        "reasoning" => Ok(()),
        "item_reference" => {
            out.needs("item references (stored items)", "input");
            Ok(())
        }
        other => {
            out.needs(format!("input items of type '{other}'"), "input");
            Ok(())
        }
    }
}

fn message(out: &mut Out, at: &str, m: &Map<String, Value>) -> Result<(), Invalid> {
    let role = match m.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.as_str(),
        Some(Value::String(r)) => {
            return Err(Invalid::new(
                format!(
                    "Invalid value: '{r}'. Supported values are: {}.",
                    ROLES.join(", ")
                ),
                Some(&format!("{at}.role")),
            ))
        }
        _ => {
            return Err(Invalid::new(
                format!("Missing required parameter: '{at}.role'."),
                Some(&format!("{at}.role")),
            ))
        }
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Array(parts)) if role == "assistant" => Value::String(text_of(parts)),
        Some(Value::Array(parts)) => {
            let mut chat_parts = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                if let Some(part) = content_part(out, &format!("{at}.content[{j}]"), p)? {
                    chat_parts.push(part);
                }
            }
            Value::Array(chat_parts)
        }
        _ => {
            return Err(type_error(
                &format!("{at}.content"),
                "a string or an array of content parts",
            ))
        }
    };
    out.messages.push(json!({"role": role, "content": content}));
    Ok(())
}

fn content_part(out: &mut Out, at: &str, p: &Value) -> Result<Option<Value>, Invalid> {
    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
    Ok(Some(match kind {
        "input_text" | "output_text" | "text" => {
            json!({"type": "text", "text": p.get("text").and_then(Value::as_str).unwrap_or("")})
        }
        "input_image" => match p.get("image_url").and_then(Value::as_str) {
            Some(url) => {
                let detail = p.get("detail").cloned().unwrap_or(json!("auto"));
                json!({"type": "image_url", "image_url": {"url": url, "detail": detail}})
            }
            None => {
                out.needs("images by file_id (stored files)", "input");
                return Ok(None);
            }
        },
        "input_file" => {
            let mut file = Map::new();
            for k in ["file_id", "file_data", "filename"] {
                if let Some(v) = p.get(k) {
                    file.insert(k.into(), v.clone());
                }
            }
            json!({"type": "file", "file": file})
        }
        "input_audio" => json!({"type": "input_audio", "input_audio": p.get("input_audio")}),
        other => {
            return Err(Invalid::new(
                format!("Invalid value: '{other}'. Supported content part types are: input_text, input_image, input_file, input_audio."),
                Some(&format!("{at}.type")),
            ))
        }
    }))
}

fn tools(out: &mut Out, tools: Option<&Value>) -> Result<Option<Value>, Invalid> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(type_error("tools", "an array")),
    };
    let mut chat_tools = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {
                let Some(name) = t.get("name").and_then(Value::as_str) else {
                    return Err(Invalid::new(
                        format!("Missing required parameter: 'tools[{i}].name'."),
                        Some(&format!("tools[{i}].name")),
                    ));
                };
                let mut f = Map::new();
                f.insert("name".into(), json!(name));
                for k in ["description", "parameters", "strict"] {
                    if let Some(v) = t.get(k).filter(|v| !v.is_null()) {
                        f.insert(k.into(), v.clone());
                    }
                }
                chat_tools.push(json!({"type": "function", "function": f}));
            }
            Some(other) => out.needs(format!("the built-in tool '{other}'"), "tools"),
            None => {
                return Err(Invalid::new(
                    format!("Missing required parameter: 'tools[{i}].type'."),
                    Some(&format!("tools[{i}].type")),
                ))
            }
        }
    }
    Ok((!chat_tools.is_empty()).then_some(Value::Array(chat_tools)))
}

fn tool_choice(out: &mut Out, c: Option<&Value>) -> Result<Option<Value>, Invalid> {
    match c {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Value::String(s.clone()))),
        Some(Value::Object(o)) => match (o.get("type").and_then(Value::as_str), o.get("name")) {
            (Some("function"), Some(name)) => Ok(Some(
                json!({"type": "function", "function": {"name": name}}),
            )),
            (Some(other), _) => {
                out.needs(format!("tool_choice of type '{other}'"), "tool_choice");
                Ok(None)
            }
            (None, _) => Err(type_error(
                "tool_choice",
                "a string or a tool choice object",
            )),
        },
        Some(_) => Err(type_error("tool_choice", "a string or an object")),
    }
}

/// `text.format` as a chat `response_format`.
fn text_format(body: &Map<String, Value>) -> Result<Option<Value>, Invalid> {
    let Some(f) = body.get("text").and_then(|t| t.get("format")) else {
        return Ok(None);
    };
    match f.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut s = Map::new();
            for k in ["name", "schema", "strict", "description"] {
                if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
                    s.insert(k.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": s})))
        }
        Some(other) => Err(Invalid::new(
            format!(
                "Invalid value: '{other}'. Supported values are: text, json_object, json_schema."
            ),
            Some("text.format.type"),
        )),
    }
}

fn str_of<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// The text of output/input content parts, joined.
fn text_of(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").or_else(|| p.get("refusal")))
        .filter_map(Value::as_str)
        .collect()
}
