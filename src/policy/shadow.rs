//! `shadow:` — the router learning from live traffic. A sampled share of
//! routed requests answered by the strong or the weak model is sent to the
//! other one as well, after the client has its reply; a judge model grades
//! both answers, and the outcome is appended to a JSON lines file that
//! `tollgate route fit` reads.
//!
//! Those calls are the gateway's own: they are made as the caller
//! [`KEY`] (team of the same name), so they have their own budget
//! (`budget_usd` per `period`), their own ledger rows, and never count
//! against a client's key or team budget.

use std::collections::HashMap;
use std::path::PathBuf;

use super::fields::Errors;
use super::raw::RawShadow;
use super::{Budget, ModelId, OnExhausted, Period, Scope, Target};
use crate::money::Nanos;

/// The key (and team) the shadow and judge calls are made and accounted as.
pub const KEY: &str = "router-learning";

#[derive(Debug, Clone)]
pub struct Shadow {
    pub sample: f64,
    pub strong: ModelId,
    pub weak: ModelId,
    pub judge: ModelId,
    pub outcomes: PathBuf,
    /// The budget's name (`key:router-learning/day`).
    pub budget: String,
}

/// The compiled block and the budget its calls are kept under.
/// Where outcomes go when `outcomes:` is not given.
pub const DEFAULT_OUTCOMES: &str = "router-outcomes.jsonl";

/// The policy around the block: its models, baseline, keys and routes.
pub(super) struct Around<'a> {
    pub model_ids: &'a HashMap<String, ModelId>,
    pub models: &'a [super::Model],
    pub baseline: &'a str,
    pub key_ids: &'a [String],
    pub routes: &'a [super::Route],
}

pub(super) fn compile(
    raw: Option<RawShadow>,
    around: &Around<'_>,
    errs: &mut Errors,
) -> (Option<Shadow>, Option<Budget>) {
    let Around {
        model_ids,
        models,
        baseline,
        key_ids,
        routes,
    } = *around;
    let Some(raw) = raw else {
        return (None, None);
    };
    if !(0.0..=1.0).contains(&raw.sample) {
        errs.add("shadow.sample", "must be a share in [0, 1]");
    }
    if key_ids.iter().any(|k| k == KEY) {
        errs.add(
            "shadow",
            format!("the key id `{KEY}` is the shadow calls' own; rename that key"),
        );
    }
    let model = |errs: &mut Errors, field: &str, name: &str| -> Option<ModelId> {
        let id = model_ids.get(name).copied();
        if id.is_none() {
            errs.add(format!("shadow.{field}"), format!("unknown model `{name}`"));
        }
        id
    };
    let strong = model(errs, "strong", raw.strong.as_deref().unwrap_or(baseline));
    // The catch-all route's first model: where routed traffic lands when
    // nothing marks it hard.
    let catch_all = routes
        .iter()
        .rev()
        .find(|r| catches_all(&r.when))
        .and_then(|r| r.chain.first())
        .map(|id| models[*id].name.clone());
    let weak = match raw.weak.as_deref().or(catch_all.as_deref()) {
        Some(name) => model(errs, "weak", name),
        None => {
            errs.add(
                "shadow.weak",
                "name the weak model: the policy has no catch-all route to take it from",
            );
            None
        }
    };
    let judge = model(errs, "judge", &raw.judge);
    if strong.is_some() && strong == weak {
        errs.add("shadow.weak", "must differ from the strong model");
    }
    let limit = errs.ok(
        "shadow.budget_usd",
        Nanos::parse_usd(&raw.budget_usd.to_string()),
    );
    let period = errs.ok(
        "shadow.period",
        super::spend::period(raw.period.as_deref(), Period::Day),
    );
    let outcomes = raw.outcomes.unwrap_or_else(|| DEFAULT_OUTCOMES.into());
    if outcomes.trim().is_empty() {
        errs.add("shadow.outcomes", "name the JSON lines file outcomes go to");
    }
    let (Some(strong), Some(weak), Some(judge), Some(limit), Some(period)) =
        (strong, weak, judge, limit, period)
    else {
        return (None, None);
    };
    let scope = Scope::Key(Target::One(KEY.to_string()));
    let name = format!(
        "{}/{}",
        super::spend::scope_name(&scope),
        super::spend::period_name(period)
    );
    let budget = Budget {
        name: name.clone(),
        scope,
        limit,
        period,
        on_exhausted: OnExhausted::Reject,
        alert_at: Vec::new(),
    };
    let shadow = Shadow {
        sample: raw.sample,
        strong,
        weak,
        judge,
        outcomes: PathBuf::from(outcomes),
        budget: name,
    };
    (Some(shadow), Some(budget))
}

/// A route `when` nothing narrows.
fn catches_all(w: &super::When) -> bool {
    w.model.is_none()
        && w.task.is_none()
        && w.complexity.is_none()
        && w.strong_score.is_none()
        && w.prompt_tokens.is_none()
}
