//! Budgets that never overspend: reserve the worst case, settle the truth.
//!
//! Every budget that applies to a request (its key, its team, the model
//! tried, global) holds a bucket per period. Admission reserves the
//! request's worst-case cost in *all* of them at once, under one lock:
//! either every bucket has `spent + reserved + amount <= limit` and all
//! are charged, or none is. Settlement moves the reservation to `spent`
//! at the real cost. So concurrent requests can never push `spent` past a
//! limit, as long as a request never costs more than it reserved (streams
//! that would are cut; see `server::chat`).
//!
//! A reservation is settled into the period it was taken in, even when the
//! period rolls over meanwhile. Buckets of past periods are dropped.
//!
//! State is in memory; at startup `seed` loads what the ledger already
//! holds for each current period, so a restart does not reset spending.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use crate::clock::{period_bounds, rfc3339, Clock, Millis};
use crate::money::Nanos;
use crate::policy::{Budget, OnExhausted, Scope, Target};

/// One budget's bucket: (budget index, subject, period start).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketKey {
    pub budget: usize,
    pub subject: String,
    pub start: Millis,
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    spent: u64,
    reserved: u64,
    /// How many of the budget's alert thresholds have been crossed.
    alerted: usize,
}

/// Who is asking: what budgets are matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a str,
    pub team: &'a str,
    pub model: &'a str,
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

    pub fn new(holds: Vec<BucketKey>, amount: Nanos) -> Reservation {
        Reservation {
            holds,
            amount: amount.0,
        }
    }

    pub fn into_parts(self) -> (Vec<BucketKey>, u64) {
        (self.holds, self.amount)
    }
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

/// A threshold crossed by a settlement (logged and counted once per period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub budget: String,
    pub subject: String,
    pub threshold_permille: u32,
    pub spent: Nanos,
    pub limit: Nanos,
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

pub struct Budgets {
    defs: Vec<Budget>,
    clock: Clock,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    last_prune: AtomicI64,
}

impl Budgets {
    pub fn new(defs: Vec<Budget>, clock: Clock) -> Budgets {
        Budgets {
            defs,
            clock,
            buckets: Mutex::new(HashMap::new()),
            last_prune: AtomicI64::new(i64::MIN / 2),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    pub fn defs(&self) -> &[Budget] {
        &self.defs
    }

    /// The buckets of the budgets that apply to `s` now.
    pub fn keys_for(&self, s: Subject<'_>, now: Millis) -> Vec<BucketKey> {
        let mut out = Vec::new();
        for (i, b) in self.defs.iter().enumerate() {
            let (target, value) = match &b.scope {
                Scope::Global => (&Target::Each, ""),
                Scope::Key(t) => (t, s.key),
                Scope::Team(t) => (t, s.team),
                Scope::Model(t) => (t, s.model),
            };
            let applies = match target {
                Target::Each => true,
                Target::One(n) => n == value,
            };
            if applies {
                out.push(BucketKey {
                    budget: i,
                    subject: value.to_string(),
                    start: period_bounds(b.period, now).0,
                });
            }
        }
        out
    }

    /// Reserves `amount` in every applicable budget, or in none.
    pub fn reserve(&self, s: Subject<'_>, amount: Nanos) -> Result<Reservation, Exhausted> {
        self.reserve_and_remaining(s, amount).map(|(r, _)| r)
    }

    /// `reserve`, plus the tightest remaining budget after it, under the
    /// same lock.
    pub fn reserve_and_remaining(
        &self,
        s: Subject<'_>,
        amount: Nanos,
    ) -> Result<(Reservation, Option<Nanos>), Exhausted> {
        if self.defs.is_empty() {
            return Ok((Reservation::default(), None));
        }
        let now = self.clock.now();
        let keys = self.keys_for(s, now);
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(self.poisoned());
        };
        // Past periods are dropped at most once a minute, not per request.
        if now - self.last_prune.load(Ordering::Relaxed) >= 60_000 {
            self.last_prune.store(now, Ordering::Relaxed);
            self.prune(&mut buckets, now);
        }
        // Check all first: the tightest failing budget is reported.
        let mut worst: Option<Exhausted> = None;
        for k in &keys {
            let b = buckets.get(k).copied().unwrap_or_default();
            let limit = self.defs[k.budget].limit.0;
            let available = limit.saturating_sub(b.spent + b.reserved);
            if amount.0 > available {
                let e = Exhausted {
                    budget: self.defs[k.budget].name.clone(),
                    action: self.defs[k.budget].on_exhausted,
                    limit: Nanos(limit),
                    available: Nanos(available),
                    needed: amount,
                };
                // A reject anywhere wins over a downgrade.
                if worst.as_ref().is_none_or(|w| {
                    w.action == OnExhausted::Downgrade && e.action == OnExhausted::Reject
                }) {
                    worst = Some(e);
                }
            }
        }
        if let Some(e) = worst {
            return Err(e);
        }
        let mut remaining = u64::MAX;
        for k in &keys {
            let b = buckets.entry(k.clone()).or_default();
            b.reserved += amount.0;
            remaining = remaining.min(
                self.defs[k.budget]
                    .limit
                    .0
                    .saturating_sub(b.spent + b.reserved),
            );
        }
        let remaining = (!keys.is_empty()).then_some(Nanos(remaining));
        Ok((
            Reservation {
                holds: keys,
                amount: amount.0,
            },
            remaining,
        ))
    }

    /// Settles `r` at the real cost `actual`; returns the alerts it crossed.
    pub fn settle(&self, r: Reservation, actual: Nanos) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if r.holds.is_empty() {
            return alerts;
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return alerts;
        };
        for k in r.holds {
            let def = &self.defs[k.budget];
            let b = buckets.entry(k.clone()).or_default();
            b.reserved = b.reserved.saturating_sub(r.amount);
            b.spent = b.spent.saturating_add(actual.0);
            while b.alerted < def.alert_at.len()
                && u128::from(b.spent) * 1000
                    >= u128::from(def.limit.0) * u128::from(def.alert_at[b.alerted])
            {
                alerts.push(Alert {
                    budget: def.name.clone(),
                    subject: k.subject.clone(),
                    threshold_permille: def.alert_at[b.alerted],
                    spent: Nanos(b.spent),
                    limit: def.limit,
                });
                b.alerted += 1;
            }
        }
        alerts
    }

