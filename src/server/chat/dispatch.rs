//! Dispatch: the attempt loop over the route's chain, the only one. Every
//! endpoint (chat, Responses, legacy completions, embeddings) rides it and
//! brings only what is its own (`Attempt`): whether a model can take the
//! request at all, what a reservation holds, and the call itself.
//!
//! Per model, in order: fit (context, features, endpoint), the model's own
//! rate limits, the budget reservation, the circuit breaker, then the
//! call. A model passed over for one of the first three is skipped for the
//! rest of the request and named in `x-tollgate-reason`.
//!
//! Fallback: a connect error, a timeout, 408/409/429/5xx, or a stream that
//! ends before its first event moves to the next model in the chain, after
//! a jittered exponential backoff, up to `retry.max_attempts` attempts (at
//! least one per model in the chain). Once a stream has sent its first
//! byte to the client it is never restarted: a break becomes a final error
//! event.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use super::admit;
use super::price::Need;
use super::settle::Tab;
use super::stop::{Overflow, Stop};
use crate::circuit::{Admit, State as CircuitState};
use crate::gateway::{Backend, Gateway};
use crate::money::Nanos;
use crate::policy::{ModelId, OnExhausted};
use crate::server::auth::Caller;
use crate::state::budgets::{Exhausted, Refusal};
use crate::state::limits::{Limited, Verdict};
use crate::upstream::{Failure, Reply, RetryReason};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What an endpoint brings to the attempt loop.
pub trait Attempt: Sync {
    /// Whether this endpoint can be served by `backend` at all (the local
    /// engine serves chat only); asked first, loaded or not.
    fn serves(&self, _backend: &Backend) -> bool {
        true
    }
    /// Why `id` cannot take this request at all (asked once per model;
    /// by default it can).
    fn unfit(&self, _gw: &Gateway, _id: ModelId) -> impl Future<Output = Option<Unfit>> + Send {
        std::future::ready(None)
    }
    /// What a reservation on `id` holds.
    fn need(&self, gw: &Gateway, id: ModelId) -> Need;
    /// One call to `id`; a stream closes `tab` when it ends.
    fn call(
        &self,
        gw: &Gateway,
        id: ModelId,
        tab: &Tab,
    ) -> impl Future<Output = Result<Reply, Failure>> + Send;
    /// A note for `x-tollgate-reason` when `id` answered.
    fn answered(&self, _gw: &Gateway, _id: ModelId) -> Option<String> {
        None
    }
}

/// Why a model cannot take a request at all.
pub enum Unfit {
    TooSmall(Overflow),
    /// A feature the model's API cannot carry: what, its field, and the
    /// kind of model that could.
    Cannot(String, String, &'static str),
    /// The model cannot serve this endpoint (the local engine: chat only).
    Endpoint,
}

/// Why a local model is passed over on the endpoints it does not serve.
pub const CHAT_ONLY: &str = "cannot serve this endpoint (the local engine serves chat only)";

/// What the attempt loop needs to know about the request.
pub struct Job<'a, A> {
    pub attempt: &'a A,
    /// cl100k, for the models' own rate limits.
    pub prompt_tokens: u32,
    pub chain: &'a [ModelId],
    pub caller: &'a Caller,
    pub tab: &'a Tab,
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
    Unfit(Unfit),
    Budget(Exhausted),
    Limited(Limited),
}

/// One model of the chain during the loop.
#[derive(Default)]
struct Slot {
    fit_checked: bool,
    skip: Option<Skip>,
}

pub async fn run<A: Attempt>(gw: &Arc<Gateway>, job: Job<'_, A>) -> Result<Answer, Stop> {
    let Job {
        attempt,
        prompt_tokens,
        chain,
        caller,
        tab,
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
        if !attempt.serves(backend) {
            slots[at].skip = Some(Skip::Unfit(Unfit::Endpoint));
            continue;
        }
        if let Some(why) = backend.client_reason() {
            note_down(&mut down, name, &why);
            last.get_or_insert(RetryReason::Unavailable(why));
            continue;
        }
        let slot = &mut slots[at];
        if !slot.fit_checked {
            slot.fit_checked = true;
            slot.skip = attempt.unfit(gw, id).await.map(Skip::Unfit);
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
        let need = attempt.need(gw, id);
        let remaining = match tab.reserve(id, caller, need).await {
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
        let result = attempt.call(gw, id, tab).await;
        tab.upstream_time(started.elapsed());
        record(gw, id, &result);
        match result {
            Ok(reply) => {
                tab.first_byte();
                let mut notes = notes(gw, chain, &slots);
                notes.extend(attempt.answered(gw, id));
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
        (tried, prompt_tokens),
        (chain, slots),
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
    (tried, prompt_tokens): (u32, u32),
    (chain, slots): (&[ModelId], Vec<Slot>),
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
        Skip::Unfit(Unfit::TooSmall(o)) => Some(*o),
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
    if let Some(Skip::Unfit(Unfit::Cannot(what, field, needs))) =
        skips().find(|s| matches!(s, Skip::Unfit(Unfit::Cannot(..))))
    {
        let message = format!("{what} needs {needs}; no model of this request's route is one.");
        return Stop::Invalid(crate::request::Invalid::new(message, Some(field)));
    }
    // Every model is one that cannot serve this endpoint at all: retrying
    // cannot help, so a 400 naming them, not a 503.
    if skips().any(|s| matches!(s, Skip::Unfit(Unfit::Endpoint))) {
        let names: Vec<String> = chain
            .iter()
            .zip(&slots)
            .filter(|(_, s)| matches!(s.skip, Some(Skip::Unfit(Unfit::Endpoint))))
            .map(|(id, _)| format!("{} {CHAT_ONLY}", gw.model_names[*id]))
            .collect();
        let message = format!(
            "No model of this request's route can serve it: {}.",
            names.join("; ")
        );
        return Stop::Invalid(crate::request::Invalid::new(message, Some("model")));
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
            Some(Skip::Unfit(Unfit::TooSmall(o))) => {
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
            Some(Skip::Unfit(Unfit::Cannot(what, _, needs))) => {
                format!("{name} skipped: cannot honour {what} (needs {needs})")
            }
            Some(Skip::Unfit(Unfit::Endpoint)) => format!("{name} skipped: {CHAT_ONLY}"),
        });
    }
    out
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
