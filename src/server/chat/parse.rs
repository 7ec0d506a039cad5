//! Parse: the body, read once up to the size limit, as a `ChatRequest`
//! that this gateway and this caller accept, with its prompt tokens. A
//! Responses API body is read as its chat equivalent, and kept.

use std::sync::Arc;

use axum::body::Body;
use http::HeaderMap;

use super::stop::Stop;
use crate::classify::tokens;
use crate::gateway::Gateway;
use crate::request::{ChatRequest, Invalid};
use crate::responses::Ask;

pub struct Parsed {
    pub chat: ChatRequest,
    /// The request's headers (cache directives).
    pub headers: HeaderMap,
    /// Counted with cl100k: admission, routing and the budget estimate.
    pub prompt_tokens: u32,
    /// For `/v1/responses`: the request as the client sent it.
    pub responses: Option<Arc<Ask>>,
}

/// Which API the body speaks.
#[derive(Clone, Copy)]
pub enum Endpoint {
    Chat,
    Responses,
}

pub async fn run(gw: &Gateway, req: axum::extract::Request, e: Endpoint) -> Result<Parsed, Stop> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(gw, &parts.headers, body).await?;
    let (chat, responses) = match e {
        Endpoint::Chat => (ChatRequest::parse(&bytes)?, None),
        Endpoint::Responses => {
            let (ask, chat) = crate::responses::parse(&bytes)?;
            (chat, Some(Arc::new(ask)))
        }
    };
    let what = if responses.is_some() {
        "input"
    } else {
        "messages"
    };
    let n = chat.messages().len();
    let max = gw.policy.max_messages;
    if n > max as usize {
        let message =
            format!("Invalid '{what}': {n} messages is more than this gateway allows ({max}).");
        return Err(Invalid::new(message, Some(what)).into());
    }
    let cap = gw.policy.max_tokens_cap;
    if let Some(m) = chat.max_tokens.filter(|m| *m > cap) {
        let field = if responses.is_some() {
            "max_output_tokens"
        } else {
            "max_tokens"
        };
        let message = format!("Invalid '{field}': {m} is more than this gateway allows ({cap}).");
        return Err(Invalid::new(message, Some(field)).into());
    }
    let prompt_tokens = tokens::count_chat(chat.messages());
    Ok(Parsed {
        chat,
        headers: parts.headers,
        prompt_tokens,
        responses,
    })
}

/// Reads a POST body: it must be declared JSON (`Content-Type:
/// application/json`, so a web page cannot spend through a browser with
/// a form or a "simple" cross-site request: those cannot send that type
/// without a CORS preflight, which the gateway never grants), at most
/// `max_body_bytes` long (more is a 413), and sent within `body_timeout`
/// (408).
pub(in crate::server) async fn read_body(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, Stop> {
    if !is_json(headers) {
        return Err(Stop::NotJson);
    }
    let limit = gw.policy.max_body_bytes;
    let read = axum::body::to_bytes(body, limit);
    let read = match tokio::time::timeout(gw.policy.body_timeout, read).await {
        Ok(r) => r,
        Err(_) => return Err(Stop::BodyTimeout(gw.policy.body_timeout)),
    };
    read.map_err(|e| {
        let too_large =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        Stop::Unreadable(too_large.then_some(limit))
    })
}

/// `application/json`, with parameters (`; charset=utf-8`) or not.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}
