//! `POST /v1/chat/completions`: parse → route → try the chain → reply.
//!
//! Fallback: a connect error, a timeout, 408/409/429/5xx, or a stream that
//! ends before its first event moves to the next model in the route's
//! chain, after a jittered exponential backoff, up to `retry.max_attempts`
//! attempts (at least one per model in the chain). Once a stream has sent
//! its first byte to the client it is never restarted: a break becomes a
//! final error event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderValue};
use rand::Rng;

use super::account::{Close, Tab};
use super::auth::Caller;
use super::shared;
use crate::budget::{Exhausted, Refusal};
use crate::circuit::{Admit, State as CircuitState};
use crate::classify::{classify_with, tokens, Class, Texts};
use crate::error::ApiError;
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::{ModelId, OnExhausted};
use crate::request::ChatRequest;
use crate::route::{is_routed, route, Facts, RouteDecision, RouteError};
use crate::state::cache::{self, Directive, Entry};
use crate::state::limits::Subject as LimitSubject;
use crate::upstream::{Failure, Reply, RetryReason};
use futures::StreamExt;

const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub async fn chat_completions(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let tab = Tab::open(&gw, &caller, &request_id);
    let stop = req.extensions().get::<super::Stop>().map(|s| s.0.clone());
    let handled = match &stop {
        Some(stop) => tokio::select! {
            r = handle(&gw, &caller, &tab, req) => r,
            () = stop.cancelled() => Err(ApiError::unavailable(1).code("shutting_down")),
        },
        None => handle(&gw, &caller, &tab, req).await,
    };
    let handled = match (handled, stop) {
        // A stream ends when the shutdown grace period is over.
        (Ok(res), Some(stop)) if is_stream(&res) => {
            let (parts, body) = res.into_parts();
            let body = body.into_data_stream().take_until(stop.cancelled_owned());
            Ok(Response::from_parts(parts, Body::from_stream(body)))
        }
        (r, _) => r,
    };
    match handled {
        Ok(res) => res,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(status = e.status.as_u16(), cause = ?e.cause, "chat request failed");
            }
            tab.close(Close {
                usage: None,
                status: e.status.as_u16(),
                ending: "error",
            });
            e.into_response()
        }
    }
}

