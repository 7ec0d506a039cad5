//! Parse: the body, read once up to the size limit, as a `ChatRequest`
//! that this gateway and this caller accept, with its prompt tokens.

use axum::body::Body;
use http::HeaderMap;

use super::stop::Stop;
use crate::classify::tokens;
use crate::gateway::Gateway;
use crate::request::{ChatRequest, Invalid};

pub struct Parsed {
    pub chat: ChatRequest,
    /// The request's headers (cache directives).
    pub headers: HeaderMap,
    /// Counted with cl100k: admission, routing and the budget estimate.
    pub prompt_tokens: u32,
}

pub async fn run(gw: &Gateway, req: axum::extract::Request) -> Result<Parsed, Stop> {
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, gw.policy.max_body_bytes).await?;
    let chat = ChatRequest::parse(&bytes)?;
    let n = chat.messages().len();
    let max = gw.policy.max_messages;
    if n > max as usize {
        let message =
            format!("Invalid 'messages': {n} messages is more than this gateway allows ({max}).");
        return Err(Invalid::new(message, Some("messages")).into());
    }
    let cap = gw.policy.max_tokens_cap;
    if let Some(m) = chat.max_tokens.filter(|m| *m > cap) {
        let message =
            format!("Invalid 'max_tokens': {m} is more than this gateway allows ({cap}).");
        return Err(Invalid::new(message, Some("max_tokens")).into());
    }
    let prompt_tokens = tokens::count_chat(chat.messages());
    Ok(Parsed {
        chat,
        headers: parts.headers,
        prompt_tokens,
    })
}

/// Reads the body up to `limit` bytes; more is a 413.
pub(in crate::server) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Stop> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        Stop::Unreadable(too_large.then_some(limit))
    })
}
