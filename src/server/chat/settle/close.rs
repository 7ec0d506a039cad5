//! Closing a tab: the usage to charge (reported, or counted here when
//! none believable came back), the cost and its certainty, the budget
//! settlement, the rate limits' token correction, the ledger row, the
//! metrics and the log line.

use super::Account;
use crate::ledger::MAX_TOKENS;
use crate::money::Nanos;
use crate::policy::Subject;
use crate::server::chat::price::price_of;
use crate::telemetry::Sample;
use crate::upstream::{Produced, Usage};

/// How a request ended, for the ledger row.
#[derive(Default)]
pub struct Close {
    /// The usage the upstream reported, if any.
    pub usage: Option<Usage>,
    /// `usage` was counted by the gateway, not reported (a stream cut
    /// at its budget).
    pub counted: bool,
    /// The reply's text, counted when `usage` is missing or invalid.
    pub produced: Produced,
    pub status: u16,
    pub ending: &'static str,
}

impl Close {
    /// A request that ended with an error status: nothing was billed.
    pub fn error(status: u16) -> Close {
        Close {
            status,
            ending: "error",
            ..Close::default()
        }
    }

    /// A complete JSON reply: its usage, and its text in case the usage
    /// is missing.
    pub fn json(usage: Option<Usage>, body: &[u8]) -> Close {
        let mut produced = Produced::default();
        if !usage.is_some_and(believable) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
                produced.push_json(&v);
            }
        }
        Close {
            usage,
            produced,
            status: 200,
            ending: "complete",
            ..Close::default()
        }
    }
}

/// Usage the upstream reported, when it is believable: each count at
/// most `ledger::MAX_TOKENS` (past that it is garbage, not a bill).
fn believable(u: Usage) -> bool {
    u.prompt_tokens <= MAX_TOKENS && u.completion_tokens <= MAX_TOKENS
}