async fn handle(
    gw: &Arc<Gateway>,
    caller: &Caller,
    tab: &Tab,
    req: Request,
) -> Result<Response, ApiError> {
    let limit = gw.policy.max_body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, limit).await?;
    let chat = ChatRequest::parse(&bytes)?;
    tab.requested(&chat.model);
    let n = chat.messages().len();
    if n > gw.policy.max_messages as usize {
        return Err(ApiError::invalid_request(
            format!(
                "Invalid 'messages': {n} messages is more than this gateway allows ({}).",
                gw.policy.max_messages
            ),
            Some("messages"),
        ));
    }
    if let Some(m) = chat.max_tokens.filter(|m| *m > gw.policy.max_tokens_cap) {
        return Err(ApiError::invalid_request(
            format!(
                "Invalid 'max_tokens': {m} is more than this gateway allows ({}).",
                gw.policy.max_tokens_cap
            ),
            Some("max_tokens"),
        ));
    }
    if !caller.may_use(gw, &chat.model) {
        return Err(ApiError::model_not_found(&chat.model));
    }
    let prompt_tokens = tokens::count_chat(chat.messages());
    let texts = Texts::of(&chat);
    // A request that goes straight to the model it names has no routing
    // decision to make: the keyword classifier fills the ledger's fields.
    let router = gw.router().filter(|_| is_routed(&gw.policy, &chat.model));
    let class = classify_with(router, &texts.conversation(&chat, prompt_tokens));
    tab.classified(&class, prompt_tokens);
    let mut limits = shared::admit(
        gw,
        LimitSubject {
            key: &caller.key_id,
            team: &caller.team,
            model: None,
        },
        prompt_tokens,
    )
    .await?;
    let facts = Facts {
        task: Some(class.task),
        complexity: Some(class.complexity),
        strong_score: Some(class.strong_score),
        prompt_tokens: Some(prompt_tokens),
    };
    let decision = route(&gw.policy, &chat.model, &facts).map_err(|e| match e {
        RouteError::UnknownModel => ApiError::model_not_found(&chat.model),
        RouteError::NoRoute => ApiError::invalid_request(
            format!(
                "No route of this gateway accepts this request for `{}`.",
                chat.model
            ),
            Some("model"),
        )
        .code("no_route"),
    })?;
    tab.routed(&decision.rule);
    let chain = &decision.chain;

    // The cache: a hit is replayed as it was sent and costs nothing.
    let directive = gw
        .cache
        .as_ref()
        .map(|_| Directive::of(&parts.headers, &chat.body));
    let cache_key = match directive {
        Some(d) if d.lookup || d.store => {
            let names: Vec<&str> = chain.iter().map(|id| &*gw.model_names[*id]).collect();
            Some(cache::key(&caller.team, &names, &chat.body))
        }
        _ => None,
    };
    let cache_state = match directive {
        None => "off",
        Some(d) if !d.lookup && !d.store => "bypass",
        Some(_) => "miss",
    };
    tab.cache_status(cache_state);
    if let (Some(c), Some(k), Some(true)) = (&gw.cache, &cache_key, directive.map(|d| d.lookup)) {
        if let Some(e) = c.get(k).await {
            gw.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            tab.close_cached(&e);
            let mut res = shared::replay(&e);
            tag(res.headers_mut(), &decision, &e.model, &class, None);
            shared::add_headers(res.headers_mut(), &limits);
            return Ok(res);
        }
        gw.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    let store_key = cache_key.filter(|_| directive.is_some_and(|d| d.store));

    let policy = &gw.policy;
    let attempts = (policy.retry.max_attempts as usize).max(chain.len());
    let mut last: Option<RetryReason> = None;
    let mut tried = 0u32;
    // Per model of the chain: the context it is too small for, and the
    // budget that refused it (checked once each).
    let mut too_small: Vec<Option<Overflow>> = vec![None; chain.len()];
    let mut fit_checked = vec![false; chain.len()];
    let mut refused: Vec<Option<Exhausted>> = vec![None; chain.len()];
    let mut limited: Vec<Option<ApiError>> = vec![None; chain.len()];
    for i in 0..attempts {
        let at = i % chain.len();
        let id = chain[at];
        let backend = &gw.backends[id];
        if let Some(why) = backend.unavailable_reason() {
            last.get_or_insert(RetryReason::Unavailable(why));
            continue;
        }
        if !fit_checked[at] {
            fit_checked[at] = true;
            too_small[at] = overflow(gw, id, &chat, prompt_tokens).await;
        }
        if too_small[at].is_some() || refused[at].is_some() || limited[at].is_some() {
            continue;
        }
        // A model's own rate limits: over one, the next model is tried.
        let model_subject = LimitSubject {
            key: &caller.key_id,
            team: &caller.team,
            model: Some(&gw.model_names[id]),
        };
        match shared::admit(gw, model_subject, prompt_tokens).await {
            Ok(v) => shared::merge(&mut limits, v),
            Err(e) if e.status == http::StatusCode::TOO_MANY_REQUESTS => {
                limited[at] = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        }
        let remaining = match tab.reserve(id, caller, chat.max_tokens).await {
            Ok(r) => r,
            Err(Refusal::Exhausted(e)) if e.action == OnExhausted::Downgrade => {
                gw.counters
                    .budget_downgrades
                    .fetch_add(1, Ordering::Relaxed);
                refused[at] = Some(e);
                continue;
            }
            Err(Refusal::Exhausted(e)) => {
                gw.counters
                    .budget_rejections
                    .fetch_add(1, Ordering::Relaxed);
                return Err(quota_error(&e));
            }
            Err(Refusal::Unavailable) => {
                shared::unavailable(gw)?;
                None
            }
        };
        // An open circuit keeps a failing upstream out until its probe.
        if gw.breakers[id].admit(Instant::now()) == Admit::No {
            tab.release();
            last.get_or_insert(RetryReason::Unavailable("circuit open".into()));
            continue;
        }
        if tried > 0 {
            tokio::time::sleep(backoff(policy.retry.backoff, tried)).await;
        }
        tried += 1;
        let mut on_finish = Some(tab.on_finish());
        let attempt_started = Instant::now();
        let result = match backend {
            Backend::OpenAi(up) => {
                let body = chat.upstream_body(&policy.models[id].upstream_model);
                up.chat(
                    body,
                    chat.stream,
                    chat.include_usage,
                    gw.model_names[id].clone(),
                    &mut on_finish,
                )
                .await
            }
            #[cfg(feature = "local")]
            Backend::Local(m) => {
                m.chat(&chat, gw.model_names[id].clone(), &mut on_finish)
                    .await
            }
            Backend::Unavailable(why) => Err(Failure::Retry(RetryReason::Unavailable(why.clone()))),
        };
        tab.upstream_time(attempt_started.elapsed());
        let outcome = match &result {
            Err(Failure::Retry(reason)) => Err(reason),
            _ => Ok(()),
        };
        if let Some(state) = gw.breakers[id].record(outcome, Instant::now()) {
            match state {
                CircuitState::Open { .. } => {
                    tracing::warn!(model = %gw.model_names[id], "circuit opened: the model is skipped until a probe succeeds")
                }
                CircuitState::Closed { .. } => {
                    tracing::info!(model = %gw.model_names[id], "circuit closed: the model is back in routing")
                }
                CircuitState::HalfOpen { .. } => {}
            }
        }
        let notes = Notes {
            chain,
            too_small: &too_small,
            refused: &refused,
            limited: &limited,
        };
        match result {
            Ok(Reply::Json { body, usage }) => {
                tab.first_byte();
                let (cost, remaining) = tab.close(Close {
                    usage,
                    status: 200,
                    ending: "complete",
                });
                if let (Some(k), Some(u)) = (store_key, usage) {
                    shared::store(
                        gw,
                        k,
                        Entry {
                            stream: false,
                            model: gw.model_names[id].to_string(),
                            prompt_tokens: u.prompt_tokens,
                            completion_tokens: u.completion_tokens,
                            cost_nanos: cost.0,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        },
                    );
                }
                let mut res = Response::new(Body::from(body));
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                tag(h, &decision, &gw.model_names[id], &class, last.as_ref());
                notes.add_to(h, gw);
                shared::add_headers(h, &limits);
                h.insert("x-tollgate-cache", HeaderValue::from_static(cache_state));
                if usage.is_some() {
                    money_header(h, "x-tollgate-cost-usd", cost);
                }
                if let Some(r) = remaining {
                    money_header(h, "x-tollgate-budget-remaining-usd", r);
                }
                return Ok(res);
            }
            Ok(Reply::Stream(s)) => {
                tab.first_byte();
                let mut s = tab.guard(s);
                if let Some(k) = store_key {
                    s = shared::capture(gw, k, gw.model_names[id].to_string(), tab.clone(), s);
                }
                let mut res = Response::new(shared::body_of(s));
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                tag(h, &decision, &gw.model_names[id], &class, last.as_ref());
                notes.add_to(h, gw);
                shared::add_headers(h, &limits);
                h.insert("x-tollgate-cache", HeaderValue::from_static(cache_state));
                // The cost is known only at the end (the ledger has it);
                // the budget left is what remains after the reservation.
                if let Some(r) = remaining {
                    money_header(h, "x-tollgate-budget-remaining-usd", r);
                }
                return Ok(res);
            }
            Err(Failure::Final(e)) => {
                tab.release();
                return Err(e);
            }
            Err(Failure::Retry(reason)) => {
                tab.release();
                gw.requests
                    .upstream_error(&gw.model_names[id], &reason.kind());
                tracing::warn!(model = %gw.model_names[id], attempt = tried, reason = %reason, "attempt failed; trying the next model");
                last = Some(reason);
            }
        }
    }
    if tried == 0 {
        if let Some(e) = refused.iter().flatten().next() {
            gw.counters
                .budget_rejections
                .fetch_add(1, Ordering::Relaxed);
            return Err(quota_error(e));
        }
        if let Some(o) = too_small.iter().flatten().max_by_key(|o| o.context) {
            return Err(o.to_api_error());
        }
        if let Some(e) = limited.into_iter().flatten().next() {
            return Err(e);
        }
    }
    Err(last.map_or_else(|| ApiError::unavailable(1), |r| r.to_api_error()))
}

/// 429 `insufficient_quota`, naming the budget and what is left of it.
fn quota_error(e: &Exhausted) -> ApiError {
    ApiError::insufficient_quota(
        format!(
            "Budget {} cannot cover this request: it needs up to ${} and ${} of ${} is left. \
             Lower max_tokens, wait for the next period, or ask for a larger budget.",
            e.budget, e.needed, e.available, e.limit
        ),
        None,
    )
}

fn money_header(h: &mut http::HeaderMap, name: &'static str, v: Nanos) {
    if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
        h.insert(name, v);
    }
}

