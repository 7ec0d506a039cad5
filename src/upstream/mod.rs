//! The engine stage: where a chosen model actually runs.
//!
//! Each model in the policy gets one `Backend`: an OpenAI-compatible HTTP
//! upstream, the embedded local engine, or `Unavailable` (with the reason,
//! e.g. no API key) so the router skips it and says why at startup.
//!
//! A backend call either produces a `Reply` (nothing has been sent to the
//! client yet for a JSON reply; for a stream, the first event has arrived)
//! or a `Failure` telling the caller whether to try the next model.

mod errors;
pub mod openai;
mod responses;
mod rewrite;
pub mod sse;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::error::ApiError;

/// Token counts as reported by the model server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    /// Reads an OpenAI `usage` object: Chat Completions' names, or the
    /// Responses API's (`input_tokens`, `output_tokens`, which include
    /// reasoning tokens).
    pub fn from_json(v: &serde_json::Value) -> Option<Usage> {
        let n = |a: &str, b: &str| v.get(a).or_else(|| v.get(b))?.as_u64();
        Some(Usage {
            prompt_tokens: n("prompt_tokens", "input_tokens")?,
            completion_tokens: n("completion_tokens", "output_tokens")?,
        })
    }
}

/// A stream of SSE frames ready for the client (`data: ...\n\n`).
pub type SseStream = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// How a request ended, for accounting and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    /// The upstream broke off mid-stream; the client got an error event.
    UpstreamBroke,
    /// The client went away before the end.
    ClientGone,
}

/// Called exactly once when a reply ends, however it ends.
pub type OnFinish = Box<dyn FnOnce(Option<Usage>, Ending) + Send>;

/// What every streamed reply keeps while it runs: frames ready for the
/// client, the usage seen so far, how it ended, and the finish callback.
/// Dropping it before the end (the client went away) still runs the
/// callback, with `Ending::ClientGone`.
#[derive(Default)]
pub struct Outbox {
    pub ready: VecDeque<Bytes>,
    pub usage: Option<Usage>,
    pub ending: Option<Ending>,
    pub on_finish: Option<OnFinish>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(done) = self.on_finish.take() {
            done(self.usage, Ending::ClientGone);
        }
    }
}

/// A reply that produces frames into its `Outbox` each time it is pulled.
pub trait Pull: Send + 'static {
    fn outbox(&mut self) -> &mut Outbox;
    /// Waits for the next piece of the reply; sets `ending` at the end.
    fn pull(&mut self) -> impl Future<Output = ()> + Send;
}

/// The client's SSE stream for a `Pull` reply; the finish callback runs
/// once: just before the reply's last frame goes out (so the ledger has
/// the request's row before the client sees the end, while a wrapper that
/// cuts the stream still sees every earlier frame first), or when the
/// stream is dropped.
pub fn into_sse<P: Pull>(reply: P) -> SseStream {
    Box::pin(futures::stream::unfold(reply, |mut r| async move {
        loop {
            let out = r.outbox();
            if let Some(ending) = out.ending.filter(|_| out.ready.len() <= 1) {
                if let Some(done) = out.on_finish.take() {
                    done(out.usage, ending);
                }
            }
            if let Some(f) = out.ready.pop_front() {
                return Some((f, r));
            }
            if out.ending.is_some() {
                return None;
            }
            r.pull().await;
        }
    }))
}

pub enum Reply {
    /// A complete JSON body (`model` already names the policy model).
    Json { body: Bytes, usage: Option<Usage> },
    /// A stream whose first event has already arrived.
    Stream(SseStream),
}

/// Why an attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Try the next model in the chain (connect error, timeout, 429, 5xx,
    /// a full local engine, an upstream that rejects the gateway's key).
    Retry(RetryReason),
    /// Answer the client with this (e.g. the upstream says the request is invalid).
    Final(ApiError),
}

#[derive(Debug, Clone)]
pub enum RetryReason {
    Connect(String),
    Timeout,
    /// A retryable status; `retry_after` from the upstream, if any.
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Not configured or not loaded (e.g. no API key, model still loading).
    Unavailable(String),
    /// The local engine's queue is full.
    Busy,
    /// The upstream answered something that is not the OpenAI format.
    Malformed(String),
}

impl RetryReason {
    /// A short, client-safe name of the failure (no addresses or upstream text).
    pub fn kind(&self) -> String {
        match self {
            RetryReason::Connect(_) => "connect error".into(),
            RetryReason::Timeout => "timeout".into(),
            RetryReason::Status { status, .. } => format!("status {status}"),
            RetryReason::Unavailable(_) => "unavailable".into(),
            RetryReason::Busy => "busy".into(),
            RetryReason::Malformed(_) => "malformed reply".into(),
        }
    }

    /// The error a client gets when this was the last failure.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            RetryReason::Timeout => ApiError::gateway_timeout(),
            RetryReason::Status {
                status: 429,
                retry_after,
            } => ApiError::rate_limited(
                "The upstream model provider is rate limiting requests. Try again later.",
                Some(retry_after.unwrap_or(1)),
            )
            .caused_by(crate::error::Cause::Upstream),
            RetryReason::Unavailable(_) | RetryReason::Busy => ApiError::unavailable(1),
            RetryReason::Connect(_) | RetryReason::Status { .. } | RetryReason::Malformed(_) => {
                ApiError::bad_gateway()
            }
        }
    }
}

impl std::fmt::Display for RetryReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryReason::Connect(e) => write!(f, "connect error: {e}"),
            RetryReason::Timeout => f.write_str("timed out before the first byte"),
            RetryReason::Status { status, .. } => write!(f, "upstream status {status}"),
            RetryReason::Unavailable(why) => write!(f, "unavailable: {why}"),
            RetryReason::Busy => f.write_str("local engine queue full"),
            RetryReason::Malformed(why) => write!(f, "malformed upstream reply: {why}"),
        }
    }
}
