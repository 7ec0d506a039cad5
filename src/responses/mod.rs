//! The Responses API (`POST /v1/responses`) in terms of Chat Completions.
//!
//! A Responses request is read once (`parse`) into what the gateway needs
//! (`Ask`) and a `ChatRequest` that says the same thing: the chat path
//! classifies, counts, budgets and routes that. A model whose provider
//! speaks Responses gets the client's body untouched (its model name
//! aside); any other model (the local engine, a provider marked
//! `chat_only`) gets the chat request, and its answer comes back as a
//! Responses object (`reply`) or event stream (`stream`).
//!
//! What only a Responses upstream can do (stored state:
//! `previous_response_id`, `store: true`, background mode, conversations,
//! item references; built-in tools) cannot be translated: `Ask::upstream_only`
//! says which field asked for it, and such a model is passed over.

pub mod reply;
pub mod stream;
mod translate;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::request::{ChatRequest, Invalid};
use crate::upstream::Reply;

/// A Responses request, as the gateway reads it.
#[derive(Debug, Clone)]
pub struct Ask {
    /// The whole body as sent.
    pub body: Map<String, Value>,
    pub stream: bool,
    /// The first feature the request uses that Chat Completions cannot
    /// carry: what it is, and the field that asked for it.
    pub upstream_only: Option<(String, String)>,
}

impl Ask {
    /// The body for a Responses upstream: the client's, with the
    /// upstream's model name.
    pub fn upstream_body(&self, upstream_model: &str) -> bytes::Bytes {
        let mut b = self.body.clone();
        b.insert("model".into(), Value::String(upstream_model.to_string()));
        bytes::Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
    }

    /// Whether the upstream adds input the gateway cannot see or count:
    /// a stored response, conversation or prompt, or built-in tools (web
    /// or file search results, which are billed as input). Such a request
    /// is reserved at the model's whole context.
    pub fn unbounded_input(&self) -> bool {
        let set = |k: &str| self.body.get(k).is_some_and(|v| !v.is_null());
        let builtin = self
            .body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| {
                t.iter()
                    .any(|t| t.get("type").and_then(Value::as_str) != Some("function"))
            });
        set("previous_response_id") || set("conversation") || set("prompt") || builtin
    }

    /// `max_output_tokens`, as validated by `parse`.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.body.get("max_output_tokens").and_then(Value::as_u64)
    }
}

/// A chat answer to `ask`, as the Responses API gives it.
pub fn from_chat(reply: Reply, ask: &Arc<Ask>) -> Result<Reply, String> {
    Ok(match reply {
        Reply::Json { body, usage } => Reply::Json {
            body: reply::from_chat(&body, ask)?,
            usage,
        },
        Reply::Stream(s) => Reply::Stream(stream::from_chat(s, ask.clone())),
    })
}

/// Reads a Responses body: the `Ask`, and the same request as chat.
pub fn parse(bytes: &[u8]) -> Result<(Ask, ChatRequest), Invalid> {
    let (body, _) = crate::request::object_with_model(bytes)?;
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(type_error("stream", "a boolean")),
    };
    if body.get("input").is_none_or(Value::is_null)
        && body.get("previous_response_id").is_none_or(Value::is_null)
        && body.get("prompt").is_none_or(Value::is_null)
    {
        return Err(Invalid::new(
            "Missing required parameter: 'input'.",
            Some("input"),
        ));
    }
    if body.get("background") == Some(&Value::Bool(true)) {
        return Err(Invalid::new(
            "Background mode is not available through this gateway: a background response is \
             billed after the request ends, where no budget can hold it. Send the request without \
             'background'.",
            Some("background"),
        ));
    }
    let t = translate::to_chat(&body)?;
    let chat = ChatRequest::from_body(t.chat).map_err(rename_param)?;
    let ask = Ask {
        body,
        stream,
        upstream_only: t.upstream_only,
    };
    Ok((ask, chat))
}

/// A chat field's error, named as the Responses field it came from.
fn rename_param(mut e: Invalid) -> Invalid {
    let from = match e.param.as_deref() {
        Some("max_tokens") => Some("max_output_tokens"),
        Some(p) if p.starts_with("messages") => Some("input"),
        _ => None,
    };
    if let Some(from) = from {
        e.message = e
            .message
            .replace("max_tokens", from)
            .replace("'messages'", "'input'");
        e.param = Some(from.to_string());
    }
    e
}

fn type_error(param: &str, expected: &str) -> Invalid {
    Invalid::new(
        format!("Invalid type for '{param}': expected {expected}."),
        Some(param),
    )
}

#[cfg(test)]
mod tests;