fn is_stream(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"text/event-stream")
}

/// A request that does not fit a model's context window.
#[derive(Debug, Clone, Copy)]
struct Overflow {
    context: u32,
    prompt: u32,
    completion: u32,
}

impl Overflow {
    fn needed(&self) -> u64 {
        u64::from(self.prompt) + u64::from(self.completion)
    }

    /// OpenAI's error for the same case (400 `context_length_exceeded`).
    fn to_api_error(self) -> ApiError {
        ApiError::invalid_request(
            format!(
                "This request needs {} tokens ({} in the messages, {} in the completion), more than \
                 the context of every model its route allows (the largest is {} tokens). \
                 Please reduce the length of the messages or completion.",
                self.needed(),
                self.prompt,
                self.completion,
                self.context
            ),
            Some("messages"),
        )
        .code("context_length_exceeded")
    }
}

/// `Some` when the prompt plus the requested completion (at least one
/// token) does not fit `id`'s declared context. Local models count with
/// their own tokenizer and chat template; OpenAI models with cl100k.
async fn overflow(gw: &Gateway, id: ModelId, chat: &ChatRequest, cl100k: u32) -> Option<Overflow> {
    let context = gw.policy.models[id].context?;
    let prompt = match &gw.backends[id] {
        #[cfg(feature = "local")]
        Backend::Local(m) => match m.count_prompt_tokens(chat).await {
            Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
            Err(_) => cl100k,
        },
        _ => cl100k,
    };
    let completion = chat.max_tokens.unwrap_or(1).max(1);
    let o = Overflow {
        context,
        prompt,
        completion,
    };
    (o.needed() > u64::from(context)).then_some(o)
}

