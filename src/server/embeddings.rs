//! `POST /v1/embeddings`, through the chat path's stages: parse → admit
//! (key/team rate limits, input tokens) → route (by model name or alias)
//! → cache (embeddings are deterministic, so cached by default, per team)
//! → chat's attempt loop (`chat::dispatch`: model rate limits, budget
//! reservation of the input at the model's input price, circuit, call;
//! backoff and fallback along the chain) → settle (ledger row with task
//! `embedding`). Batched `input`, strings or
//! token arrays, passes through unchanged. The local engine serves chat
//! only: a local model in the chain is passed over, and named in the 503
//! when no model could answer.

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
use crate::upstream::{Failure, Reply, Usage};

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
    let bytes = parse::read_body(gw, &parts.headers, body).await?;
    let (body, model, tokens) = parse_body(&bytes)?;
    tab.note(Fact::Requested(&model));
    let limits = admit::run(gw, caller, &model, tokens).await?;
    tab.note(Fact::Embedding(tokens));
    let decision = passthrough::route(gw, &model, tokens)?;
    tab.note(Fact::Route(&decision.rule));
    let directive = Directive::with(&parts.headers, true);
    let how = Answered {
        decision: &decision,
        class: None,
        task: "embedding",
        needle: b"\"content\":\"",
        messages: false,
    };
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
        Lookup::Hit(e) => return Ok(replay(tab, &e, &how, &limits)),
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let attempt = Embed { body, tokens };
    let job = dispatch::Job {
        attempt: &attempt,
        prompt_tokens: tokens,
        chain: &decision.chain,
        caller,
        tab,
    };
    let answer = dispatch::run(gw, job).await?;
    Ok(respond(gw, tab, plan, limits, answer, how))
}

/// An embeddings request: its body and input tokens (cl100k).
struct Embed {
    body: Map<String, Value>,
    tokens: u32,
}

impl Attempt for Embed {
    fn serves(&self, backend: &Backend) -> bool {
        passthrough::serves(backend)
    }

    fn need(&self, gw: &Gateway, id: ModelId) -> Need {
        passthrough::need(gw, id, (self.tokens, self.body.get("input")), (Some(0), 1))
    }

    /// The answer with its `usage.prompt_tokens` (no completion).
    async fn call(&self, gw: &Gateway, id: ModelId, _tab: &Tab) -> Result<Reply, Failure> {
        let Backend::OpenAi(up) = &gw.backends[id] else {
            return Err(passthrough::not_served(gw, id));
        };
        let body = upstream_body(&self.body, &gw.policy.models[id].upstream_model);
        let (body, prompt) = up.embeddings(body, gw.model_names[id].clone()).await?;
        let usage = prompt.map(|p| Usage::new(p, 0));
        Ok(Reply::Json { body, usage })
    }
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
