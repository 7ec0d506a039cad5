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
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::chat::cache::{self, Lookup};
use super::chat::reply::{self, Tags};
use super::chat::settle::{Close, Fact, Tab};
use super::chat::stop::Stop;
use super::chat::{admit, dispatch, parse};
use super::passthrough::{self, Ready};
use crate::gateway::Gateway;
use crate::request::Invalid;
use crate::state::cache::{Directive, Entry};
use crate::upstream::{RetryReason, Usage};

pub async fn embeddings(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    super::chat::serve(gw, caller, req, async |g, c, t, r| handle(g, c, t, r).await).await
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
    let decision = passthrough::route(gw, &model, tokens)?;
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
            return Ok(passthrough::replay(
                tab,
                &e,
                &decision,
                &limits,
                "embedding",
            ))
        }
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let mut last: Option<RetryReason> = None;
    let mut down = Vec::new();
    for &id in &decision.chain {
        let name = &gw.model_names[id];
        let (up, remaining) = match passthrough::ready(
            gw,
            caller,
            tab,
            id,
            (tokens, body.get("input")),
            Some(0),
            &mut limits,
        )
        .await?
        {
            Ready::Go(up, remaining) => (up, remaining),
            Ready::Skip(why) => {
                down.extend(why);
                continue;
            }
        };
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
                    task: "embedding",
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
            Err(f) => last = Some(passthrough::failed(gw, tab, name, f)?),
        }
    }
    Err(passthrough::nothing_answered(last, down))
}

/// The body, the model asked for, and the input tokens (cl100k for text,
/// the count of ids for token arrays).
fn parse_body(bytes: &[u8]) -> Result<(Map<String, Value>, String, u32), Invalid> {
    let (body, model) = crate::request::object_with_model(bytes)?;
    let tokens = passthrough::count_input(body.get("input"), false).ok_or_else(|| {
        Invalid::new(
            "Invalid 'input': expected a non-empty string, array of strings, array of token ids, \
             or array of token-id arrays.",
            Some("input"),
        )
    })?;
    Ok((body, model, tokens))
}

/// The client's body with the upstream's model name.
fn upstream_body(body: &Map<String, Value>, upstream_model: &str) -> Bytes {
    let mut b = body.clone();
    b.insert("model".into(), Value::String(upstream_model.to_string()));
    Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
}
