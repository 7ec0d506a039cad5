//! `POST /v1/completions` (the legacy text completions), passed through to
//! OpenAI-compatible upstreams with the same accounting as chat: admit
//! (key/team rate limits on the prompt tokens) → route (by name or alias,
//! with fallback) → cache (deterministic requests, as chat) → chat's
//! attempt loop (`chat::dispatch`, with this endpoint's `Attempt`: the
//! reservation holds the prompt plus `max_tokens`, 16 when absent as in
//! OpenAI's API, for each completion billed) → settle. Streams are
//! relayed frame by frame, cut before they outgrow their reservation, and
//! accounted when they end, however they end.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use serde_json::{Map, Value};

use super::auth::Caller;
use super::chat::cache::{self, Lookup};
use super::chat::dispatch::{self, Attempt};
use super::chat::price::Need;
use super::chat::settle::{Fact, Tab};
use super::chat::stop::Stop;
use super::chat::{admit, parse, replay, respond, Answered};
use super::passthrough;
use crate::gateway::{Backend, Gateway};
use crate::policy::ModelId;
use crate::request::Invalid;
use crate::state::cache::Directive;
use crate::upstream::{Failure, Reply};

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
    /// Completions billed per `max_tokens`: prompts × max(`n`, `best_of`).
    choices: u32,
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
    let bytes = parse::read_body(gw, &parts.headers, body).await?;
    let ask = parse_body(&bytes, gw.policy.max_tokens_cap)?;
    tab.note(Fact::Requested(&ask.model));
    let limits = admit::run(gw, caller, &ask.model, ask.prompt_tokens).await?;
    tab.note(Fact::Completion(ask.prompt_tokens));
    let decision = passthrough::route(gw, &ask.model, ask.prompt_tokens)?;
    tab.note(Fact::Route(&decision.rule));
    let directive = Directive::of(&parts.headers, &ask.body);
    let how = Answered {
        decision: &decision,
        class: None,
        task: "completion",
        needle: b"\"text\":\"",
        messages: false,
    };
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
        Lookup::Hit(e) => return Ok(replay(tab, &e, &how, &limits)),
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let job = dispatch::Job {
        attempt: &ask,
        prompt_tokens: ask.prompt_tokens,
        chain: &decision.chain,
        caller,
        tab,
    };
    let answer = dispatch::run(gw, job).await?;
    Ok(respond(gw, tab, plan, limits, answer, how))
}

impl Attempt for Ask {
    fn serves(&self, backend: &Backend) -> bool {
        passthrough::serves(backend)
    }

    fn need(&self, gw: &Gateway, id: ModelId) -> Need {
        let input = (self.prompt_tokens, self.body.get("prompt"));
        passthrough::need(gw, id, input, (Some(self.max_tokens), self.choices))
    }

    async fn call(&self, gw: &Gateway, id: ModelId, tab: &Tab) -> Result<Reply, Failure> {
        let Backend::OpenAi(up) = &gw.backends[id] else {
            return Err(passthrough::not_served(gw, id));
        };
        let body = upstream_body(self, &gw.policy.models[id].upstream_model);
        let mut on_finish = Some(tab.on_finish());
        let options = (self.stream, self.include_usage);
        up.chat(
            true,
            body,
            options,
            gw.model_names[id].clone(),
            &mut on_finish,
        )
        .await
    }
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
    let count = |k: &str| match body.get(k) {
        None | Some(Value::Null) => Ok(1),
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n @ 1..=128) => Ok(n),
            _ => Err(Invalid::new(
                format!("Invalid '{k}': expected an integer from 1 to 128."),
                Some(k),
            )),
        },
    };
    let (n, best_of) = (count("n")?, count("best_of")?);
    if best_of < n {
        return Err(Invalid::new(
            "best_of must be greater than or equal to n.",
            Some("best_of"),
        ));
    }
    // Each prompt of an array gets its own completions.
    let prompts = match body.get("prompt") {
        Some(Value::Array(a)) if a.iter().any(|p| !p.is_u64()) => a.len().max(1),
        _ => 1,
    };
    let choices = u32::try_from(prompts)
        .unwrap_or(u32::MAX)
        .saturating_mul(best_of);
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
        choices,
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
