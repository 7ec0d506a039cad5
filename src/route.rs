//! The route stage: requested model + request facts → an ordered chain of
//! models to try.
//!
//! - An alias (e.g. `auto`) is routed: the first route whose `when` holds
//!   wins; a route without `when.model` applies to every alias.
//! - A concrete model is re-routed only by routes that name it in
//!   `when.model`; otherwise it goes straight to that model (rule `direct`).
//! - Conditions on facts the request does not have (no classifier ran) do
//!   not hold.

use crate::classify::{Complexity, Task};
use crate::policy::{ModelId, Policy, Route};

/// What is known about a request when it is routed.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    pub task: Option<Task>,
    pub complexity: Option<Complexity>,
    pub strong_score: Option<f64>,
    pub prompt_tokens: Option<u32>,
}

/// The router's answer: which models to try, in order, and why.
#[derive(Debug, Clone)]
pub struct RouteDecision {
    pub rule: String,
    pub chain: Vec<ModelId>,
    /// Why, in a few words: the conditions that held (`x-tollgate-reason`).
    pub reason: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Neither a model nor an alias of this policy (or not allowed for the key).
    UnknownModel,
    /// An alias that no route accepts for this request.
    NoRoute,
}

/// Whether a request for `requested` is routed by the policy's routes (an
/// alias, or a model some route names in `when.model`) rather than sent
/// straight to that model. Only routed requests need the learned router.
pub fn is_routed(policy: &Policy, requested: &str) -> bool {
    policy.aliases.contains_key(requested)
        || policy.routes.iter().any(|r| {
            r.when
                .model
                .as_ref()
                .is_some_and(|names| names.iter().any(|n| n == requested))
        })
}

pub fn route(policy: &Policy, requested: &str, facts: &Facts) -> Result<RouteDecision, RouteError> {
    let is_alias = policy.aliases.contains_key(requested);
    let concrete = policy.model_ids.get(requested).copied();
    if !is_alias && concrete.is_none() {
        return Err(RouteError::UnknownModel);
    }
    let hit = policy.routes.iter().find(|r| {
        let model_ok = match &r.when.model {
            Some(names) => names.iter().any(|n| n == requested),
            None => is_alias,
        };
        model_ok && facts_hold(r, facts)
    });
    match (hit, concrete) {
        (Some(r), _) => Ok(RouteDecision {
            rule: r.name.clone(),
            chain: r.chain.clone(),
            reason: explain(r, requested, facts),
        }),
        (None, Some(id)) => Ok(RouteDecision {
            rule: "direct".to_string(),
            chain: vec![id],
            reason: format!("{requested} was requested and no route re-routes it"),
        }),
        (None, None) => Err(RouteError::NoRoute),
    }
}

fn facts_hold(r: &Route, f: &Facts) -> bool {
    let w = &r.when;
    within(&w.task, f.task)
        && within(&w.complexity, f.complexity)
        && w.strong_score
            .is_none_or(|c| f.strong_score.is_some_and(|s| c.holds(s)))
        && w.prompt_tokens
            .is_none_or(|c| f.prompt_tokens.is_some_and(|t| c.holds(f64::from(t))))
}

/// The conditions of `r` that held, e.g. `rule hard: task=code, complexity=high`.
fn explain(r: &Route, requested: &str, f: &Facts) -> String {
    let w = &r.when;
    let mut held = Vec::new();
    if w.model.is_some() {
        held.push(format!("model={requested}"));
    }
    if let (Some(_), Some(t)) = (&w.task, f.task) {
        held.push(format!("task={t}"));
    }
    if let (Some(_), Some(c)) = (&w.complexity, f.complexity) {
        held.push(format!("complexity={c}"));
    }
    if let (Some(_), Some(s)) = (&w.strong_score, f.strong_score) {
        held.push(format!("strong_score={s:.2}"));
    }
    if let (Some(_), Some(t)) = (&w.prompt_tokens, f.prompt_tokens) {
        held.push(format!("prompt_tokens={t}"));
    }
    if held.is_empty() {
        format!("rule {}: first route without conditions", r.name)
    } else {
        format!("rule {}: {}", r.name, held.join(", "))
    }
}

/// No set: holds. A set: holds when the fact is known and in it.
fn within<T: PartialEq>(set: &Option<Vec<T>>, v: Option<T>) -> bool {
    match set {
        None => true,
        Some(s) => v.is_some_and(|v| s.contains(&v)),
    }
}

#[cfg(test)]
mod tests;
