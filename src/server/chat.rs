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
use crate::classify::{classify, Class, Texts};
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
    let texts = Texts::of(&chat);
    let class = classify(&texts.conversation(&chat, 0));
    let facts = Facts {
        task: Some(class.task),
        complexity: Some(class.complexity),
        strong_score: Some(class.strong_score),
        // Set once prompt tokens are counted with the model's tokenizer.
        prompt_tokens: None,
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
    for i in 0..attempts {
        let id = chain[i % chain.len()];
        let backend = &gw.backends[id];
        if let Some(why) = backend.unavailable_reason() {
            last.get_or_insert(RetryReason::Unavailable(why));
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
                return Ok(res);
            }
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Retry(reason)) => {
                tracing::warn!(model = %gw.model_names[id], attempt = tried, reason = %reason, "attempt failed; trying the next model");
                last = Some(reason);
            }
        }
    }
    Err(last.map_or_else(|| ApiError::unavailable(1), |r| r.to_api_error()))
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
