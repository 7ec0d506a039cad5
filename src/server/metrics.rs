//! `GET /metrics`: Prometheus text format.
//!
//! Model availability, and for local engines the measured throughput
//! (prefill and generation tokens/s over a sliding window), the per-token
//! price it implies, and the in-flight and queued sequences.

use std::fmt::Write;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderValue};

use crate::gateway::Gateway;

/// `GET /metrics`: for an admin key, or anyone with `server.metrics:
/// open` (budget names, teams and money left are in it).
pub async fn metrics(
    Extension(gw): Extension<Arc<Gateway>>,
    req: axum::extract::Request,
) -> Response {
    if !gw.policy.metrics_open {
        let caller = req.extensions().get::<super::auth::Caller>();
        let admin = match (caller.and_then(|c| c.key), &gw.policy.keys) {
            (Some(i), Some(keys)) => keys[i].admin,
            _ => false,
        };
        if !admin {
            return crate::error::ApiError::forbidden(
                "/metrics needs an admin key (a key with `admin: true`), \
                 unless the policy sets `server.metrics: open`.",
            )
            .into_response();
        }
    }
    let mut res = text(&gw).await.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}

/// The Prometheus text of `gw`'s metrics.
pub async fn text(gw: &Gateway) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tollgate_model_available 1 if the model can answer now."
    );
    let _ = writeln!(out, "# TYPE tollgate_model_available gauge");
    for (name, b) in gw.model_names.iter().zip(&gw.backends) {
        let up = u8::from(b.unavailable_reason().is_none());
        let _ = writeln!(out, "tollgate_model_available{{model=\"{name}\"}} {up}");
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_circuit_open 1 while the model's circuit is open or probing.\n# TYPE tollgate_circuit_open gauge"
    );
    for (name, b) in gw.model_names.iter().zip(&gw.breakers) {
        let open = u8::from(!matches!(b.state(), crate::circuit::State::Closed { .. }));
        let _ = writeln!(out, "tollgate_circuit_open{{model=\"{name}\"}} {open}");
    }
    gw.requests.render(&mut out);
    budgets(gw, &mut out).await;
    local(gw, &mut out);
    out
}

