//! Why a chat request ends without an answer: small domain values from
//! the stages, mapped to OpenAI-shaped HTTP errors here and only here.

use crate::error::ApiError;
use crate::request::Invalid;
use crate::state::budgets::Exhausted;
use crate::state::limits::{reset_text, Kind, Limited};
use crate::upstream::RetryReason;

use super::reply::limit_headers;

#[derive(Debug)]
pub enum Stop {
    /// The body could not be read (`None`) or was over the limit.
    Unreadable(Option<usize>),
    /// A POST body not declared `application/json`.
    NotJson,
    /// The body did not arrive within this time.
    BodyTimeout(std::time::Duration),
    Invalid(Invalid),
    ModelNotFound(String),
    NoRoute(String),
    /// Over a rate limit, with the prompt tokens the request counted.
    RateLimited(Limited, u32),
    Budget(Exhausted),
    /// Redis is down and the state fails closed.
    StateUnavailable,
    ContextTooLong(Overflow),
    /// Every attempt failed; the last reason, if any model was tried.
    Failed(Option<RetryReason>),
    /// No model of the chain could be tried: each one and why.
    Unavailable(Vec<String>),
    /// The upstream's own answer to a request it rejects (a 4xx).
    Upstream(ApiError),
    ShuttingDown,
}

impl From<Invalid> for Stop {
    fn from(e: Invalid) -> Stop {
        Stop::Invalid(e)
    }
}

impl From<Stop> for ApiError {
    fn from(s: Stop) -> ApiError {
        match s {
            Stop::Unreadable(Some(limit)) => ApiError::payload_too_large(limit),
            Stop::Unreadable(None) => {
                ApiError::invalid_request("The request body could not be read.", None)
            }
            Stop::NotJson => ApiError::new(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "The request body must be JSON, sent with `Content-Type: application/json`.",
            )
            .code("unsupported_media_type"),
            Stop::BodyTimeout(d) => ApiError::new(
                http::StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                format!(
                    "The request body did not arrive within {} s.",
                    d.as_secs_f64()
                ),
            )
            .code("request_timeout"),
            Stop::Invalid(e) => ApiError::invalid_request(e.message, e.param.as_deref()),
            Stop::ModelNotFound(m) => ApiError::model_not_found(&m),
            Stop::NoRoute(m) => ApiError::invalid_request(
                format!("No route of this gateway accepts this request for `{m}`."),
                Some("model"),
            )
            .code("no_route"),
            Stop::RateLimited(l, tokens) => rate_limited(&l, tokens),
            Stop::Budget(e) => ApiError::insufficient_quota(
                format!(
                    "Budget {} cannot cover this request: it needs up to ${} and ${} of ${} is left. \
                     Lower max_tokens, wait for the next period, or ask for a larger budget.",
                    e.budget, e.needed, e.available, e.limit
                ),
                None,
            ),
            Stop::StateUnavailable => {
                let mut e = ApiError::unavailable(1).code("state_unavailable");
                e.message = "The gateway's shared state (Redis) is unreachable, so budgets and rate \
                             limits cannot be checked. Please retry shortly."
                    .into();
                e
            }
            Stop::ContextTooLong(o) => ApiError::invalid_request(
                format!(
                    "This request needs {} tokens ({} in the messages, {} in the completion), more than \
                     the context of every model its route allows (the largest is {} tokens). \
                     Please reduce the length of the messages or completion.",
                    o.needed(),
                    o.prompt,
                    o.completion,
                    o.context
                ),
                Some("messages"),
            )
            .code("context_length_exceeded"),
            Stop::Failed(last) => last.map_or_else(|| ApiError::unavailable(1), |r| r.to_api_error()),
            Stop::Unavailable(down) => {
                let mut e = ApiError::unavailable(1);
                e.message = format!(
                    "No model for this request is available right now: {}. Try again later.",
                    down.join("; ")
                );
                e
            }
            Stop::Upstream(e) => e,
            Stop::ShuttingDown => ApiError::unavailable(1).code("shutting_down"),
        }
    }
}

fn rate_limited(l: &Limited, tokens: u32) -> ApiError {
    let what = match l.kind {
        Kind::Requests => "requests",
        Kind::Tokens => "tokens",
    };
    let limit = &l.limit;
    let message = match l.retry_after {
        Some(d) => format!(
            "Rate limit reached for {what} per minute ({limit}). Please try again in {}.",
            reset_text(d)
        ),
        None => format!(
            "This request's {tokens} prompt tokens exceed the tokens-per-minute limit ({limit}) on their own."
        ),
    };
    let mut e = ApiError::rate_limited(message, l.retry_after.map(|d| d.as_secs().max(1)));
    e.headers = Some(Box::new(limit_headers(&l.verdict)));
    e
}

/// A request that does not fit a model's context window.
#[derive(Debug, Clone, Copy)]
pub struct Overflow {
    pub context: u32,
    pub prompt: u32,
    pub completion: u32,
}

impl Overflow {
    pub fn needed(&self) -> u64 {
        u64::from(self.prompt) + u64::from(self.completion)
    }
}
