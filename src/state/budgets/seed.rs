//! An in-memory budget after a restart: what the ledger already holds
//! for each current period (including the rows the crash journal
//! recovered), so a restart does not hand out a fresh budget.

use super::MemoryBudgets;
use crate::clock::period_bounds;
use crate::ledger::{Dim, Query};
use crate::policy::{LedgerTarget, Scope};

impl MemoryBudgets {
    /// Seeds every budget's current period from `target`. A ledger that
    /// cannot be read is logged and the budgets start empty.
    pub fn seed_from_ledger(&self, target: &LedgerTarget) {
        if self.defs.is_empty() {
            return;
        }
        let mut store = match crate::ledger::open(target) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot read the ledger; budgets start from zero this period");
                return;
            }
        };
        let now = self.clock.now();
        for (i, b) in self.defs.iter().enumerate() {
            let (from, _) = period_bounds(b.period, now);
            let dim = match &b.scope {
                Scope::Global => None,
                Scope::Key(_) => Some(Dim::Key),
                Scope::Team(_) => Some(Dim::Team),
                Scope::Model(_) => Some(Dim::Model),
            };
            let q = Query {
                from,
                to: i64::MAX,
                by: dim.into_iter().collect(),
            };
            match store.report(&q) {
                Ok(groups) => {
                    for g in groups {
                        let value = g.keys.first().map_or("", String::as_str);
                        let who = crate::policy::Subject {
                            key: value,
                            team: value,
                            model: Some(value),
                        };
                        if let Some(subject) = b.scope.subject(who) {
                            self.seed(i, subject, g.cost);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(budget = %b.name, error = %format!("{e:#}"), "cannot read the ledger for a budget")
                }
            }
        }
    }
}
