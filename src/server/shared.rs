//! The chat handler's use of the shared state: rate-limit admission and
//! headers, the fail-closed/open decision, and cache replay and capture.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue};

use super::account::Tab;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::state::cache::{Entry, Key};
use crate::state::limits::{reset_text, Kind, Refusal, Subject, Verdict, Window};
use crate::upstream::SseStream;

/// Admits a request (or one model attempt) under the rate limits. Redis
/// down: 503 unless the state is `fail_open`.
pub async fn admit(gw: &Gateway, s: Subject<'_>, tokens: u32) -> Result<Verdict, ApiError> {
    if gw.limits.is_empty() {
        return Ok(Verdict::default());
    }
    match gw.limits.admit(s, tokens).await {
        Ok(v) => Ok(v),
        Err(Refusal::Limited {
            limit,
            kind,
            retry_after,
            verdict,
        }) => {
            gw.counters
                .rate_limited
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let what = match kind {
                Kind::Requests => "requests",
                Kind::Tokens => "tokens",
            };
            let message = match retry_after {
                Some(d) => format!(
                    "Rate limit reached for {what} per minute ({limit}). Please try again in {}.",
                    reset_text(d)
                ),
                None => format!(
                    "This request's {tokens} prompt tokens exceed the tokens-per-minute limit ({limit}) on their own."
                ),
            };
            let mut e = ApiError::rate_limited(message, retry_after.map(|d| d.as_secs().max(1)));
            e.headers = Some(Box::new(headers(&verdict)));
            Err(e)
        }
        Err(Refusal::Unavailable) => unavailable(gw).map(|()| Verdict::default()),
    }
}

/// Redis is down: `Ok` (admit unchecked) with `fail_open`, else 503.
pub fn unavailable(gw: &Gateway) -> Result<(), ApiError> {
    use std::sync::atomic::Ordering::Relaxed;
    if gw.policy.state.fail_open {
        gw.counters.unchecked.fetch_add(1, Relaxed);
        tracing::warn!(
            "Redis unreachable: request admitted without rate or budget checks (fail_open)"
        );
        Ok(())
    } else {
        gw.counters.state_unavailable.fetch_add(1, Relaxed);
        let mut e = ApiError::unavailable(1).code("state_unavailable");
        e.message = "The gateway's shared state (Redis) is unreachable, so budgets and rate \
                     limits cannot be checked. Please retry shortly."
            .into();
        Err(e)
    }
}

/// `x-ratelimit-*` for the tightest limits of each kind.
pub fn headers(v: &Verdict) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut add = |w: Option<Window>, names: [&'static str; 3]| {
        if let Some(w) = w {
            out.push((names[0], w.limit.to_string()));
            out.push((names[1], w.remaining.to_string()));
            out.push((names[2], reset_text(w.reset)));
        }
    };
    add(
        v.requests,
        [
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ],
    );
    add(
        v.tokens,
        [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ],
    );
    out
}

/// Merges a model attempt's verdict into the request's (tightest wins).
pub fn merge(into: &mut Verdict, v: Verdict) {
    for (slot, w) in [
        (&mut into.requests, v.requests),
        (&mut into.tokens, v.tokens),
    ] {
        if let Some(w) = w {
            if slot.is_none_or(|s| w.remaining < s.remaining) {
                *slot = Some(w);
            }
        }
    }
}

pub fn add_headers(h: &mut HeaderMap, v: &Verdict) {
    for (name, value) in headers(v) {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// The response for a cache hit: the stored bytes, unchanged.
pub fn replay(e: &Entry) -> Response {
    let mut res = Response::new(Body::from(e.body_bytes()));
    let h = res.headers_mut();
    if e.stream {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    } else {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    h.insert("x-tollgate-cache", HeaderValue::from_static("hit"));
    h.insert("x-tollgate-cost-usd", HeaderValue::from_static("0"));
    if let Ok(v) = HeaderValue::from_str(&e.model) {
        h.insert("x-tollgate-model", v);
    }
    res
}

/// Stores a JSON answer in the background.
pub fn store(gw: &Arc<Gateway>, key: Key, entry: Entry) {
    if let Some(cache) = gw.cache.clone() {
        gw.tasks.spawn(async move { cache.put(key, entry).await });
    }
}

/// Passes a stream through, keeping its frames; when it has ended after
/// `[DONE]` with no error event, they are stored as one entry. The tab has
/// closed by then (the inner stream closes it as it ends) and says what
/// the answer cost.
pub fn capture(gw: &Arc<Gateway>, key: Key, model: String, tab: Tab, s: SseStream) -> SseStream {
    struct Capture {
        inner: SseStream,
        frames: Vec<u8>,
        complete: bool,
        failed: bool,
    }
    let gw = gw.clone();
    let state = Capture {
        inner: s,
        frames: Vec::new(),
        complete: false,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut c| {
        let (gw, tab, model) = (gw.clone(), tab.clone(), model.clone());
        async move {
            match c.inner.next().await {
                Some(f) => {
                    if f.starts_with(b"data: {\"error\"") {
                        c.failed = true;
                    }
                    if !c.failed {
                        c.frames.extend_from_slice(&f);
                        c.complete = f.as_ref() == b"data: [DONE]\n\n";
                    }
                    Some((f, c))
                }
                None => {
                    if c.complete && !c.failed {
                        let (usage, cost) = tab.outcome();
                        let body = String::from_utf8_lossy(&c.frames).into_owned();
                        store(
                            &gw,
                            key,
                            Entry {
                                stream: true,
                                model,
                                prompt_tokens: usage.prompt_tokens,
                                completion_tokens: usage.completion_tokens,
                                cost_nanos: cost.0,
                                body,
                            },
                        );
                    }
                    None
                }
            }
        }
    }))
}

/// Body of a stream for axum.
pub fn body_of(s: SseStream) -> Body {
    Body::from_stream(s.map(Ok::<_, Infallible>))
}
