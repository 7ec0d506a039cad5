//! `POST /v1/completions` (the legacy text completions), passed through to
//! OpenAI-compatible upstreams with the same accounting as chat: admit
//! (key/team rate limits on the prompt tokens) → route (by name or alias,
//! with fallback) → cache (deterministic requests, as chat) → the attempt
//! loop (`passthrough::ready`: model limits, a reservation of the prompt
//! plus `max_tokens`, 16 when absent as in OpenAI's API, circuit) →
//! settle. Streams are relayed frame by frame, cut before they outgrow
//! their reservation, and accounted when they end, however they end.

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
use super::chat::{admit, budget_cut, dispatch, parse};
use super::passthrough::{self, Ready};
use crate::gateway::Gateway;
use crate::request::Invalid;
use crate::state::cache::{Directive, Entry};
use crate::upstream::{Reply, RetryReason};

/// OpenAI's default `max_tokens` for legacy completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

pub async fn completions(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    super::chat::serve(gw, caller, req, async |g, c, t, r| handle(g, c, t, r).await).await
}

/// What the gateway reads of a completions request.
struct Ask {
    body: Map<String, Value>,
    model: String,
    prompt_tokens: u32,
    max_tokens: u32,
    stream: bool,
    include_usage: bool,
}

async fn handle(
    gw: &Arc<Gateway>,
    caller: &Caller,
    tab: &Tab,
    req: Request,
) -> Result<Response, Stop> {
    let (parts, body) = req.into_parts();
    let bytes = parse::read_body(body, gw.policy.max_body_bytes).await?;
    let ask = parse_body(&bytes, gw.policy.max_tokens_cap)?;
    tab.note(Fact::Requested(&ask.model));
    let mut limits = admit::run(gw, caller, &ask.model, ask.prompt_tokens).await?;
    tab.note(Fact::Completion(ask.prompt_tokens));
    let decision = passthrough::route(gw, &ask.model, ask.prompt_tokens)?;
    tab.note(Fact::Route(&decision.rule));
    let directive = Directive::of(&parts.headers, &ask.body);
    let plan = match cache::run(
        gw,
        &caller.team,
        &decision.chain,
        directive,
        &ask.body,
        "completions",
    )
    .await
    {
        Lookup::Hit(e) => {
            return Ok(passthrough::replay(
                tab,
                &e,
                &decision,
                &limits,
                "completion",
            ))
        }
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let (mut last, mut down): (Option<RetryReason>, Vec<String>) = (None, Vec::new());
    for &id in &decision.chain {
        let name = &gw.model_names[id];
        let ready = passthrough::ready(
            gw,
            caller,
            tab,
            id,
            (ask.prompt_tokens, ask.body.get("prompt")),
            Some(ask.max_tokens),
            &mut limits,
        );
        let (up, remaining) = match ready.await? {
            Ready::Go(up, remaining) => (up, remaining),
            Ready::Skip(why) => {
                down.extend(why);
                continue;
            }
        };
        let started = Instant::now();
        let body = upstream_body(&ask, &gw.policy.models[id].upstream_model);
        let mut on_finish = Some(tab.on_finish());
        let out = up
            .chat(
                true,
                body,
                (ask.stream, ask.include_usage),
                name.clone(),
                &mut on_finish,
            )
            .await;
        tab.upstream_time(started.elapsed());
        dispatch::record(gw, id, &out);
        let mut tags = Tags {
            decision: &decision,
            class: None,
            task: "completion",
            model: name,
            fell_back: last.as_ref(),
            notes: &[],
            limits: &limits,
            cache: plan.state,
            cost: None,
            remaining,
        };
        match out {
            Ok(Reply::Json { body, usage }) => {
                tab.first_byte();
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
                        completion_tokens: u.completion_tokens,
                        cost_nanos: cost.0,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    cache::store(gw, key, entry);
                }
                tags.cost = usage.map(|_| cost);
                tags.remaining = after;
                return Ok(reply::json(body, &tags));
            }
            Ok(Reply::Stream(s)) => {
                tab.first_byte();
                let mut s = budget_cut::guard_on(tab, s, b"\"text\":\"");
                if let Some(key) = plan.store {
                    s = cache::capture(gw, key, name.to_string(), tab.clone(), s);
                }
                return Ok(reply::stream(s, &tags));
            }
            Err(f) => last = Some(passthrough::failed(gw, tab, name, f)?),
        }
    }
    Err(passthrough::nothing_answered(last, down))
}

fn parse_body(bytes: &[u8], cap: u32) -> Result<Ask, Invalid> {
    let (body, model) = crate::request::object_with_model(bytes)?;
    let prompt_tokens = passthrough::count_input(body.get("prompt"), true).ok_or_else(|| {
        Invalid::new(
            "Invalid 'prompt': expected a string, an array of strings, an array of token ids, \
             or an array of token-id arrays.",
            Some("prompt"),
        )
    })?;
    let max_tokens = match body.get("max_tokens") {
        None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if n <= cap => n,
            Some(n) => {
                let message =
                    format!("Invalid 'max_tokens': {n} is more than this gateway allows ({cap}).");
                return Err(Invalid::new(message, Some("max_tokens")));
            }
            None => {
                return Err(Invalid::new(
                    "Invalid type for 'max_tokens': expected an integer.",
                    Some("max_tokens"),
                ))
            }
        },
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(Invalid::new(
                "Invalid type for 'stream': expected a boolean.",
                Some("stream"),
            ))
        }
    };
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Ask {
        prompt_tokens,
        body,
        model,
        max_tokens,
        stream,
        include_usage,
    })
}

/// The client's body with the upstream's model name and the gateway's
/// `max_tokens` bound; streams always ask for the usage chunk (the
/// gateway accounts every request; clients that did not ask do not see it).
fn upstream_body(ask: &Ask, upstream_model: &str) -> Bytes {
    let mut b = ask.body.clone();
    b.insert("model".into(), Value::String(upstream_model.to_string()));
    b.insert("max_tokens".into(), Value::from(ask.max_tokens));
    if ask.stream {
        let mut opts = match b.get("stream_options") {
            Some(Value::Object(o)) => o.clone(),
            _ => Map::new(),
        };
        opts.insert("include_usage".into(), Value::Bool(true));
        b.insert("stream_options".into(), Value::Object(opts));
    }
    Bytes::from(serde_json::to_vec(&b).unwrap_or_default())
}
