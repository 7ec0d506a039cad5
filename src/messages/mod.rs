//! Anthropic's Messages API (`POST /v1/messages`) in terms of Chat
//! Completions, for clients that speak it (the `anthropic` SDKs, agent
//! tools): the request is read into its chat equivalent (`to_chat`),
//! which runs every stage of the chat path (auth, classification and
//! routing, budgets, rate limits, cache, ledger, fallbacks), and the
//! answer comes back as a Messages object (`reply`), event stream
//! (`stream`) or error (`error`).
//!
//! A model on a provider that speaks Messages (`kind: anthropic`) gets
//! the client's body as sent, its model name aside, and its answer is
//! passed back as it came (`Ask::body`). What Chat Completions cannot
//! carry (`top_k`, extended thinking, documents and other block types,
//! server tools, container and MCP options) can only go there:
//! `Ask::upstream_only` names it, any other model is passed over, and with
//! none left the answer is a 400 naming the field, never a silent drop.

mod blocks;
pub mod reply;
pub mod stream;

use blocks::{tools, turn};

use serde_json::{json, Map, Value};

/// What the answer needs of the request.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The model name as the client sent it.
    pub model: String,
    pub stream: bool,
    /// The body as sent, for a provider that speaks Messages.
    pub body: std::sync::Arc<Map<String, Value>>,
    /// The first feature only a Messages provider can carry: what it is,
    /// and its field.
    pub upstream_only: Option<(String, &'static str)>,
    /// The client's `anthropic-version` and `anthropic-beta`, passed on to
    /// a Messages provider in place of its own.
    pub headers: Vec<(&'static str, String)>,
}

impl Ask {
    /// The body for a Messages upstream: the client's, with the
    /// upstream's model name.
    pub fn upstream_body(&self, upstream_model: &str) -> bytes::Bytes {
        let mut b = (*self.body).clone();
        b.insert("model".into(), Value::String(upstream_model.to_string()));
        bytes::Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
    }
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
    let mut only: Option<(String, &'static str)> = None;
    for (field, what) in [
        ("top_k", "`top_k`"),
        ("thinking", "extended thinking"),
        ("container", "containers"),
        ("mcp_servers", "MCP servers"),
    ] {
        if only.is_none() && o.get(field).is_some_and(|v| !v.is_null()) {
            only = Some((what.to_string(), field));
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
        turn(role, &m["content"], &mut messages, &mut only)?;
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
    tools(o, &mut chat, &mut only);
    let ask = Ask {
        model,
        stream,
        body: std::sync::Arc::new(o.clone()),
        upstream_only: only,
        headers: Vec::new(),
    };
    Ok((Value::Object(chat), ask))
}

#[cfg(test)]
mod tests;
