//! Admin endpoints: `/admin/report`, `/admin/budgets` and `/dashboard`.
//!
//! Off unless the policy marks a key `admin: true`: then only such keys
//! may call them (403 for other keys), and a policy without one answers
//! 404, as if the endpoints did not exist. Browsers reach `/dashboard`
//! with HTTP Basic auth (any user name, the admin key as password).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use http::{header, HeaderValue};
use serde_json::json;

use super::auth::Caller;
use super::dashboard;
use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::ledger::Dim;
use crate::report::{build, Format, Options, Report};

pub fn admin_configured(gw: &Gateway) -> bool {
    gw.policy
        .keys
        .as_ref()
        .is_some_and(|k| k.iter().any(|k| k.admin))
}

fn require_admin(gw: &Gateway, caller: &Caller, path: &str) -> Result<(), ApiError> {
    if !admin_configured(gw) {
        return Err(ApiError::not_found(path));
    }
    let is_admin = match (caller.key, &gw.policy.keys) {
        (Some(i), Some(keys)) => keys[i].admin,
        _ => false,
    };
    if is_admin {
        Ok(())
    } else {
        Err(ApiError::forbidden("This endpoint needs an admin key."))
    }
}

pub async fn budgets(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    require_admin(&gw, &caller, "/admin/budgets")?;
    let status = gw.budgets.status().await.map_err(|_| state_unavailable())?;
    Ok(Json(json!({"object": "list", "data": status})).into_response())
}

/// Query string → report options (`by` comma-separated or repeated).
fn options(query: Option<&str>) -> Result<Options, ApiError> {
    let mut o = Options::default();
    let mut by = Vec::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = v.replace("%2C", ",").replace("%2c", ",");
        let bad = |m: String| ApiError::invalid_request(m, Some(k));
        match k {
            "since" => {
                o.since =
                    Some(humantime::parse_duration(&v).map_err(|e| bad(format!("since: {e}")))?)
            }
            "from" => o.from = Some(v),
            "to" => o.to = Some(v),
            "by" => by.push(v),
            "format" => {
                o.format = match v.as_str() {
                    "table" => Format::Table,
                    "csv" => Format::Csv,
                    "json" => Format::Json,
                    _ => return Err(bad(format!("unknown format `{v}` (table, csv or json)"))),
                }
            }
            _ => return Err(bad(format!("unknown parameter `{k}`"))),
        }
    }
    if !by.is_empty() {
        o.by = Options::parse_by(by.iter().map(String::as_str))
            .map_err(|m| ApiError::invalid_request(m, Some("by")))?;
    }
    Ok(o)
}

/// Builds a report off the async threads; rows queued for the ledger are
/// written first so the report includes the latest requests.
pub async fn run_report(
    gw: &Arc<Gateway>,
    by: Vec<Dim>,
    from: i64,
    to: i64,
) -> Result<Report, ApiError> {
    let gw = gw.clone();
    let result = tokio::task::spawn_blocking(move || {
        let ledger = gw
            .ledger
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("ledger: none"))?;
        ledger.flush(Duration::from_secs(2));
        let mut store =
            crate::ledger::open(&ledger.target)?.ok_or_else(|| anyhow::anyhow!("ledger: none"))?;
        build(store.as_mut(), &by, from, to)
    })
    .await;
    match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "report failed");
            Err(ApiError::unavailable(5).code("ledger_unavailable"))
        }
        Err(_) => Err(ApiError::internal()),
    }
}

pub async fn report(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    require_admin(&gw, &caller, "/admin/report")?;
    let o = options(req.uri().query())?;
    let (from, to) = o
        .range(gw.clock.now())
        .map_err(|m| ApiError::invalid_request(m, None))?;
    let r = run_report(&gw, o.by.clone(), from, to).await?;
    let (body, ctype) = match o.format {
        Format::Json => (r.render(Format::Json), "application/json"),
        Format::Csv => (r.render(Format::Csv), "text/csv; charset=utf-8"),
        Format::Table => (r.render(Format::Table), "text/plain; charset=utf-8"),
    };
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    Ok(res)
}

pub async fn dashboard_page(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Result<Response, ApiError> {
    require_admin(&gw, &caller, "/dashboard")?;
    let o = options(req.uri().query())?;
    let now = gw.clock.now();
    let (from, to) = o
        .range(now)
        .map_err(|m| ApiError::invalid_request(m, None))?;
    let by_day_model = run_report(&gw, vec![Dim::Day, Dim::Model], from, to).await?;
    let by_day = run_report(&gw, vec![Dim::Day], from, to).await?;
    let by_task_model = run_report(&gw, vec![Dim::Task, Dim::Model], from, to).await?;
    let by_key = run_report(&gw, vec![Dim::Key, Dim::Team], from, to).await?;
    let page = dashboard::render(&dashboard::Data {
        by_day_model: &by_day_model,
        by_day: &by_day,
        by_task_model: &by_task_model,
        by_key: &by_key,
        budgets: &gw.budgets.status().await.unwrap_or_default(),
        baseline: &gw.policy.baseline.name,
    });
    let mut res = Html(page).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn state_unavailable() -> ApiError {
    ApiError::unavailable(1).code("state_unavailable")
}
