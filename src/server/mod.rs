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

mod account;
mod admin;
pub mod auth;
pub mod chat;
mod dashboard;
mod metrics;
mod models;
mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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

pub fn app(gw: Arc<Gateway>) -> Router {
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
        .layer(axum::middleware::from_fn_with_state(
            gw.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
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
        .with_state(gw)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
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
    let body = Json(json!({
        "status": if ready { "ready" } else if models { "state unreachable" } else { "loading" },
        "models": if models { "ready" } else { "loading" },
        "state": state,
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