    /// The least money left in any budget that applies to `s` (after
    /// reservations), or `None` when no budget applies.
    pub fn remaining(&self, s: Subject<'_>) -> Option<Nanos> {
        if self.defs.is_empty() {
            return None;
        }
        let now = self.clock.now();
        let keys = self.keys_for(s, now);
        let buckets = self.buckets.lock().ok()?;
        keys.iter()
            .map(|k| {
                let b = buckets.get(k).copied().unwrap_or_default();
                Nanos(
                    self.defs[k.budget]
                        .limit
                        .0
                        .saturating_sub(b.spent + b.reserved),
                )
            })
            .min()
    }

    /// Adds money already spent in the current period (from the ledger).
    pub fn seed(&self, budget: usize, subject: &str, spent: Nanos) {
        let now = self.clock.now();
        let Some(def) = self.defs.get(budget) else {
            return;
        };
        let key = BucketKey {
            budget,
            subject: subject.to_string(),
            start: period_bounds(def.period, now).0,
        };
        if let Ok(mut buckets) = self.buckets.lock() {
            let b = buckets.entry(key).or_default();
            b.spent = b.spent.saturating_add(spent.0);
            // Thresholds already behind us are not announced again.
            b.alerted = def
                .alert_at
                .iter()
                .take_while(|a| {
                    u128::from(b.spent) * 1000 >= u128::from(def.limit.0) * u128::from(**a)
                })
                .count();
        }
    }

