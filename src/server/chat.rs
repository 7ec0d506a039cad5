//! `POST /v1/chat/completions`: parse → route → try the chain → reply.
//!
//! Fallback: a connect error, a timeout, 408/409/429/5xx, or a stream that
//! ends before its first event moves to the next model in the route's
//! chain, after a jittered exponential backoff, up to `retry.max_attempts`
//! attempts (at least one per model in the chain). Once a stream has sent
//! its first byte to the client it is never restarted: a break becomes a
//! final error event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use http::{header, HeaderValue};
use rand::Rng;

use super::auth::Caller;
use crate::classify::{classify, tokens, Class, Texts};
use crate::error::ApiError;
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::{ModelId, Pricing};
use crate::request::ChatRequest;
use crate::route::{route, Facts, RouteDecision, RouteError};
use crate::upstream::{Ending, Failure, OnFinish, Reply, RetryReason, Usage};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub async fn chat_completions(
    State(gw): State<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    match handle(&gw, caller, req).await {
        Ok(res) => res,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::warn!(status = e.status.as_u16(), cause = ?e.cause, "chat request failed");
            }
            e.into_response()
        }
    }
}

async fn handle(gw: &Arc<Gateway>, caller: Caller, req: Request) -> Result<Response, ApiError> {
    let limit = gw.policy.max_body_bytes;
    let bytes = read_body(req.into_body(), limit).await?;
    let chat = ChatRequest::parse(&bytes)?;
    if !caller.may_use(gw, &chat.model) {
        return Err(ApiError::model_not_found(&chat.model));
    }
    let prompt_tokens = tokens::count_chat(chat.messages());
    let texts = Texts::of(&chat);
    let class = classify(&texts.conversation(&chat, prompt_tokens));
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

    let policy = &gw.policy;
    let chain = &decision.chain;
    let attempts = (policy.retry.max_attempts as usize).max(chain.len());
    let mut last: Option<RetryReason> = None;
    let mut tried = 0u32;
    // Models of the chain the request does not fit, found once each.
    let mut too_small: Vec<Option<Overflow>> = vec![None; chain.len()];
    let mut fit_checked = vec![false; chain.len()];
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
        if too_small[at].is_some() {
            continue;
        }
        if tried > 0 {
            tokio::time::sleep(backoff(policy.retry.backoff, tried)).await;
        }
        tried += 1;
        let mut on_finish = Some(finisher(gw, &caller, &decision.rule, id));
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
        match result {
            Ok(Reply::Json { body, usage }) => {
                let cost = cost_of(gw, id, usage);
                if let Some(done) = on_finish.take() {
                    done(usage, Ending::Complete);
                }
                let mut res = Response::new(Body::from(body));
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                tag(h, &decision, &gw.model_names[id], &class, last.as_ref());
                note_skips(h, gw, chain, &too_small);
                if let Some(c) = cost {
                    if let Ok(v) = HeaderValue::from_str(&c.to_string()) {
                        h.insert("x-tollgate-cost-usd", v);
                    }
                }
                return Ok(res);
            }
            Ok(Reply::Stream(s)) => {
                let mut res = Response::new(Body::from_stream(s.map(Ok::<_, Infallible>)));
                let h = res.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/event-stream"),
                );
                h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                tag(h, &decision, &gw.model_names[id], &class, last.as_ref());
                note_skips(h, gw, chain, &too_small);
                return Ok(res);
            }
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(reason)) => {
                tracing::warn!(model = %gw.model_names[id], attempt = tried, reason = %reason, "attempt failed; trying the next model");
                last = Some(reason);
            }
        }
    }
    if tried == 0 {
        if let Some(o) = too_small.iter().flatten().max_by_key(|o| o.context) {
            return Err(o.to_api_error());
        }
    }
    Err(last.map_or_else(|| ApiError::unavailable(1), |r| r.to_api_error()))
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

/// Adds to `x-tollgate-reason` which models were skipped because the
/// request does not fit their context.
fn note_skips(
    h: &mut http::HeaderMap,
    gw: &Gateway,
    chain: &[ModelId],
    skips: &[Option<Overflow>],
) {
    let notes: Vec<String> = chain
        .iter()
        .zip(skips)
        .filter_map(|(id, o)| {
            o.map(|o| {
                format!(
                    "{} skipped: needs {} tokens, context {}",
                    gw.model_names[*id],
                    o.needed(),
                    o.context
                )
            })
        })
        .collect();
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
    if let Ok(v) = HeaderValue::from_str(&format!("{:.2}", class.strong_score)) {
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

fn cost_of(gw: &Gateway, id: ModelId, usage: Option<Usage>) -> Option<Nanos> {
    let u = usage?;
    let price = match (&gw.backends[id], gw.policy.models[id].pricing) {
        #[cfg(feature = "local")]
        (Backend::Local(m), _) => m.price(),
        (_, Pricing::PerToken(p)) => p,
        (_, Pricing::GpuHour(_)) => return None,
    };
    Some(price.cost(u.prompt_tokens, u.completion_tokens))
}

/// What runs when a reply ends: the per-request log line (no prompt text,
/// no keys).
fn finisher(gw: &Arc<Gateway>, caller: &Caller, rule: &str, id: ModelId) -> OnFinish {
    let gw = gw.clone();
    let key = caller.key_id.clone();
    let team = caller.team.clone();
    let rule = rule.to_string();
    Box::new(move |usage: Option<Usage>, ending: Ending| {
        let cost = cost_of(&gw, id, usage);
        let u = usage.unwrap_or_default();
        tracing::info!(
            key = %key,
            team = %team,
            route = %rule,
            model = %gw.model_names[id],
            prompt_tokens = u.prompt_tokens,
            completion_tokens = u.completion_tokens,
            usage_known = usage.is_some(),
            cost_usd = %cost.map(|c| c.to_string()).unwrap_or_default(),
            ending = ?ending,
            "request finished"
        );
    })
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
