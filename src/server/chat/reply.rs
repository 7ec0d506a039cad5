//! The response: its body, and every header that says where the request
//! went, why, and what it cost, written here and only here.

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::classify::Class;
use crate::money::Nanos;
use crate::route::RouteDecision;
use crate::state::cache::Entry;
use crate::state::limits::{reset_text, Verdict, Window};
use crate::upstream::{RetryReason, SseStream};

/// What the headers say.
pub struct Tags<'a> {
    pub decision: &'a RouteDecision,
    /// `None` for embeddings (task `embedding`, nothing to classify).
    pub class: Option<&'a Class>,
    /// `x-tollgate-task` without a class: `embedding`, `completion`.
    pub task: &'static str,
    /// The policy model that answered.
    pub model: &'a str,
    /// The last failure before that model, if any.
    pub fell_back: Option<&'a RetryReason>,
    /// Models of the chain passed over, and why.
    pub notes: &'a [String],
    pub limits: &'a Verdict,
    pub cache: &'static str,
    /// Known for JSON answers and cache hits (a stream's is in the ledger).
    pub cost: Option<Nanos>,
    /// The tightest budget's money left.
    pub remaining: Option<Nanos>,
}

/// A JSON answer.
pub fn json(body: Bytes, t: &Tags<'_>) -> Response {
    respond(Body::from(body), false, t)
}

/// A streamed answer.
pub fn stream(s: SseStream, t: &Tags<'_>) -> Response {
    respond(Body::from_stream(s.map(Ok::<_, Infallible>)), true, t)
}

/// A cache hit: the stored bytes, unchanged.
pub fn replay(e: &Entry, t: &Tags<'_>) -> Response {
    respond(Body::from(e.body_bytes()), e.stream, t)
}

fn respond(body: Body, stream: bool, t: &Tags<'_>) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    if stream {
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
    tag(h, t);
    res
}

fn tag(h: &mut HeaderMap, t: &Tags<'_>) {
    let mut reason = t.decision.reason.clone();
    if let Some(why) = t.fell_back {
        reason = format!("{reason}; fell back to {} after {}", t.model, why.kind());
    }
    for note in t.notes {
        reason.push_str("; ");
        reason.push_str(note);
    }
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    put("x-tollgate-reason", &reason);
    match t.class {
        Some(c) => {
            put("x-tollgate-task", c.task.as_str());
            put("x-tollgate-complexity", c.complexity.as_str());
            put("x-tollgate-strong-score", &format!("{:.3}", c.strong_score));
        }
        None => put("x-tollgate-task", t.task),
    }
    put("x-tollgate-route", &t.decision.rule);
    put("x-tollgate-model", t.model);
    put("x-tollgate-cache", t.cache);
    if let Some(c) = t.cost {
        put("x-tollgate-cost-usd", &c.to_string());
    }
    if let Some(r) = t.remaining {
        put("x-tollgate-budget-remaining-usd", &r.to_string());
    }
    for (name, value) in limit_headers(t.limits) {
        put(name, &value);
    }
}

/// `x-ratelimit-*` for the tightest limits of each kind (also on a 429).
pub fn limit_headers(v: &Verdict) -> Vec<(&'static str, String)> {
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
