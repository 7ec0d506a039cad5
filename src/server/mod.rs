//! The HTTP surface and the request path, on one screen.
//!
//! `app()` builds the tower stack; layers run top to bottom in request
//! order:
//!
//! 1. `x-request-id`: taken from the client or generated, echoed on the response;
//! 2. trace span per request (method, path, request id; never bodies or keys);
//! 3. catch-panic → an OpenAI-shaped 500, the process keeps serving;
//! 4. auth (`auth::authenticate`) → adds `Caller`; deny by default except
//!    `auth::UNAUTHENTICATED`;
//! 5. the handler: `chat::chat_completions` parses the body once
//!    (`ChatRequest`, size-limited), routes (`RouteDecision`) and runs the
//!    chain of backends.

mod admin;
pub mod auth;
pub mod chat;
mod completions;
mod dashboard;
mod embeddings;
pub mod listen;
mod messages;
mod metrics;
pub use metrics::text as metrics_text;
mod models;
mod passthrough;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Extension;
use axum::{Json, Router};
use http::{HeaderValue, StatusCode, Uri};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::gateway::Gateway;

const REQUEST_ID: &str = "x-request-id";

/// The gateway in use; a policy reload swaps it atomically. Each request
/// works with the gateway that was current when it arrived.
pub struct Live {
    current: ArcSwap<Gateway>,
    /// Cancelled when the shutdown grace period is over: requests still
    /// open end (streams without `[DONE]`, JSON with 503) and are
    /// accounted.
    pub stop: tokio_util::sync::CancellationToken,
}

impl Live {
    pub fn new(gw: Arc<Gateway>) -> Live {
        Live {
            current: ArcSwap::new(gw),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    pub fn load(&self) -> Arc<Gateway> {
        self.current.load_full()
    }

    pub fn swap(&self, gw: Arc<Gateway>) {
        self.current.store(gw);
    }
}

/// Reloads the policy file: validates it, builds a gateway that keeps the
/// current one's state (see `Gateway::reload`) and swaps it in. On any
/// error the current gateway stays and every error is returned (and
/// logged by the caller).
pub async fn reload_policy(live: &Arc<Live>, path: &std::path::Path) -> Result<(), String> {
    let current = live.load();
    let path = path.to_path_buf();
    let built = tokio::task::spawn_blocking(move || {
        let policy = crate::policy::load_file(&path).map_err(|e| e.to_string())?;
        current.reload(policy).map_err(|e| format!("{e:#}"))
    })
    .await
    .map_err(|e| format!("reload task failed: {e}"))??;
    let gw = Arc::new(built);
    gw.log_availability();
    live.swap(gw);
    Ok(())
}

/// The shutdown stop token, as a request extension.
#[derive(Clone)]
pub struct Shutdown(pub tokio_util::sync::CancellationToken);

/// The app for one fixed gateway.
pub fn app(gw: Arc<Gateway>) -> Router {
    app_live(Arc::new(Live::new(gw)))
}

/// The app for a gateway that may be swapped by a reload.
pub fn app_live(live: Arc<Live>) -> Router {
    let header = http::HeaderName::from_static(REQUEST_ID);
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(header.clone(), RequestIds::new()))
        .layer(PropagateRequestIdLayer::new(header))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked; answered 500");
            ApiError::internal().into_response()
        }))
        // The current gateway (and the stop token), into the request's
        // extensions; a plain map, so no future is boxed for it.
        .map_request({
            let live = live.clone();
            move |mut req: Request<axum::body::Body>| {
                req.extensions_mut().insert(live.load());
                req.extensions_mut().insert(Shutdown(live.stop.clone()));
                req
            }
        })
        .layer(axum::middleware::from_fn(auth::authenticate));
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/responses", post(chat::responses))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/admin/report", get(admin::report))
        .route("/admin/budgets", get(admin::budgets))
        .route("/dashboard", get(admin::dashboard_page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(stack)
        .with_state(live)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(Extension(gw): Extension<Arc<Gateway>>) -> Response {
    let models = gw.ready();
    // With shared state, Redis must answer: budgets and rate limits fail
    // closed without it (unless fail_open, which reports "degraded").
    let state = match &gw.redis {
        None => "memory",
        Some(r) if r.ping().await => "ok",
        Some(_) if gw.policy.state.fail_open => "degraded",
        Some(_) => "unreachable",
    };
    let ready = models && state != "unreachable";
    let mut warnings: Vec<serde_json::Value> = gw
        .policy
        .models
        .iter()
        .zip(&gw.backends)
        .filter_map(|(m, b)| Some(json!({"model": m.name, "warning": b.warning()?})))
        .collect();
    if let Some(r) = gw.redis.as_ref().filter(|_| state == "ok") {
        if let Some(w) = r.eviction_risk().await {
            warnings.push(json!({"state": "redis", "warning": w}));
        }
    }
    let body = Json(json!({
        "status": if ready { "ready" } else if models { "state unreachable" } else { "loading" },
        "models": if models { "ready" } else { "loading" },
        "state": state,
        "warnings": warnings,
    }));
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(uri.path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Request ids: a per-process random prefix and a counter, unique and cheap.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let prefix: u64 = rand::random();
        RequestIds {
            prefix: Arc::from(format!("req_{prefix:016x}")),
            next: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}{n:08x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}