    /// Every bucket of the current periods, plus each named budget that
    /// has no bucket yet.
    pub fn status(&self) -> Vec<Status> {
        let now = self.clock.now();
        let Ok(buckets) = self.buckets.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, def) in self.defs.iter().enumerate() {
            let (start, end) = period_bounds(def.period, now);
            let mut rows: Vec<(&String, Bucket)> = buckets
                .iter()
                .filter(|(k, _)| k.budget == i && k.start == start)
                .map(|(k, b)| (&k.subject, *b))
                .collect();
            let named = named_subject(&def.scope);
            let empty = Bucket::default();
            let fallback;
            if rows.is_empty() {
                if let Some(n) = named {
                    fallback = n;
                    rows.push((&fallback, empty));
                }
            }
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (subject, b) in rows {
                out.push(Status {
                    budget: def.name.clone(),
                    subject: subject.clone(),
                    limit_usd: def.limit.to_string(),
                    spent_usd: Nanos(b.spent).to_string(),
                    reserved_usd: Nanos(b.reserved).to_string(),
                    remaining_usd: Nanos(def.limit.0.saturating_sub(b.spent + b.reserved))
                        .to_string(),
                    period_start: rfc3339(start),
                    period_end: rfc3339(end),
                });
            }
        }
        out
    }

    fn prune(&self, buckets: &mut HashMap<BucketKey, Bucket>, now: Millis) {
        // Cheap enough: the map holds one entry per (budget, subject, period).
        buckets.retain(|k, b| {
            b.reserved > 0 || k.start >= period_bounds(self.defs[k.budget].period, now).0
        });
    }

    fn poisoned(&self) -> Exhausted {
        Exhausted {
            budget: "internal".into(),
            action: OnExhausted::Reject,
            limit: Nanos::ZERO,
            available: Nanos::ZERO,
            needed: Nanos::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Period;

    fn budget(scope: Scope, limit: u64, period: Period, on: OnExhausted) -> Budget {
        Budget {
            name: format!("{scope:?}"),
            scope,
            limit: Nanos(limit),
            period,
            on_exhausted: on,
            alert_at: vec![500, 800],
        }
    }

    const WEB: Subject<'static> = Subject {
        key: "k1",
        team: "web",
        model: "gpt-4",
    };

    #[test]
    fn reserve_is_all_or_nothing_and_settle_returns_the_rest() {
        let b = Budgets::new(
            vec![
                budget(
                    Scope::Team(Target::One("web".into())),
                    100,
                    Period::Month,
                    OnExhausted::Reject,
                ),
                budget(
                    Scope::Key(Target::Each),
                    60,
                    Period::Day,
                    OnExhausted::Downgrade,
                ),
            ],
            Clock::manual(1_764_288_000_000),
        );
        let r = b.reserve(WEB, Nanos(50)).unwrap();
        assert_eq!(b.remaining(WEB), Some(Nanos(10)), "key budget is tighter");
        // 20 more would fit the team (50 + 20 <= 100) but not the key (60).
        let e = b.reserve(WEB, Nanos(20)).unwrap_err();
        assert_eq!((e.action, e.available), (OnExhausted::Downgrade, Nanos(10)));
        // Nothing was charged by the failed attempt.
        assert_eq!(b.remaining(WEB), Some(Nanos(10)));
        let alerts = b.settle(r, Nanos(30));
        assert_eq!(b.remaining(WEB), Some(Nanos(30)));
        // 30 of 60 crosses the key budget's 50% threshold, once.
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].threshold_permille, 500);
        let other = Subject { key: "k2", ..WEB };
        assert_eq!(b.remaining(other), Some(Nanos(60)), "each key has its own");
    }

    #[test]
    fn periods_roll_over_with_the_clock() {
        let clock = Clock::manual(crate::clock::parse_day("2026-11-28").unwrap());
        let b = Budgets::new(
            vec![budget(Scope::Global, 100, Period::Day, OnExhausted::Reject)],
            clock.clone(),
        );
        let r = b.reserve(WEB, Nanos(90)).unwrap();
        b.settle(r, Nanos(90));
        assert!(b.reserve(WEB, Nanos(20)).is_err());
        clock.set(crate::clock::parse_day("2026-11-29").unwrap());
        assert_eq!(b.remaining(WEB), Some(Nanos(100)));
        assert!(b.reserve(WEB, Nanos(20)).is_ok());
        assert_eq!(b.status()[0].period_start, "2026-11-29T00:00:00Z");
    }

    #[test]
    fn random_interleavings_never_go_negative_or_overspend() {
        use rand::Rng;
        let mut rng = rand::rng();
        for _ in 0..200 {
            let limit = rng.random_range(1..10_000u64);
            let b = Budgets::new(
                vec![budget(
                    Scope::Global,
                    limit,
                    Period::Total,
                    OnExhausted::Reject,
                )],
                Clock::manual(0),
            );
            let mut open = Vec::new();
            let mut settled = 0u64;
            for _ in 0..100 {
                if rng.random_bool(0.6) {
                    let amount = rng.random_range(0..2_000u64);
                    if let Ok(r) = b.reserve(WEB, Nanos(amount)) {
                        open.push(r);
                    }
                } else if let Some(r) = open.pop() {
                    let actual = rng.random_range(0..=r.amount);
                    settled += actual;
                    b.settle(r, Nanos(actual));
                }
                let st = &b.status()[0];
                let reserved: u64 = open.iter().map(|r| r.amount).sum();
                assert_eq!(st.reserved_usd, Nanos(reserved).to_string());
                assert!(settled + reserved <= limit);
                assert_eq!(st.spent_usd, Nanos(settled).to_string());
            }
        }
    }
}

