//! Route: the policy's decision for this request, a chain of models.

use super::stop::Stop;
use crate::classify::Class;
use crate::gateway::Gateway;
use crate::route::{route, Facts, RouteDecision, RouteError};

pub fn run(
    gw: &Gateway,
    model: &str,
    class: &Class,
    prompt_tokens: u32,
) -> Result<RouteDecision, Stop> {
    let facts = Facts {
        task: Some(class.task),
        complexity: Some(class.complexity),
        strong_score: Some(class.strong_score),
        prompt_tokens: Some(prompt_tokens),
    };
    route(&gw.policy, model, &facts).map_err(|e| match e {
        RouteError::UnknownModel => Stop::ModelNotFound(model.to_string()),
        RouteError::NoRoute => Stop::NoRoute(model.to_string()),
    })
}