impl Account {
    pub(super) fn close(&mut self, c: Close) -> (Nanos, Option<Nanos>) {
        if let Some((_, cost)) = self.settled {
            return (cost, None);
        }
        let gw = self.gw.clone();
        let price = self.model.and_then(|id| price_of(&gw, id));
        let reported = c.usage.filter(|u| believable(*u));
        // A model answered (or was sent the prompt and the client left)
        // but no believable usage came back: the upstream still bills, so
        // the tokens are counted here (`estimated`).
        let answered = matches!(c.status, 200 | 499);
        let (usage, estimated) = match (reported, self.model) {
            (Some(u), _) => (u, c.counted),
            (None, Some(id)) if answered => {
                if let Some(u) = c.usage {
                    tracing::warn!(model = %gw.model_names[id], prompt_tokens = u.prompt_tokens,
                        completion_tokens = u.completion_tokens,
                        "the upstream reported absurd usage; counted locally instead");
                }
                gw.counters
                    .usage_estimated
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let counter = &gw.policy.models[id].counter;
                let prompt = match self.hold.estimate() {
                    0 => u64::from(self.prompt_estimate),
                    n => n,
                };
                let completion = c.produced.tokens(|t| counter.text(t));
                (Usage::new(prompt, completion), true)
            }
            (None, _) => (Usage::default(), false),
        };
        // A model without a price is charged at the baseline's, so no
        // answer is ever a silent $0, and marked `unpriced` (counted,
        // warned about once a day, listed by `report`).
        let unpriced = price.is_none() && self.model.is_some() && answered;
        let charged = match (price, unpriced) {
            (Some(p), _) => Some(p),
            (None, true) => {
                super::unpriced(&gw, self.model);
                Some(gw.policy.baseline.price)
            }
            (None, false) => None,
        };
        let cost = charged.map_or(Nanos::ZERO, |p| usage.cost(&p));
        let certainty = match (unpriced, estimated) {
            (true, _) => "unpriced",
            (_, true) => "estimated",
            _ => "exact",
        };
        let baseline = usage.cost(&gw.policy.baseline.price);
        let then = self.then();
        let subject = Subject {
            key: &self.row.key_id,
            team: &self.row.team,
            model: self.model.map(|id| &*gw.model_names[id]),
        };
        if let (Some(id), Some(u), Some(r), false) =
            (self.model, reported, &self.reservation, c.counted)
        {
            let day = gw.clock.now().div_euclid(86_400_000);
            let s = gw.bounds.settle(id, &self.hold, u, cost, r.amount(), day);
            if s.log {
                tracing::warn!(model = %gw.model_names[id], over_usd = %s.over, "the upstream billed more than the budget reserved; charged in full, the model's bound is raised");
            }
            if s.learned {
                gw.teach(id, self.hold.shape);
            }
        }
        let remaining = match self.reservation.take() {
            Some(r) => {
                let g = gw.clone();
                let alert = move |alert: crate::state::budgets::Alert| {
                    g.counters
                        .budget_alerts
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    alert.log();
                };
                gw.budgets.settle_then(r, cost, &gw.tasks, alert, then);
                gw.budgets.remaining_now(subject)
            }
            None => {
                then();
                None
            }
        };
        // Rate limits take the tokens not counted at admission.
        if let Some(u) =
            Some(usage).filter(|_| gw.limits.counts_tokens() && usage != Usage::default())
        {
            let counted = u64::from(self.prompt_estimate);
            let extra = u.completion_tokens + u.prompt_tokens.saturating_sub(counted);
            let s = Subject {
                key: &self.row.key_id,
                team: &self.row.team,
                model: None,
            };
            let model = self.model.map(|id| &*gw.model_names[id]);
            let extra = u32::try_from(extra).unwrap_or(u32::MAX);
            gw.limits.correct(s, model, extra, &gw.tasks);
        }
        let r = &mut self.row;
        if let Some(id) = self.model {
            r.model = gw.model_names[id].to_string();
        }
        // The gateway chose a model other than the baseline: the router
        // expects to lose what its strong_score says.
        let chosen = !r.model.is_empty() && r.model != r.requested_model;
        r.risk_milli = match r.strong_milli {
            Some(s) if chosen && r.model != gw.policy.baseline.name => u64::from(s),
            _ => 0,
        };
        r.prompt_tokens = usage.prompt_tokens;
        r.cached_tokens = usage.cached_tokens;
        r.cache_write_tokens = usage.cache_write_tokens;
        r.audio_prompt_tokens = usage.audio_prompt_tokens;
        r.reasoning_tokens = usage.reasoning_tokens;
        r.audio_completion_tokens = usage.audio_completion_tokens;
        r.prompt_cache_saved = charged.map_or(Nanos::ZERO, |p| usage.cache_saving(&p));
        r.price = charged.map(|p| p.to_json()).unwrap_or_default();
        r.completion_tokens = usage.completion_tokens;
        r.cost = cost;
        r.baseline_cost = baseline;
        r.status = c.status;
        r.ending = c.ending.to_string();
        r.certainty = certainty.to_string();
        r.latency_ms = self.started.elapsed().as_millis() as u64;
        r.ttft_ms = self.first_byte.map(|d| d.as_millis() as u64);
        tracing::info!(
            key = %r.key_id,
            team = %r.team,
            route = %r.route,
            model = %r.model,
            status = r.status,
            prompt_tokens = r.prompt_tokens,
            completion_tokens = r.completion_tokens,
            cached_tokens = r.cached_tokens,
            reasoning_tokens = r.reasoning_tokens,
            certainty,
            cost_usd = %r.cost,
            baseline_usd = %r.baseline_cost,
            ending = %r.ending,
            "request finished"
        );
        let overhead = self
            .first_byte
            .filter(|_| !self.upstream.is_zero())
            .map(|t| t.saturating_sub(self.upstream));
        gw.requests.record(&Sample::of(r, overhead));
        self.settled = Some((usage, cost));
        if let Some(l) = &gw.ledger {
            l.record(std::mem::take(&mut self.row));
        }
        (cost, remaining)
    }
}