/// The one subject of a budget that names it (`""` for global), shown in
/// status before it has a bucket; `None` for `"*"` scopes.
pub fn named_subject(scope: &Scope) -> Option<String> {
    match scope {
        Scope::Global => Some(String::new()),
        Scope::Key(Target::One(n)) | Scope::Team(Target::One(n)) | Scope::Model(Target::One(n)) => {
            Some(n.clone())
        }
        _ => None,
    }
}

/// The budget store a gateway uses: this process's memory, or Redis
/// shared by replicas (`state::redis_budgets`).
pub enum BudgetStore {
    Memory(Budgets),
    Redis {
        local: Budgets,
        redis: crate::state::redis_budgets::RedisBudgets,
        fail_open: bool,
    },
}

/// Why a reservation was not made.
#[derive(Debug, Clone)]
pub enum Refusal {
    Exhausted(Exhausted),
    /// The shared store is unreachable (and the state fails closed).
    Unavailable,
}

impl BudgetStore {
    fn defs(&self) -> &Budgets {
        match self {
            BudgetStore::Memory(b) | BudgetStore::Redis { local: b, .. } => b,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.defs().is_empty()
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, BudgetStore::Memory(_))
    }

    /// Reserves, and says the tightest remaining budget after it.
    pub async fn reserve(
        &self,
        s: Subject<'_>,
        amount: Nanos,
    ) -> Result<(Reservation, Option<Nanos>), Refusal> {
        match self {
            BudgetStore::Memory(b) => b
                .reserve_and_remaining(s, amount)
                .map_err(Refusal::Exhausted),
            BudgetStore::Redis {
                local,
                redis,
                fail_open,
            } => {
                if local.is_empty() {
                    return Ok((Reservation::default(), None));
                }
                let keys = local.keys_for(s, local.clock.now());
                match redis.reserve(keys.clone(), amount).await {
                    Ok(Ok(r)) => {
                        let remaining = redis.remaining(&keys).await.ok().flatten();
                        Ok((r, remaining))
                    }
                    Ok(Err(e)) => Err(Refusal::Exhausted(e)),
                    Err(_) if *fail_open => {
                        tracing::warn!(
                            "Redis unreachable: admitted without a budget check (fail_open)"
                        );
                        Ok((Reservation::default(), None))
                    }
                    Err(_) => Err(Refusal::Unavailable),
                }
            }
        }
    }

    pub async fn settle(&self, r: Reservation, actual: Nanos) -> Vec<Alert> {
        match self {
            BudgetStore::Memory(b) => b.settle(r, actual),
            BudgetStore::Redis { redis, .. } => redis.settle(r, actual).await,
        }
    }

    /// Settles without waiting: in memory now, in Redis on `tasks`.
    pub fn settle_now_or_later(
        self: &std::sync::Arc<Self>,
        r: Reservation,
        actual: Nanos,
        tasks: &tokio_util::task::TaskTracker,
        on_alert: impl Fn(Alert) + Send + 'static,
    ) {
        match &**self {
            BudgetStore::Memory(b) => b.settle(r, actual).into_iter().for_each(on_alert),
            BudgetStore::Redis { .. } => {
                if r.is_empty() {
                    return;
                }
                let me = self.clone();
                tasks.spawn(async move {
                    me.settle(r, actual).await.into_iter().for_each(on_alert);
                });
            }
        }
    }

    /// The tightest remaining budget, when it can be known without I/O
    /// (memory); `None` for Redis.
    pub fn remaining_now(&self, s: Subject<'_>) -> Option<Nanos> {
        match self {
            BudgetStore::Memory(b) => b.remaining(s),
            BudgetStore::Redis { .. } => None,
        }
    }

    pub async fn status(&self) -> Result<Vec<Status>, crate::state::Unavailable> {
        match self {
            BudgetStore::Memory(b) => Ok(b.status()),
            BudgetStore::Redis { redis, .. } => redis.status().await,
        }
    }
}
