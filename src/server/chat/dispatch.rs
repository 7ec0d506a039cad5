//! Dispatch: the attempt loop over the route's chain.
//!
//! Per model, in order: context fit, the model's own rate limits, the
//! budget reservation, the circuit breaker, then the call. A model passed
//! over for one of the first three is skipped for the rest of the request
//! and named in `x-tollgate-reason`.
//!
//! Fallback: a connect error, a timeout, 408/409/429/5xx, or a stream that
//! ends before its first event moves to the next model in the chain, after
//! a jittered exponential backoff, up to `retry.max_attempts` attempts (at
//! least one per model in the chain). Once a stream has sent its first
//! byte to the client it is never restarted: a break becomes a final error
//! event.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::admit;
use super::settle::Tab;
use super::stop::{Overflow, Stop};
use crate::circuit::{Admit, State as CircuitState};
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::{ModelId, OnExhausted};
use crate::request::ChatRequest;
use crate::responses::Ask;
use crate::server::auth::Caller;
use crate::state::budgets::{Exhausted, Refusal};
use crate::state::limits::{Limited, Verdict};
use crate::upstream::{Failure, Reply, RetryReason};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the attempt loop needs to know about the request.
pub struct Job<'a> {
    pub chat: &'a ChatRequest,
    pub prompt_tokens: u32,
    pub chain: &'a [ModelId],
    pub caller: &'a Caller,
    pub tab: &'a Tab,
    /// For `/v1/responses`: the client's request, for models that speak it.
    pub responses: Option<&'a Arc<Ask>>,
}

/// The model that answered, and how the chain got there.
pub struct Answer {
    pub model: ModelId,
    pub reply: Reply,
    /// The tightest budget's money left after the reservation.
    pub remaining: Option<Nanos>,
    /// The last failure before the model that answered.
    pub fell_back: Option<RetryReason>,
    /// Why models of the chain were passed over.
    pub notes: Vec<String>,
    /// The models' rate-limit verdicts (merged into the request's).
    pub limits: Verdict,
}

/// Why a model of the chain was passed over.
enum Skip {
    TooSmall(Overflow),
    Budget(Exhausted),
    Limited(Limited),
    /// A Responses feature Chat Completions cannot carry: what, and its field.
    Cannot(String, String),
}

/// One model of the chain during the loop.
#[derive(Default)]
struct Slot {
    fit_checked: bool,
    skip: Option<Skip>,
}

