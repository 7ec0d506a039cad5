//! What the OpenAI-compatible passthrough endpoints (`/v1/embeddings`,
//! `/v1/completions`) share in their attempt loops: before a model of the
//! chain is called, it must be an OpenAI-compatible upstream (the local
//! engine serves chat only), within its own rate limits, covered by the
//! budgets, and not behind an open circuit.

use std::time::Instant;

use super::auth::Caller;
use super::chat::admit;
use super::chat::reply::{self, Tags};
use super::chat::settle::Tab;
use super::chat::stop::Stop;
use crate::circuit::Admit;
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::{ModelId, OnExhausted};
use crate::request::Invalid;
use crate::route::{Facts, RouteDecision, RouteError};
use crate::state::budgets::Refusal;
use crate::state::cache::Entry;
use crate::state::limits::Verdict;
use crate::upstream::openai::OpenAiUpstream;
use serde_json::Value;

/// Why a local model is passed over here.
const CHAT_ONLY: &str = "cannot serve this endpoint (the local engine serves chat only)";

pub enum Ready<'g> {
    /// Call it; the tightest budget's money left after the reservation.
    Go(&'g OpenAiUpstream, Option<Nanos>),
    /// Pass it over; why, when it could not be tried at all (for the 503).
    Skip(Option<String>),
}

/// Checks model `id` for an attempt and reserves its worst case: the
/// prompt (`tokens` as cl100k counted them, and the `input` field the
/// model's own counter bounds), plus `max_tokens` of output.
pub async fn ready<'g>(
    gw: &'g Gateway,
    caller: &Caller,
    tab: &Tab,
    id: ModelId,
    (tokens, input): (u32, Option<&Value>),
    max_tokens: Option<u32>,
    limits: &mut Verdict,
) -> Result<Ready<'g>, Stop> {
    let name = &gw.model_names[id];
    let up = match &gw.backends[id] {
        Backend::OpenAi(up) => up,
        Backend::Unavailable(why) => {
            return Ok(Ready::Skip(Some(format!("{name} is unavailable ({why})"))))
        }
        #[cfg(feature = "local")]
        Backend::Local(_) => {
            let why = format!("{name} {CHAT_ONLY}");
            return Ok(Ready::Skip(Some(why)));
        }
    };
    match admit::limits(gw, admit::subject(caller, Some(name)), tokens).await {
        Ok(v) => limits.merge(v),
        Err(Stop::RateLimited(..)) => return Ok(Ready::Skip(None)),
        Err(e) => return Err(e),
    }
    let counted = match (&gw.policy.models[id].counter, input) {
        (crate::classify::counting::Counter::Cl100k, _) | (_, None) => u64::from(tokens),
        (c, Some(v)) => c.input(v),
    };
    let remaining = match tab.reserve(id, caller, counted, max_tokens).await {
        Ok(r) => r,
        Err(Refusal::Exhausted(e)) if e.action == OnExhausted::Downgrade => {
            return Ok(Ready::Skip(None))
        }
        Err(Refusal::Exhausted(e)) => return Err(Stop::Budget(e)),
        Err(Refusal::Unavailable) => {
            admit::unreachable(gw)?;
            None
        }
    };
    if gw.breakers[id].admit(Instant::now()) == Admit::No {
        tab.release();
        let why = format!("{name} is unavailable (circuit open after repeated failures)");
        return Ok(Ready::Skip(Some(why)));
    }
    Ok(Ready::Go(up, remaining))
}

/// The cl100k tokens of an `input` or `prompt` field: a string, an array
/// of strings, an array of token ids, or an array of token-id arrays (ids
/// count one each). `None` when it is none of these, or empty where
/// `empty` is false.
pub fn count_input(v: Option<&Value>, empty: bool) -> Option<u32> {
    let bpe = tiktoken_rs::cl100k_base_singleton();
    let text = |s: &str| (empty || !s.is_empty()).then(|| bpe.encode_ordinary(s).len());
    let ids = |a: &[Value]| (!a.is_empty() && a.iter().all(Value::is_u64)).then_some(a.len());
    let n = match v? {
        Value::String(s) => text(s)?,
        Value::Array(a) if ids(a).is_some() => a.len(),
        Value::Array(a) if !a.is_empty() => {
            let mut n = 0;
            for item in a {
                n += match item {
                    Value::String(s) => text(s)?,
                    Value::Array(inner) => ids(inner)?,
                    _ => return None,
                };
            }
            n
        }
        _ => return None,
    };
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The route for a model name or alias, with only the prompt's size as a
/// fact (nothing is classified on these endpoints).
pub fn route(gw: &Gateway, model: &str, prompt_tokens: u32) -> Result<RouteDecision, Stop> {
    let facts = Facts {
        prompt_tokens: Some(prompt_tokens),
        ..Facts::default()
    };
    crate::route::route(&gw.policy, model, &facts).map_err(|e| match e {
        RouteError::UnknownModel => Stop::ModelNotFound(model.to_string()),
        RouteError::NoRoute => Stop::NoRoute(model.to_string()),
    })
}

/// A cache hit, replayed; the tab closes for it.
pub fn replay(
    tab: &Tab,
    e: &Entry,
    decision: &RouteDecision,
    limits: &Verdict,
    task: &'static str,
) -> axum::response::Response {
    tab.close_cached(e);
    let t = Tags {
        decision,
        class: None,
        task,
        model: &e.model,
        fell_back: None,
        notes: &[],
        limits,
        cache: "hit",
        cost: Some(Nanos::ZERO),
        remaining: None,
    };
    reply::replay(e, &t)
}

/// A failed attempt on `name`: the hold is released; an answer the
/// upstream gave (a 4xx) ends the request, anything else is the reason
/// to try the next model.
pub fn failed(
    gw: &Gateway,
    tab: &Tab,
    name: &str,
    f: crate::upstream::Failure,
) -> Result<crate::upstream::RetryReason, Stop> {
    tab.release();
    match f {
        crate::upstream::Failure::Final(e) => Err(Stop::Upstream(e)),
        crate::upstream::Failure::Retry(reason) => {
            gw.requests.upstream_error(name, &reason.kind());
            tracing::warn!(model = %name, reason = %reason, "attempt failed; trying the next model");
            Ok(reason)
        }
    }
}

/// No model answered: the ones that could not be tried, if none was.
/// When every model of the chain is one that cannot serve the endpoint at
/// all, retrying cannot help: a 400 naming them, not a 503.
pub fn nothing_answered(last: Option<crate::upstream::RetryReason>, down: Vec<String>) -> Stop {
    if last.is_none() && !down.is_empty() && down.iter().all(|d| d.ends_with(CHAT_ONLY)) {
        let message = format!(
            "No model of this request's route can serve it: {}.",
            down.join("; ")
        );
        Stop::Invalid(Invalid::new(message, Some("model")))
    } else if last.is_none() && !down.is_empty() {
        Stop::Unavailable(down)
    } else {
        Stop::Failed(last)
    }
}
