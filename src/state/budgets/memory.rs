//! Budgets in this process's memory: one map of buckets under one lock,
//! so a reservation across several buckets is atomic. At startup `seed`
//! loads what the ledger already holds for each current period, so a
//! restart does not reset spending. Buckets of past periods are dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{Alert, BucketKey, Budgets, Held, Status};
use crate::clock::{period_bounds, Clock, Millis};
use crate::money::Nanos;
use crate::policy::{Budget, OnExhausted};
use crate::state::{Fut, Unavailable};

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    spent: u64,
    reserved: u64,
    /// How many of the budget's alert thresholds have been crossed.
    alerted: usize,
}

pub struct MemoryBudgets {
    pub(super) defs: Vec<Budget>,
    pub(super) clock: Clock,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    last_prune: AtomicI64,
}

impl MemoryBudgets {
    pub fn new(defs: Vec<Budget>, clock: Clock) -> MemoryBudgets {
        MemoryBudgets {
            defs,
            clock,
            buckets: Mutex::new(HashMap::new()),
            last_prune: AtomicI64::new(i64::MIN / 2),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<BucketKey, Bucket>>, Unavailable> {
        self.buckets.lock().map_err(|_| Unavailable)
    }

    fn left(&self, k: &BucketKey, b: Bucket) -> u64 {
        self.defs[k.budget]
            .limit
            .0
            .saturating_sub(b.spent.saturating_add(b.reserved))
    }

    fn reserve_now(&self, keys: &[BucketKey], amount: u64) -> Result<Held, Unavailable> {
        let now = self.clock.now();
        let mut buckets = self.lock()?;
        // Past periods are dropped at most once a minute, not per request.
        if now - self.last_prune.load(Ordering::Relaxed) >= 60_000 {
            self.last_prune.store(now, Ordering::Relaxed);
            buckets.retain(|k, b| {
                b.reserved > 0 || k.start >= period_bounds(self.defs[k.budget].period, now).0
            });
        }
        // Check all first: the failing budget reported is a reject if any
        // (it wins over a downgrade).
        let mut worst: Option<(usize, u64)> = None;
        for (i, k) in keys.iter().enumerate() {
            let available = self.left(k, buckets.get(k).copied().unwrap_or_default());
            let rejects = |i: usize| self.defs[keys[i].budget].on_exhausted == OnExhausted::Reject;
            if amount > available && worst.is_none_or(|(w, _)| !rejects(w) && rejects(i)) {
                worst = Some((i, available));
            }
        }
        if let Some((bucket, available)) = worst {
            return Ok(Held::No {
                bucket,
                available: Nanos(available),
            });
        }
        let mut remaining = u64::MAX;
        for k in keys {
            let b = buckets.entry(k.clone()).or_default();
            b.reserved = b.reserved.saturating_add(amount);
            let b = *b;
            remaining = remaining.min(self.left(k, b));
        }
        Ok(Held::Yes {
            remaining: Nanos(remaining),
        })
    }

    fn settle_now(
        &self,
        keys: Vec<BucketKey>,
        reserved: u64,
        actual: u64,
    ) -> Result<Vec<Alert>, Unavailable> {
        let mut buckets = self.lock()?;
        let mut alerts = Vec::new();
        for k in keys {
            let def = &self.defs[k.budget];
            let b = buckets.entry(k.clone()).or_default();
            b.reserved = b.reserved.saturating_sub(reserved);
            b.spent = b.spent.saturating_add(actual);
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
        Ok(alerts)
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
        if let Ok(mut buckets) = self.lock() {
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

    fn status_now(&self, now: Millis) -> Result<Vec<Status>, Unavailable> {
        let buckets = self.lock()?;
        let mut out = Vec::new();
        for (i, def) in self.defs.iter().enumerate() {
            let start = period_bounds(def.period, now).0;
            let mut rows: Vec<(&str, Bucket)> = buckets
                .iter()
                .filter(|(k, _)| k.budget == i && k.start == start)
                .map(|(k, b)| (k.subject.as_str(), *b))
                .collect();
            if let (true, Some(n)) = (rows.is_empty(), def.scope.named()) {
                rows.push((n, Bucket::default()));
            }
            rows.sort_by(|a, b| a.0.cmp(b.0));
            for (subject, b) in rows {
                out.push(Status::of(def, subject, start, b.spent, b.reserved));
            }
        }
        Ok(out)
    }
}

impl Budgets for MemoryBudgets {
    fn reserve<'a>(
        &'a self,
        keys: &'a [BucketKey],
        amount: u64,
    ) -> Fut<'a, Result<Held, Unavailable>> {
        Box::pin(std::future::ready(self.reserve_now(keys, amount)))
    }

    fn settle(
        &self,
        keys: Vec<BucketKey>,
        reserved: u64,
        actual: u64,
    ) -> Fut<'_, Result<Vec<Alert>, Unavailable>> {
        Box::pin(std::future::ready(self.settle_now(keys, reserved, actual)))
    }

    fn remaining<'a>(
        &'a self,
        keys: &'a [BucketKey],
    ) -> Fut<'a, Result<Option<Nanos>, Unavailable>> {
        let r = self.lock().map(|buckets| {
            keys.iter()
                .map(|k| Nanos(self.left(k, buckets.get(k).copied().unwrap_or_default())))
                .min()
        });
        Box::pin(std::future::ready(r))
    }

    fn status(&self, now: Millis) -> Fut<'_, Result<Vec<Status>, Unavailable>> {
        Box::pin(std::future::ready(self.status_now(now)))
    }

    fn is_local(&self) -> bool {
        true
    }
}
