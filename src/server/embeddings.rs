//! `POST /v1/embeddings`, through the chat path's stages: parse → admit
//! (key/team rate limits, input tokens) → route (by model name or alias)
//! → cache (embeddings are deterministic, so cached by default, per team)
//! → the attempt loop (model rate limits, budget reservation of the input
//! at the model's input price, circuit, call; fallback along the chain) →
//! settle (ledger row with task `embedding`). Batched `input`, strings or
//! token arrays, passes through unchanged. The local engine serves chat
//! only: a local model in the chain is passed over, and named in the 503
//! when no model could answer.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::chat::cache::{self, Lookup};
use super::chat::reply::{self, Tags};
use super::chat::settle::{Close, Fact, Tab};
use super::chat::stop::Stop;
use super::chat::{admit, dispatch, parse};
use crate::circuit::Admit;
use crate::error::ApiError;
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::OnExhausted;
use crate::request::Invalid;
use crate::route::{route, Facts, RouteError};
use crate::state::budgets::Refusal;
use crate::state::cache::{Directive, Entry};
use crate::upstream::{Failure, RetryReason, Usage};

pub async fn embeddings(
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
    match handle(&gw, &caller, &tab, req).await {
        Ok(res) => res,
        Err(stop) => {
            let e = ApiError::from(stop);
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
) -> Result<Response, Stop> {
    let (parts, body) = req.into_parts();
    let bytes = parse::read_body(body, gw.policy.max_body_bytes).await?;
    let (body, model, tokens) = parse_body(&bytes)?;
    tab.note(Fact::Requested(&model));
    let mut limits = admit::run(gw, caller, &model, tokens).await?;
    tab.note(Fact::Embedding(tokens));
    let facts = Facts {
        prompt_tokens: Some(tokens),
        ..Facts::default()
    };
    let decision = route(&gw.policy, &model, &facts).map_err(|e| match e {
        RouteError::UnknownModel => Stop::ModelNotFound(model.clone()),
        RouteError::NoRoute => Stop::NoRoute(model.clone()),
    })?;
    tab.note(Fact::Route(&decision.rule));
    let directive = Directive::with(&parts.headers, true);
    let plan = match cache::run(
        gw,
        &caller.team,
        &decision.chain,
        directive,
        &body,
        "embeddings",
    )
    .await
    {
        Lookup::Hit(e) => {
            tab.close_cached(&e);
            let t = Tags {
                decision: &decision,
                class: None,
                model: &e.model,
                fell_back: None,
                notes: &[],
                limits: &limits,
                cache: "hit",
                cost: Some(Nanos::ZERO),
                remaining: None,
            };
            return Ok(reply::replay(&e, &t));
        }
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let mut last: Option<RetryReason> = None;
    let mut down = Vec::new();
    for &id in &decision.chain {
        let name = &gw.model_names[id];
        let up = match &gw.backends[id] {
            Backend::OpenAi(up) => up,
            Backend::Unavailable(why) => {
                down.push(format!("{name} is unavailable ({why})"));
                continue;
            }
            #[cfg(feature = "local")]
            Backend::Local(_) => {
                down.push(format!(
                    "{name} is unavailable (the local engine serves chat only)"
                ));
                continue;
            }
        };
        match admit::limits(gw, admit::subject(caller, Some(name)), tokens).await {
            Ok(v) => limits.merge(v),
            Err(Stop::RateLimited(..)) => continue,
            Err(e) => return Err(e),
        }
        let remaining = match tab.reserve(id, caller, Some(0)).await {
            Ok(r) => r,
            Err(Refusal::Exhausted(e)) if e.action == OnExhausted::Downgrade => continue,
            Err(Refusal::Exhausted(e)) => return Err(Stop::Budget(e)),
            Err(Refusal::Unavailable) => {
                admit::unreachable(gw)?;
                None
            }
        };
        if gw.breakers[id].admit(Instant::now()) == Admit::No {
            tab.release();
            down.push(format!(
                "{name} is unavailable (circuit open after repeated failures)"
            ));
            continue;
        }
        let started = Instant::now();
        let out = up
            .embeddings(
                upstream_body(&body, &gw.policy.models[id].upstream_model),
                name.clone(),
            )
            .await;
        tab.upstream_time(started.elapsed());
        dispatch::record(gw, id, &out);
        match out {
            Ok((answer, prompt)) => {
                tab.first_byte();
                let usage = prompt.map(|p| Usage {
                    prompt_tokens: p,
                    completion_tokens: 0,
                });
                let (cost, after) = tab.close(Close {
                    usage,
                    status: 200,
                    ending: "complete",
                });
                if let (Some(key), Some(u)) = (plan.store, usage) {
                    let entry = Entry {
                        stream: false,
                        model: name.to_string(),
                        prompt_tokens: u.prompt_tokens,
                        completion_tokens: 0,
                        cost_nanos: cost.0,
                        body: String::from_utf8_lossy(&answer).into_owned(),
                    };
                    cache::store(gw, key, entry);
                }
                let t = Tags {
                    decision: &decision,
                    class: None,
                    model: name,
                    fell_back: last.as_ref(),
                    notes: &[],
                    limits: &limits,
                    cache: plan.state,
                    cost: usage.map(|_| cost),
                    remaining: after.or(remaining),
                };
                return Ok(reply::json(answer, &t));
            }
            Err(Failure::Final(e)) => {
                tab.release();
                return Err(Stop::Upstream(e));
            }
            Err(Failure::Retry(reason)) => {
                tab.release();
                gw.requests.upstream_error(name, &reason.kind());
                tracing::warn!(model = %name, reason = %reason, "embeddings attempt failed; trying the next model");
                last = Some(reason);
            }
        }
    }
    if last.is_none() && !down.is_empty() {
        return Err(Stop::Unavailable(down));
    }
    Err(Stop::Failed(last))
}

/// The body, the model asked for, and the input tokens (cl100k for text,
/// the count of ids for token arrays).
fn parse_body(bytes: &[u8]) -> Result<(Map<String, Value>, String, u32), Invalid> {
    let body = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(Invalid::new("The request body must be a JSON object.", None)),
        Err(e) => {
            return Err(Invalid::new(
                format!("We could not parse the JSON body of your request: {e}. The body must be a JSON object."),
                None,
            ))
        }
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(Invalid::new(
                "you must provide a model parameter",
                Some("model"),
            ))
        }
    };
    let bpe = tiktoken_rs::cl100k_base_singleton();
    let invalid = || {
        Invalid::new(
            "Invalid 'input': expected a non-empty string, array of strings, array of token ids, \
             or array of token-id arrays.",
            Some("input"),
        )
    };
    let ids = |a: &[Value]| (!a.is_empty() && a.iter().all(Value::is_u64)).then_some(a.len());
    let tokens = match body.get("input") {
        Some(Value::String(s)) if !s.is_empty() => bpe.encode_ordinary(s).len(),
        Some(Value::Array(a)) if ids(a).is_some() => a.len(),
        Some(Value::Array(a)) if !a.is_empty() => {
            let mut n = 0;
            for item in a {
                n += match item {
                    Value::String(s) if !s.is_empty() => bpe.encode_ordinary(s).len(),
                    Value::Array(inner) => ids(inner).ok_or_else(invalid)?,
                    _ => return Err(invalid()),
                };
            }
            n
        }
        _ => return Err(invalid()),
    };
    Ok((body, model, u32::try_from(tokens).unwrap_or(u32::MAX)))
}

/// The client's body with the upstream's model name.
fn upstream_body(body: &Map<String, Value>, upstream_model: &str) -> Bytes {
    let mut b = body.clone();
    b.insert("model".into(), Value::String(upstream_model.to_string()));
    Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
}
