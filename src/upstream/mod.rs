//! The engine stage: where a chosen model actually runs.
//!
//! Each model in the policy gets one `Backend`: an OpenAI-compatible HTTP
//! upstream, the embedded local engine, or `Unavailable` (with the reason,
//! e.g. no API key) so the router skips it and says why at startup.
//!
//! A backend call either produces a `Reply` (nothing has been sent to the
//! client yet for a JSON reply; for a stream, the first event has arrived)
//! or a `Failure` telling the caller whether to try the next model.

pub mod anthropic;
mod errors;
pub mod http;
pub mod openai;
mod responses;
mod rewrite;
pub mod sse;
mod usage;

pub use usage::Usage;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::error::ApiError;

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

/// How a reply ended, for its accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// The usage the model server reported (`None`: it sent none).
    pub usage: Option<Usage>,
    pub ending: Ending,
    /// The text the reply carried so far: what is counted when `usage`
    /// is missing, so a cut stream still pays its tokens.
    pub produced: Produced,
}

/// Called exactly once when a reply ends, however it ends.
pub type OnFinish = Box<dyn FnOnce(Finish) + Send>;

/// The generated text of a reply as it arrives: content, refusals,
/// reasoning and tool-call names and arguments, of every choice; as text
/// (`push`), or as the raw events of a relayed stream (`push_event`),
/// parsed only if they are ever counted (a reply without usage), so a
/// stream that ends with its usage pays no second parse per chunk. Past
/// `Produced::CAP` bytes only the length grows (counted as one token a
/// byte: never under).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Produced {
    pub text: String,
    /// Raw OpenAI JSON events, one a line.
    events: Vec<u8>,
    /// Bytes past the cap, not kept.
    pub overflow: u64,
}

impl Produced {
    pub const CAP: usize = 1 << 20;

    fn room(&self) -> usize {
        Self::CAP.saturating_sub(self.text.len() + self.events.len())
    }

    pub fn push(&mut self, s: &str) {
        if s.len() <= self.room() {
            self.text.push_str(s);
        } else {
            self.overflow += s.len() as u64;
        }
    }

    /// Keeps one relayed event's JSON (`data`), to read if counted.
    pub fn push_event(&mut self, data: &[u8]) {
        if data.len() < self.room() {
            self.events.extend_from_slice(data);
            self.events.push(b'\n');
        } else {
            self.overflow += data.len() as u64;
        }
    }

    /// Its tokens by `count` (a model's counter), the bytes past the cap
    /// at one token each.
    pub fn tokens(&self, count: impl Fn(&str) -> u64) -> u64 {
        let mut all = Produced {
            text: self.text.clone(),
            ..Produced::default()
        };
        for line in self.events.split(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                all.push_json(&v);
            }
        }
        count(&all.text).saturating_add(self.overflow + all.overflow)
    }

    /// Adds the generated text of one OpenAI object: a Chat Completions
    /// chunk or response (`delta` or `message`), a legacy completion
    /// (`text`), or a Responses API event or response.
    pub fn push_json(&mut self, v: &serde_json::Value) {
        let mut add = |v: Option<&serde_json::Value>| {
            if let Some(s) = v.and_then(serde_json::Value::as_str) {
                self.push(s);
            }
        };
        if let Some(choices) = v.get("choices").and_then(serde_json::Value::as_array) {
            for c in choices {
                add(c.get("text"));
                let Some(m) = c.get("delta").or_else(|| c.get("message")) else {
                    continue;
                };
                for k in ["content", "refusal", "reasoning_content"] {
                    add(m.get(k));
                }
                let calls = m.get("tool_calls").and_then(serde_json::Value::as_array);
                for call in calls.into_iter().flatten() {
                    add(call.pointer("/function/name"));
                    add(call.pointer("/function/arguments"));
                }
            }
            return;
        }
        // Responses: a `*.delta` event, or a whole response's output.
        if v.get("type")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|t| t.ends_with(".delta"))
        {
            add(v.get("delta"));
            return;
        }
        let output = v
            .get("output")
            .or_else(|| v.pointer("/response/output"))
            .and_then(serde_json::Value::as_array);
        for item in output.into_iter().flatten() {
            add(item.get("arguments"));
            let parts = item.get("content").and_then(serde_json::Value::as_array);
            for p in parts.into_iter().flatten() {
                add(p.get("text"));
                add(p.get("refusal"));
            }
        }
    }
}

/// What every streamed reply keeps while it runs: frames ready for the
/// client, the usage seen so far, the text produced so far, how it ended,
/// and the finish callback. Dropping it before the end (the client went
/// away) still runs the callback, with `Ending::ClientGone`.
#[derive(Default)]
pub struct Outbox {
    pub ready: VecDeque<Bytes>,
    pub usage: Option<Usage>,
    pub produced: Produced,
    pub ending: Option<Ending>,
    pub on_finish: Option<OnFinish>,
}

impl Outbox {
    /// Runs the finish callback, if it has not run.
    fn finish(&mut self, ending: Ending) {
        if let Some(done) = self.on_finish.take() {
            done(Finish {
                usage: self.usage,
                ending,
                produced: std::mem::take(&mut self.produced),
            });
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.finish(Ending::ClientGone);
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
                out.finish(ending);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_reads_cached_prompt_tokens_from_either_api() {
        let chat = serde_json::json!({"prompt_tokens": 2006, "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 192}});
        let responses = serde_json::json!({"input_tokens": 2006, "output_tokens": 300,
            "input_tokens_details": {"cached_tokens": 1920}});
        for v in [chat, responses] {
            let u = Usage::from_json(&v).unwrap();
            assert_eq!(
                (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
                (2006, 1920, 300)
            );
        }
        // Never more cached than the prompt; none when not reported.
        let odd = serde_json::json!({"prompt_tokens": 5, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 9}});
        assert_eq!(Usage::from_json(&odd).unwrap().cached_tokens, 5);
        let plain = serde_json::json!({"prompt_tokens": 5, "completion_tokens": 1});
        assert_eq!(Usage::from_json(&plain).unwrap().cached_tokens, 0);
    }
}
