//! A chat answer as a Messages answer, and a gateway error in Anthropic's
//! shape (`{"type":"error","error":{"type","message"}}`) with its status.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Messages' `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// Messages' `usage` for a chat `usage`: `input_tokens` without the
/// cached part, which is `cache_read_input_tokens`.
pub fn usage(u: &Value) -> Value {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let prompt = n(&u["prompt_tokens"]);
    let cached = n(&u["prompt_tokens_details"]["cached_tokens"]).min(prompt);
    json!({"input_tokens": prompt - cached, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached, "output_tokens": n(&u["completion_tokens"])})
}

/// A chat completion as a Messages object named `model`.
pub fn message(chat: &Value, model: &str) -> Value {
    let choice = &chat["choices"][0];
    let m = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = m["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for c in m["tool_calls"].as_array().map_or(&[][..], Vec::as_slice) {
        let args = c["function"]["arguments"].as_str().unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
        content.push(json!({"type": "tool_use", "id": c["id"], "name": c["function"]["name"], "input": input}));
    }
    let id = chat["id"].as_str().unwrap_or("");
    json!({"id": message_id(id), "type": "message", "role": "assistant", "model": model,
        "content": content, "stop_reason": stop_reason(choice["finish_reason"].as_str()),
        "stop_sequence": null, "usage": usage(&chat["usage"])})
}

/// `msg_…` ids, as Messages clients expect.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{}", id.trim_start_matches("chatcmpl-"))
    }
}

/// Anthropic's error type and status for a gateway error status.
pub fn error_kind(status: u16) -> (u16, &'static str) {
    match status {
        400 | 405 | 408 | 415 | 422 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        402 | 403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        413 => (413, "request_too_large"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        _ => (500, "api_error"),
    }
}

/// A gateway error body (OpenAI's shape) in Anthropic's, with its status.
pub fn error(status: u16, openai_body: &[u8]) -> (u16, Value) {
    let (status, kind) = error_kind(status);
    let message = serde_json::from_slice::<Value>(openai_body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| "the request failed".to_string());
    (
        status,
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// An error in Anthropic's shape.
pub fn anthropic_error(e: &ApiError) -> Response {
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    let (status, v) = error(e.status.as_u16(), &body);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut res = (code, axum::Json(v)).into_response();
    if let Some(r) = e.retry_after {
        if let Ok(v) = HeaderValue::from_str(&r.to_string()) {
            res.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    res
}