async fn budgets(gw: &Gateway, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &gw.counters;
    for (name, help, v) in [
        (
            "tollgate_budget_alerts_total",
            "Budget alert thresholds crossed (each once per period).",
            c.budget_alerts.load(Relaxed),
        ),
        (
            "tollgate_budget_rejections_total",
            "Requests refused with 429 insufficient_quota.",
            c.budget_rejections.load(Relaxed),
        ),
        (
            "tollgate_budget_downgrades_total",
            "Models skipped because a downgrade budget could not cover them.",
            c.budget_downgrades.load(Relaxed),
        ),
        (
            "tollgate_rate_limited_total",
            "Requests refused with 429 rate_limit_exceeded.",
            c.rate_limited.load(Relaxed),
        ),
        (
            "tollgate_cache_hits_total",
            "Answers replayed from the response cache.",
            c.cache_hits.load(Relaxed),
        ),
        (
            "tollgate_cache_misses_total",
            "Cacheable requests the cache did not have.",
            c.cache_misses.load(Relaxed),
        ),
        (
            "tollgate_state_unavailable_total",
            "Requests refused (503) because Redis was unreachable.",
            c.outages.refused.load(Relaxed),
        ),
        (
            "tollgate_state_unchecked_total",
            "Requests admitted without budget or rate checks because Redis was unreachable (fail_open).",
            c.outages.unchecked.load(Relaxed),
        ),
        (
            "tollgate_cache_skipped_total",
            "Cache lookups and stores skipped because Redis was unreachable (the cache fails open).",
            c.outages.cache_skipped.load(Relaxed),
        ),
        (
            "tollgate_ledger_rows_rejected_total",
            "Ledger rows the store rejected, moved to the dead-letter file.",
            crate::ledger::rejected_rows(),
        ),
        (
            "tollgate_usage_estimated_total",
            "Requests charged on locally counted tokens: the upstream sent no valid usage (a cut stream, a missing or absurd usage object).",
            c.usage_estimated.load(Relaxed),
        ),
        (
            "tollgate_router_learning_outcomes_total",
            "Router learning: judged outcomes appended to the shadow outcomes file.",
            c.shadow_outcomes.load(Relaxed),
        ),
        (
            "tollgate_router_learning_failures_total",
            "Router learning: sampled requests that gave no outcome (budget, upstream or judge failure).",
            c.shadow_failures.load(Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_budget_overrun_usd_total Money charged over budget reservations (the upstream billed more than the bound).\n# TYPE tollgate_budget_overrun_usd_total counter"
    );
    for (id, name) in gw.model_names.iter().enumerate() {
        let over = gw.bounds.overrun(id);
        let _ = writeln!(
            out,
            "tollgate_budget_overrun_usd_total{{model=\"{name}\"}} {over}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_unpriced_requests_total Answers of a model with no known price, charged at the baseline's price (ledger certainty `unpriced`).\n# TYPE tollgate_unpriced_requests_total counter"
    );
    for (id, name) in gw.model_names.iter().enumerate() {
        let n = gw.bounds.unpriced_count(id);
        let _ = writeln!(
            out,
            "tollgate_unpriced_requests_total{{model=\"{name}\"}} {n}"
        );
    }
    gw.absorb_learnt();
    let _ = writeln!(
        out,
        "# HELP tollgate_prompt_count_verified Whether settlements have verified the model's prompt count (1: reservations hold the count times the highest billed ratio; 0: the byte bound).\n# TYPE tollgate_prompt_count_verified gauge"
    );
    let mut ratios = String::new();
    for (id, name) in gw.model_names.iter().enumerate() {
        let (verified, milli) = gw.bounds.verified(id);
        let _ = writeln!(
            out,
            "tollgate_prompt_count_verified{{model=\"{name}\"}} {}",
            u8::from(verified)
        );
        let _ = writeln!(
            ratios,
            "tollgate_prompt_billing_ratio{{model=\"{name}\"}} {}.{:03}",
            milli / 1000,
            milli % 1000
        );
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_prompt_billing_ratio Highest billed prompt tokens over the gateway's count seen (0: none yet).\n# TYPE tollgate_prompt_billing_ratio gauge\n{}",
        ratios.trim_end()
    );
    let status = gw.budgets.status().await.unwrap_or_default();
    if status.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP tollgate_budget_remaining_usd Money left in each budget this period (after reservations).\n# TYPE tollgate_budget_remaining_usd gauge"
    );
    for b in status {
        let _ = writeln!(
            out,
            "tollgate_budget_remaining_usd{{budget=\"{}\",subject=\"{}\"}} {}",
            b.budget.replace('"', "'"),
            b.subject.replace('"', "'"),
            b.remaining_usd
        );
    }
}

#[cfg(feature = "local")]
fn local(gw: &Gateway, out: &mut String) {
    use crate::gateway::Backend;
    let locals: Vec<_> = gw
        .model_names
        .iter()
        .zip(&gw.backends)
        .filter_map(|(n, b)| match b {
            Backend::Local(m) => Some((n, m)),
            _ => None,
        })
        .collect();
    if locals.is_empty() {
        return;
    }
    let gauges: [(&str, &str); 5] = [
        (
            "tollgate_local_prefill_tokens_per_second",
            "Prompt tokens/s per sequence, sliding window.",
        ),
        (
            "tollgate_local_generation_tokens_per_second",
            "Generated tokens/s per sequence, sliding window.",
        ),
        (
            "tollgate_local_in_flight",
            "Sequences running in the engine.",
        ),
        (
            "tollgate_local_queued",
            "Requests waiting for an engine slot.",
        ),
        (
            "tollgate_local_price_usd_per_million_tokens",
            "Current per-token price (gpu_hour pricing follows throughput).",
        ),
    ];
    for (metric, help) in gauges {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} gauge");
        for (name, m) in &locals {
            let rates = m.rates();
            let price = m.price();
            let e = &m.engine;
            let line = match metric {
                "tollgate_local_prefill_tokens_per_second" => {
                    format!("{{model=\"{name}\"}} {}", rates.prefill.unwrap_or(0.0))
                }
                "tollgate_local_generation_tokens_per_second" => {
                    format!("{{model=\"{name}\"}} {}", rates.generation.unwrap_or(0.0))
                }
                "tollgate_local_in_flight" => format!("{{model=\"{name}\"}} {}", e.admission.in_flight()),
                "tollgate_local_queued" => format!("{{model=\"{name}\"}} {}", e.admission.queued()),
                _ => format!(
                    "{{model=\"{name}\",kind=\"input\"}} {}\n{metric}{{model=\"{name}\",kind=\"output\"}} {}",
                    price.input_per_mtok, price.output_per_mtok
                ),
            };
            let _ = writeln!(out, "{metric}{line}");
        }
    }
}

#[cfg(not(feature = "local"))]
fn local(_: &Gateway, _: &mut String) {}
