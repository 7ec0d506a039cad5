//! Budgets that never overspend: reserve the worst case, settle the truth.
//!
//! Every budget that applies to a request (its key, its team, the model
//! tried, global) holds a bucket per period. Admission reserves the
//! request's worst-case cost in *all* of them at once, atomically: either
//! every bucket has `spent + reserved + amount <= limit` and all are
//! charged, or none is. Settlement moves the reservation to `spent` at the
//! real cost. So concurrent requests can never push `spent` past a limit,
//! as long as a request never costs more than it reserved (streams that
//! would are cut; see `server::account`).
//!
//! A reservation is settled into the period it was taken in, even when the
//! period rolls over meanwhile.
//!
//! `BudgetGuard` decides which buckets apply (scope matching) and turns a
//! store's answer into the request's; the stores behind the `Budgets`
//! trait only hold buckets: this process's memory (`memory`), or Redis
//! shared by replicas (`redis`).

mod memory;
mod redis;
mod seed;

use std::sync::Arc;

pub use memory::MemoryBudgets;
pub use redis::RedisBudgets;

use super::{Fut, Unavailable};
use crate::clock::{period_bounds, Clock, Millis};
use crate::money::Nanos;
use crate::policy::{Budget, OnExhausted, Scope, Subject};

/// One budget's bucket: (budget index, subject, period start).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub budget: usize,
    pub subject: String,
    pub start: Millis,
}

/// Money held for one request until it settles.
#[derive(Debug, Default)]
pub struct Reservation {
    holds: Vec<BucketKey>,
    amount: u64,
}

impl Reservation {
    pub fn amount(&self) -> Nanos {
        Nanos(self.amount)
    }

    /// No budget applies: nothing is held.
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty()
    }
}

/// What a store answers to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Reserved in every bucket; the least money left among them after it.
    Yes { remaining: Nanos },
    /// Reserved in none: the bucket (index into the keys) that refused,
    /// and what it had left.
    No { bucket: usize, available: Nanos },
}

/// A budget that cannot admit the request.
#[derive(Debug, Clone)]
pub struct Exhausted {
    pub budget: String,
    pub action: OnExhausted,
    pub limit: Nanos,
    pub available: Nanos,
    pub needed: Nanos,
}

/// Why a reservation was not made.
#[derive(Debug, Clone)]
pub enum Refusal {
    Exhausted(Exhausted),
    /// The shared store is unreachable (the caller applies the failure
    /// policy: `state::unreachable`).
    Unavailable,
}

/// A threshold crossed by a settlement (logged and counted once per period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub budget: String,
    pub subject: String,
    pub threshold_permille: u32,
    pub spent: Nanos,
    pub limit: Nanos,
}

impl Alert {
    pub fn log(&self) {
        tracing::warn!(
            budget = %self.budget,
            subject = %self.subject,
            threshold = self.threshold_permille as f64 / 1000.0,
            spent_usd = %self.spent,
            limit_usd = %self.limit,
            "budget alert: spending crossed a threshold"
        );
    }
}

/// One bucket, for `/admin/budgets`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub budget: String,
    pub subject: String,
    pub limit_usd: String,
    pub spent_usd: String,
    pub reserved_usd: String,
    pub remaining_usd: String,
    pub period_start: String,
    pub period_end: String,
}

impl Status {
    pub fn of(def: &Budget, subject: &str, start: Millis, spent: u64, reserved: u64) -> Status {
        let (_, end) = period_bounds(def.period, start);
        Status {
            budget: def.name.clone(),
            subject: subject.to_string(),
            limit_usd: def.limit.to_string(),
            spent_usd: Nanos(spent).to_string(),
            reserved_usd: Nanos(reserved).to_string(),
            remaining_usd: Nanos(def.limit.0.saturating_sub(spent.saturating_add(reserved)))
                .to_string(),
            period_start: crate::clock::rfc3339(start),
            period_end: crate::clock::rfc3339(end),
        }
    }
}

/// A store of budget buckets. Each call is atomic across the keys it is
/// given; `defs` (the budgets, by index) are the store's own copy.
pub trait Budgets: Send + Sync {
    /// Reserves `amount` in every bucket of `keys`, or in none.
    fn reserve<'a>(
        &'a self,
        keys: &'a [BucketKey],
        amount: u64,
    ) -> Fut<'a, Result<Held, Unavailable>>;
    /// Moves `reserved` of each bucket to `spent` at `actual`; returns the
    /// alert thresholds crossed.
    fn settle(
        &self,
        keys: Vec<BucketKey>,
        reserved: u64,
        actual: u64,
    ) -> Fut<'_, Result<Vec<Alert>, Unavailable>>;
    /// The least money left among `keys` (`None` for no keys).
    fn remaining<'a>(
        &'a self,
        keys: &'a [BucketKey],
    ) -> Fut<'a, Result<Option<Nanos>, Unavailable>>;
    /// Every bucket of the periods that contain `now`, plus each named
    /// budget that has none yet.
    fn status(&self, now: Millis) -> Fut<'_, Result<Vec<Status>, Unavailable>>;
    /// True when every call completes without I/O (at its first poll).
    fn is_local(&self) -> bool;
}

/// The budgets of a gateway: scope matching above a store.
pub struct BudgetGuard {
    defs: Vec<Budget>,
    /// The budgets that name one key, team or model, by that name; the
    /// rest (global, `"*"`) are in `open`. A request checks its own
    /// budgets and the open ones, never the whole list.
    named: [std::collections::HashMap<String, Vec<usize>>; 3],
    open: Vec<usize>,
    clock: Clock,
    store: Arc<dyn Budgets>,
}

