//! What the OpenAI-compatible passthrough endpoints (`/v1/embeddings`,
//! `/v1/completions`) share in their parts of the attempt loop
//! (`chat::dispatch::Attempt`): only OpenAI-compatible upstreams serve
//! them (the local engine serves chat only), and their reservations count
//! an `input` or `prompt` field; plus their routing (by name or alias, no
//! classifier).

use serde_json::Value;

use super::chat::dispatch::CHAT_ONLY;
use super::chat::price::Need;
use super::chat::stop::Stop;
use crate::classify::counting::Counter;
use crate::gateway::{Backend, Gateway};
use crate::policy::ModelId;
use crate::route::{Facts, RouteDecision, RouteError};
use crate::state::bounds::Shape;
use crate::upstream::{Failure, RetryReason};

/// Whether `backend` serves the passthrough endpoints: OpenAI-compatible
/// upstreams do (or would, once configured); the local engine does not.
pub fn serves(backend: &Backend) -> bool {
    !is_local(backend)
}

#[cfg(feature = "local")]
fn is_local(backend: &Backend) -> bool {
    matches!(backend, Backend::Local(_))
}

#[cfg(not(feature = "local"))]
fn is_local(_: &Backend) -> bool {
    false
}

/// The failure of calling a model that `serves` passed over (never
/// reached: the loop asks `serves` first).
pub fn not_served(gw: &Gateway, id: ModelId) -> Failure {
    let why = gw.backends[id]
        .unavailable_reason()
        .unwrap_or_else(|| CHAT_ONLY.to_string());
    Failure::Retry(RetryReason::Unavailable(why))
}

/// What a reservation on `id` holds: the prompt (`tokens` as cl100k
/// counted them, and the `input` field the model's own counter bounds),
/// plus `output`: `max_tokens` of output for each of the choices billed.
pub fn need(
    gw: &Gateway,
    id: ModelId,
    (tokens, input): (u32, Option<&Value>),
    output: (Option<u32>, u32),
) -> Need {
    let counted = match (&gw.policy.models[id].counter, input) {
        (Counter::Cl100k, _) | (_, None) => u64::from(tokens),
        (c, Some(v)) => c.input(v),
    };
    Need {
        counted,
        prompt_cap: input.map_or(counted, |v| Counter::Bytes.input(v).max(counted)),
        max_tokens: output.0,
        choices: output.1,
        shape: if output.1 > 1 {
            Shape::Rich
        } else {
            Shape::Plain
        },
    }
}

/// The cl100k tokens of an `input` or `prompt` field: a string, an array
/// of strings, an array of token ids, or an array of token-id arrays (ids
/// count one each). `None` when it is none of these, or empty where
/// `empty` is false.
pub fn count_input(v: Option<&Value>, empty: bool) -> Option<u32> {
    let text = |s: &str| (empty || !s.is_empty()).then(|| crate::classify::counting::cl100k(s));
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
