//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: Anthropic's
//! Messages API at the edge (`crate::messages`). A Messages request is
//! read into its chat equivalent and runs the chat path as it is; the
//! answer, its stream and its errors go back in Anthropic's shapes, with
//! the gateway's `x-tollgate-*` and rate-limit headers kept.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use http::StatusCode;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::messages::reply::{self, anthropic_error};
use crate::messages::{stream::Events, to_chat};
use crate::server::auth::Caller;

/// Reads the Messages body: JSON of at most `max_body_bytes`, sent in time.
async fn read(gw: &Gateway, req: Request) -> Result<(http::request::Parts, Value), Response> {
    let (parts, body) = req.into_parts();
    let bytes = super::chat::parse::read_body(gw, &parts.headers, body)
        .await
        .map_err(|s| anthropic_error(&ApiError::from(s)))?;
    let v = serde_json::from_slice::<Value>(&bytes).map_err(|e| {
        anthropic_error(&ApiError::invalid_request(
            format!("the body is not JSON: {e}"),
            None,
        ))
    })?;
    Ok((parts, v))
}

/// `anthropic-version`, when sent, must be a date (`2023-06-01`).
fn bad_version(parts: &http::request::Parts) -> Option<Response> {
    let v = parts.headers.get("anthropic-version")?;
    let ok = v
        .to_str()
        .is_ok_and(|v| v.len() == 10 && v.as_bytes()[4] == b'-' && v.as_bytes()[7] == b'-');
    (!ok).then(|| {
        anthropic_error(&ApiError::invalid_request(
            "anthropic-version: not a version date such as 2023-06-01",
            None,
        ))
    })
}

/// `POST /v1/messages`.
pub async fn messages(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let (parts, v) = match read(&gw, req).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    if let Some(res) = bad_version(&parts) {
        return res;
    }
    let (chat, ask) = match to_chat(&v) {
        Ok(t) => t,
        Err((message, field)) => {
            return anthropic_error(&ApiError::invalid_request(message, Some(field)))
        }
    };
    let body = Body::from(serde_json::to_vec(&chat).unwrap_or_default());
    let model = ask.model.clone();
    let mut ask = ask;
    for name in ["anthropic-version", "anthropic-beta"] {
        if let Some(v) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            ask.headers.push((name, v.to_string()));
        }
    }
    let mut req = Request::from_parts(parts, body);
    req.extensions_mut().insert(Arc::new(ask));
    let answer = super::chat::chat_completions(Extension(gw), Extension(caller), req).await;
    translate(answer, &model).await
}

/// The chat path's response as Messages': JSON, stream or error.
async fn translate(res: Response, model: &str) -> Response {
    let (mut parts, body) = res.into_parts();
    let is_stream = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"text/event-stream");
    if is_stream {
        let events = Arc::new(std::sync::Mutex::new(Events::new(model)));
        let tail = events.clone();
        let body = body
            .into_data_stream()
            .map(move |chunk| match chunk {
                Ok(b) => events.lock().map(|mut e| e.feed(&b)).unwrap_or_default(),
                Err(_) => Vec::new(),
            })
            .chain(futures::stream::once(async move {
                tail.lock().map(|mut e| e.finish()).unwrap_or_default()
            }))
            .flat_map(|frames| {
                futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>))
            });
        return Response::from_parts(parts, Body::from_stream(body));
    }
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return anthropic_error(&ApiError::bad_gateway());
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    if !parts.status.is_success() {
        let (status, v) = reply::error(parts.status.as_u16(), &bytes);
        parts.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return Response::from_parts(parts, Body::from(v.to_string()));
    }
    let chat: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    // A Messages provider's answer came through as it was.
    if chat["type"] == "message" {
        return Response::from_parts(parts, Body::from(bytes));
    }
    Response::from_parts(parts, Body::from(reply::message(&chat, model).to_string()))
}

/// `POST /v1/messages/count_tokens`: the prompt as the gateway counts it
/// for the named model (`classify::counting`: its tokenizer, else the byte
/// bound), without calling any model.
pub async fn count_tokens(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(_caller): Extension<Caller>,
    req: Request,
) -> Response {
    let (_, mut v) = match read(&gw, req).await {
        Ok(r) => r,
        Err(res) => return res,
    };
    // Counting needs no output bound.
    if v.get("max_tokens").is_none() {
        v["max_tokens"] = json!(1);
    }
    let (chat, ask) = match to_chat(&v) {
        Ok(t) => t,
        Err((message, field)) => {
            return anthropic_error(&ApiError::invalid_request(message, Some(field)))
        }
    };
    let counter = match gw.policy.model_ids.get(&ask.model) {
        Some(id) => gw.policy.models[*id].counter.clone(),
        None if gw.policy.aliases.contains_key(&ask.model) => {
            crate::classify::counting::Counter::Cl100k
        }
        None => return anthropic_error(&ApiError::model_not_found(&ask.model)),
    };
    let messages = chat["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let n = counter.chat(messages, chat.get("tools"));
    axum::Json(json!({"input_tokens": n})).into_response()
}