pub async fn run(gw: &Arc<Gateway>, job: Job<'_>) -> Result<Answer, Stop> {
    let Job {
        chat,
        prompt_tokens,
        chain,
        caller,
        tab,
        responses,
    } = job;
    let policy = &gw.policy;
    let attempts = (policy.retry.max_attempts as usize).max(chain.len());
    let mut slots: Vec<Slot> = chain.iter().map(|_| Slot::default()).collect();
    let mut limits = Verdict::default();
    let mut last: Option<RetryReason> = None;
    let mut tried = 0u32;
    // Models that could not be tried at all, and why (for the 503).
    let mut down: Vec<String> = Vec::new();
    for i in 0..attempts {
        let at = i % chain.len();
        let id = chain[at];
        let name = &gw.model_names[id];
        let backend = &gw.backends[id];
        if let Some(why) = backend.unavailable_reason() {
            note_down(&mut down, name, &why);
            last.get_or_insert(RetryReason::Unavailable(why));
            continue;
        }
        let slot = &mut slots[at];
        let translated = responses.filter(|_| translates(backend));
        if !slot.fit_checked {
            slot.fit_checked = true;
            slot.skip = match translated.and_then(|a| a.upstream_only.clone()) {
                Some((what, field)) => Some(Skip::Cannot(what, field)),
                None => overflow(gw, id, chat, prompt_tokens)
                    .await
                    .map(Skip::TooSmall),
            };
        }
        if slot.skip.is_some() {
            continue;
        }
        match admit::limits(gw, admit::subject(caller, Some(name)), prompt_tokens).await {
            Ok(v) => limits.merge(v),
            Err(Stop::RateLimited(l, _)) => {
                slot.skip = Some(Skip::Limited(l));
                continue;
            }
            Err(e) => return Err(e),
        }
        let counted = super::price::count_chat(gw, id, chat, prompt_tokens);
        let remaining = match tab.reserve(id, caller, counted, chat.max_tokens).await {
            Ok(r) => r,
            Err(Refusal::Exhausted(e)) if e.action == OnExhausted::Downgrade => {
                gw.counters
                    .budget_downgrades
                    .fetch_add(1, Ordering::Relaxed);
                slot.skip = Some(Skip::Budget(e));
                continue;
            }
            Err(Refusal::Exhausted(e)) => {
                gw.counters
                    .budget_rejections
                    .fetch_add(1, Ordering::Relaxed);
                return Err(Stop::Budget(e));
            }
            Err(Refusal::Unavailable) => {
                admit::unreachable(gw)?;
                None
            }
        };
        // An open circuit keeps a failing upstream out until its probe.
        if gw.breakers[id].admit(Instant::now()) == Admit::No {
            note_down(&mut down, name, "circuit open after repeated failures");
            tab.release();
            last.get_or_insert(RetryReason::Unavailable("circuit open".into()));
            continue;
        }
        if tried > 0 {
            tokio::time::sleep(backoff(policy.retry.backoff, tried)).await;
        }
        tried += 1;
        let started = Instant::now();
        let result = call(gw, id, chat, responses, tab).await;
        tab.upstream_time(started.elapsed());
        record(gw, id, &result);
        match result {
            Ok(reply) => {
                tab.first_byte();
                let mut notes = notes(gw, chain, &slots);
                if translated.is_some() {
                    notes.push(format!(
                        "{name} answered through Chat Completions (Responses translated)"
                    ));
                }
                return Ok(Answer {
                    model: id,
                    reply,
                    remaining,
                    fell_back: last,
                    notes,
                    limits,
                });
            }
            Err(Failure::Final(e)) => {
                tab.release();
                return Err(Stop::Upstream(e));
            }
            Err(Failure::Retry(reason)) => {
                tab.release();
                gw.requests.upstream_error(name, &reason.kind());
                tracing::warn!(model = %name, attempt = tried, reason = %reason, "attempt failed; trying the next model");
                last = Some(reason);
            }
        }
    }
    Err(nothing_answered(
        gw,
        tried,
        prompt_tokens,
        slots,
        last,
        down,
    ))
}

fn note_down(down: &mut Vec<String>, name: &str, why: &str) {
    let note = if why == "still loading" {
        format!("{name} is still loading")
    } else {
        format!("{name} is unavailable ({why})")
    };
    if !down.contains(&note) {
        down.push(note);
    }
}

/// Whether a Responses request must be translated for `backend`.
fn translates(backend: &Backend) -> bool {
    !matches!(backend, Backend::OpenAi(up) if up.speaks_responses())
}

/// One call to a backend: a Responses request as it is to a provider that
/// speaks it, else its chat equivalent, with the answer translated back.
async fn call(
    gw: &Gateway,
    id: ModelId,
    chat: &ChatRequest,
    responses: Option<&Arc<Ask>>,
    tab: &Tab,
) -> Result<Reply, Failure> {
    let mut on_finish = Some(tab.on_finish());
    let name = gw.model_names[id].clone();
    let backend = &gw.backends[id];
    if let (Some(ask), Backend::OpenAi(up)) = (responses, backend) {
        if up.speaks_responses() {
            let body = ask.upstream_body(&gw.policy.models[id].upstream_model);
            return up.responses(body, ask.stream, name, &mut on_finish).await;
        }
    }
    let reply = match backend {
        Backend::OpenAi(up) => {
            let body = chat.upstream_body(&gw.policy.models[id].upstream_model);
            let options = (chat.stream, chat.include_usage);
            up.chat(false, body, options, name, &mut on_finish).await
        }
        #[cfg(feature = "local")]
        Backend::Local(m) => m.chat(chat, name, &mut on_finish).await,
        Backend::Unavailable(why) => Err(Failure::Retry(RetryReason::Unavailable(why.clone()))),
    }?;
    match responses {
        None => Ok(reply),
        Some(ask) => crate::responses::from_chat(reply, ask)
            .map_err(|e| Failure::Retry(RetryReason::Malformed(e))),
    }
}

