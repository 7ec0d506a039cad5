//! `GET /v1/models[/{id}]`: the models and aliases this caller may use, in
//! OpenAI's list format. Aliases are owned by `tollgate`; models by their
//! provider.

use std::sync::Arc;

use axum::extract::Path;
use axum::{Extension, Json};
use serde_json::{json, Value};

use super::auth::Caller;
use crate::error::ApiError;
use crate::gateway::Gateway;

fn entries<'a>(gw: &'a Gateway, caller: &'a Caller) -> impl Iterator<Item = Value> + 'a {
    let mut aliases: Vec<&String> = gw.policy.aliases.keys().collect();
    aliases.sort();
    let aliases = aliases.into_iter().map(|a| (a.as_str(), "tollgate"));
    let models = gw
        .policy
        .models
        .iter()
        .map(|m| (m.name.as_str(), gw.policy.provider_of(m).name.as_str()));
    aliases
        .chain(models)
        .filter(|(id, _)| caller.may_use(gw, id))
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
}

pub async fn list(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    let data: Vec<Value> = entries(&gw, &caller).collect();
    Json(json!({"object": "list", "data": data}))
}

pub async fn retrieve(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    entries(&gw, &caller)
        .find(|e| e["id"] == id.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::model_not_found(&id))
}
