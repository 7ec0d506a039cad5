//! Shared request state: rate limits, budgets and the response cache,
//! each in this process's memory (default) or in Redis for replicas.
//!
//! Failure policy when Redis is unreachable (each store's module says the
//! same for itself):
//! - rate limits and budgets **fail closed**: the request gets 503
//!   `state_unavailable` with `Retry-After`, because admitting it could
//!   overspend or overrun a limit. `state: { url, fail_open: true }` flips
//!   this: requests are admitted unchecked and each such admission is
//!   logged (and counted).
//! - the cache **fails open**: a lookup is a miss, a store is skipped.
//!
//! Nothing crashes: every Redis call has a short timeout, the connection
//! manager reconnects in the background, and the next request after Redis
//! returns is served normally. `/readyz` reports the store's health.
//!
//! Each store is a narrow trait (`budgets::Budgets`, `limits::RateLimits`,
//! `cache::ResponseCache`) with a memory and a Redis implementation in
//! files of their own. What is common to both sits above them, once: which
//! budgets and limits apply to a request (`policy::Scope::subject`, in
//! `budgets::BudgetGuard` and `limits::LimitGuard`), and what an
//! unreachable store means (`unreachable`).

pub mod bounds;
pub mod budgets;
pub mod cache;
mod conn;
pub mod limits;

use std::sync::atomic::{AtomicU64, Ordering};

pub use conn::{Redis, REDIS_TIMEOUT};

/// The store could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A store's answer, boxed so the stores can be trait objects.
pub type Fut<'a, T> = futures::future::BoxFuture<'a, T>;

/// How often an unreachable store was passed over or refused a request.
#[derive(Debug, Default)]
pub struct Outages {
    /// Admitted without a rate or budget check (`fail_open`).
    pub unchecked: AtomicU64,
    /// Refused with 503 `state_unavailable` (fail closed).
    pub refused: AtomicU64,
    /// Cache lookups and stores skipped (the cache always fails open).
    pub cache_skipped: AtomicU64,
}

/// The failure policy for budgets and rate limits, in one place: with
/// `fail_open` the request goes on unchecked (`Ok`), else it is refused.
/// Either way it is counted, and `fail_open` admissions are logged.
pub fn unreachable(fail_open: bool, outages: &Outages) -> Result<(), Unavailable> {
    if fail_open {
        outages.unchecked.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            "Redis unreachable: request admitted without rate or budget checks (fail_open)"
        );
        Ok(())
    } else {
        outages.refused.fetch_add(1, Ordering::Relaxed);
        Err(Unavailable)
    }
}