/// Feeds the outcome to the model's circuit breaker; logs transitions.
pub(in crate::server) fn record<T>(gw: &Gateway, id: ModelId, result: &Result<T, Failure>) {
    let outcome = match result {
        Err(Failure::Retry(reason)) => Err(reason),
        _ => Ok(()),
    };
    let name = &gw.model_names[id];
    match gw.breakers[id].record(outcome, Instant::now()) {
        Some(CircuitState::Open { .. }) => {
            tracing::warn!(model = %name, "circuit opened: the model is skipped until a probe succeeds")
        }
        Some(CircuitState::Closed { .. }) => {
            tracing::info!(model = %name, "circuit closed: the model is back in routing")
        }
        _ => {}
    }
}

/// No model answered: a budget, the context or a rate limit when no model
/// was even tried, else the last failure.
fn nothing_answered(
    gw: &Gateway,
    tried: u32,
    prompt_tokens: u32,
    slots: Vec<Slot>,
    last: Option<RetryReason>,
    down: Vec<String>,
) -> Stop {
    if tried > 0 {
        return Stop::Failed(last);
    }
    let skips = || slots.iter().filter_map(|s| s.skip.as_ref());
    if let Some(Skip::Budget(e)) = skips().find(|s| matches!(s, Skip::Budget(_))) {
        gw.counters
            .budget_rejections
            .fetch_add(1, Ordering::Relaxed);
        return Stop::Budget(e.clone());
    }
    let too_small = skips().filter_map(|s| match s {
        Skip::TooSmall(o) => Some(*o),
        _ => None,
    });
    if let Some(o) = too_small.max_by_key(|o| o.context) {
        return Stop::ContextTooLong(o);
    }
    if let Some(Skip::Limited(l)) = skips().find(|s| matches!(s, Skip::Limited(_))) {
        return Stop::RateLimited(l.clone(), prompt_tokens);
    }
    if !down.is_empty() {
        return Stop::Unavailable(down);
    }
    if let Some(Skip::Cannot(what, field)) = skips().find(|s| matches!(s, Skip::Cannot(..))) {
        let message = format!(
            "{what} needs a model whose provider speaks the Responses API; \
             no model of this request's route does."
        );
        return Stop::Invalid(crate::request::Invalid::new(message, Some(field)));
    }
    Stop::Failed(last)
}

/// Why models of the chain were passed over, for `x-tollgate-reason`.
fn notes(gw: &Gateway, chain: &[ModelId], slots: &[Slot]) -> Vec<String> {
    let mut out = Vec::new();
    for (id, slot) in chain.iter().zip(slots) {
        let name = &gw.model_names[*id];
        out.push(match &slot.skip {
            None => continue,
            Some(Skip::TooSmall(o)) => {
                format!(
                    "{name} skipped: needs {} tokens, context {}",
                    o.needed(),
                    o.context
                )
            }
            Some(Skip::Budget(e)) => {
                format!("{name} skipped: budget {} exhausted (downgrade)", e.budget)
            }
            Some(Skip::Limited(_)) => format!("{name} skipped: rate limited"),
            Some(Skip::Cannot(what, _)) => {
                format!("{name} skipped: cannot honour {what} (no Responses API)")
            }
        });
    }
    out
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