/// Which part of a subject a scope names: key, team, model.
fn dimension(scope: &Scope) -> usize {
    match scope {
        Scope::Global | Scope::Key(_) => 0,
        Scope::Team(_) => 1,
        Scope::Model(_) => 2,
    }
}

impl BudgetGuard {
    pub fn new(defs: Vec<Budget>, clock: Clock, store: Arc<dyn Budgets>) -> BudgetGuard {
        let mut named: [std::collections::HashMap<String, Vec<usize>>; 3] = Default::default();
        let mut open = Vec::new();
        for (i, b) in defs.iter().enumerate() {
            match (&b.scope, b.scope.named()) {
                (Scope::Global, _) | (_, None) => open.push(i),
                (scope, Some(name)) => named[dimension(scope)]
                    .entry(name.to_string())
                    .or_default()
                    .push(i),
            }
        }
        BudgetGuard {
            defs,
            named,
            open,
            clock,
            store,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// The buckets of the budgets that apply to `s` now.
    pub fn keys_for(&self, s: Subject<'_>) -> Vec<BucketKey> {
        let now = self.clock.now();
        let mut which = self.open.clone();
        if self.named.iter().any(|m| !m.is_empty()) {
            for (dim, name) in [(0, s.key), (1, s.team)]
                .into_iter()
                .chain(s.model.map(|m| (2, m)))
            {
                if let Some(v) = self.named[dim].get(name) {
                    which.extend_from_slice(v);
                }
            }
            // In the policy's order, as a scan of every budget gave them.
            which.sort_unstable();
        }
        let mut out = Vec::new();
        for i in which {
            let b = &self.defs[i];
            if let Some(subject) = b.scope.subject(s) {
                out.push(BucketKey {
                    budget: i,
                    subject: subject.to_string(),
                    start: period_bounds(b.period, now).0,
                });
            }
        }
        out
    }

    /// Reserves `amount` in every budget that applies to `s`, and says the
    /// tightest remaining budget after it (`None`: no budget applies).
    pub async fn reserve(
        &self,
        s: Subject<'_>,
        amount: Nanos,
    ) -> Result<(Reservation, Option<Nanos>), Refusal> {
        let keys = self.keys_for(s);
        if keys.is_empty() {
            return Ok((Reservation::default(), None));
        }
        match self.store.reserve(&keys, amount.0).await {
            Ok(Held::Yes { remaining }) => Ok((
                Reservation {
                    holds: keys,
                    amount: amount.0,
                },
                Some(remaining),
            )),
            Ok(Held::No { bucket, available }) => {
                let def = &self.defs[keys.get(bucket).map_or(0, |k| k.budget)];
                Err(Refusal::Exhausted(Exhausted {
                    budget: def.name.clone(),
                    action: def.on_exhausted,
                    limit: def.limit,
                    available,
                    needed: amount,
                }))
            }
            Err(Unavailable) => Err(Refusal::Unavailable),
        }
    }

    /// Settles `r` at the real cost `actual`; returns the alerts it
    /// crossed. A store that cannot be reached logs the amounts (the
    /// ledger row still has the cost) and the hold expires with its bucket.
    pub async fn settle(&self, r: Reservation, actual: Nanos) -> Vec<Alert> {
        if r.holds.is_empty() {
            return Vec::new();
        }
        let reserved = r.amount;
        match self.store.settle(r.holds, reserved, actual.0).await {
            Ok(alerts) => alerts,
            Err(Unavailable) => {
                tracing::error!(
                    reserved,
                    actual = actual.0,
                    "budget settle could not reach Redis; the reservation expires with its bucket"
                );
                Vec::new()
            }
        }
    }

    /// Settles without waiting: at once for a local store, else on `tasks`.
    pub fn settle_now_or_later(
        self: &Arc<Self>,
        r: Reservation,
        actual: Nanos,
        tasks: &tokio_util::task::TaskTracker,
        on_alert: impl Fn(Alert) + Send + 'static,
    ) {
        self.settle_then(r, actual, tasks, on_alert, || {});
    }

    /// `settle_now_or_later`, then `then` once the money is back in the
    /// store (at once in memory, after the write in Redis).
    pub fn settle_then(
        self: &Arc<Self>,
        r: Reservation,
        actual: Nanos,
        tasks: &tokio_util::task::TaskTracker,
        on_alert: impl Fn(Alert) + Send + 'static,
        then: impl FnOnce() + Send + 'static,
    ) {
        use futures::FutureExt;
        if r.is_empty() {
            return then();
        }
        if self.store.is_local() {
            if let Some(alerts) = self.settle(r, actual).now_or_never() {
                alerts.into_iter().for_each(on_alert);
            }
            return then();
        }
        let me = self.clone();
        tasks.spawn(async move {
            me.settle(r, actual).await.into_iter().for_each(on_alert);
            then();
        });
    }

    /// The tightest remaining budget for `s`, when a local store can say
    /// it without I/O; `None` otherwise.
    pub fn remaining_now(&self, s: Subject<'_>) -> Option<Nanos> {
        use futures::FutureExt;
        if !self.store.is_local() {
            return None;
        }
        let keys = self.keys_for(s);
        self.store.remaining(&keys).now_or_never()?.ok().flatten()
    }

    /// The tightest budget's money left for `s` (`None`: no budget, or
    /// the store cannot say).
    pub async fn remaining(&self, s: Subject<'_>) -> Option<Nanos> {
        self.store.remaining(&self.keys_for(s)).await.ok().flatten()
    }

    pub async fn status(&self) -> Result<Vec<Status>, Unavailable> {
        self.store.status(self.clock.now()).await
    }
}
#[cfg(test)]
mod tests;