/// Why models of the chain were passed over, for `x-tollgate-reason`.
struct Notes<'a> {
    chain: &'a [ModelId],
    too_small: &'a [Option<Overflow>],
    refused: &'a [Option<Exhausted>],
    limited: &'a [Option<ApiError>],
}

impl Notes<'_> {
    fn add_to(&self, h: &mut http::HeaderMap, gw: &Gateway) {
        let mut notes = Vec::new();
        for (i, id) in self.chain.iter().enumerate() {
            let name = &gw.model_names[*id];
            if let Some(o) = self.too_small[i] {
                notes.push(format!(
                    "{name} skipped: needs {} tokens, context {}",
                    o.needed(),
                    o.context
                ));
            }
            if let Some(e) = &self.refused[i] {
                notes.push(format!(
                    "{name} skipped: budget {} exhausted (downgrade)",
                    e.budget
                ));
            }
            if self.limited[i].is_some() {
                notes.push(format!("{name} skipped: rate limited"));
            }
        }
        if notes.is_empty() {
            return;
        }
        let reason = h
            .get("x-tollgate-reason")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if let Ok(v) = HeaderValue::from_str(&format!("{reason}; {}", notes.join("; "))) {
            h.insert("x-tollgate-reason", v);
        }
    }
}

/// The headers that say where a request went and why. `fell_back` is the
/// last failure before the model that answered, if any.
fn tag(
    h: &mut http::HeaderMap,
    decision: &RouteDecision,
    model: &str,
    class: &Class,
    fell_back: Option<&RetryReason>,
) {
    let rule = decision.rule.as_str();
    let reason = match fell_back {
        Some(why) => format!(
            "{}; fell back to {model} after {}",
            decision.reason,
            why.kind()
        ),
        None => decision.reason.clone(),
    };
    if let Ok(v) = HeaderValue::from_str(&reason) {
        h.insert("x-tollgate-reason", v);
    }
    h.insert(
        "x-tollgate-task",
        HeaderValue::from_static(class.task.as_str()),
    );
    h.insert(
        "x-tollgate-complexity",
        HeaderValue::from_static(class.complexity.as_str()),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", class.strong_score)) {
        h.insert("x-tollgate-strong-score", v);
    }
    if let Ok(v) = HeaderValue::from_str(rule) {
        h.insert("x-tollgate-route", v);
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-tollgate-model", v);
    }
}

/// Reads the body up to `limit` bytes; more is a 413.
async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large =
            std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::payload_too_large(limit)
        } else {
            ApiError::invalid_request("The request body could not be read.", None)
        }
    })
}

/// `base × 2^(n−1)`, times a random factor in [0.5, 1.5), at most 2 s.
fn backoff(base: Duration, n: u32) -> Duration {
    let exp = base.saturating_mul(1 << (n - 1).min(10));
    let jitter = rand::rng().random_range(0.5..1.5);
    exp.mul_f64(jitter).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        for _ in 0..100 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_millis(50) && first < Duration::from_millis(150));
            let third = backoff(base, 3);
            assert!(third >= Duration::from_millis(200) && third < Duration::from_millis(600));
            assert!(backoff(base, 30) <= MAX_BACKOFF);
        }
    }
}
