//! The auth stage: `Authorization: Bearer <gateway key>` → `Caller`.
//!
//! Deny by default: every path needs a key except those in
//! `UNAUTHENTICATED`. Keys are stored as SHA-256 digests; the presented
//! key's digest is compared with every stored one in constant time, so
//! neither timing nor early exit says which key (or how much of it)
//! matched. The client's key is never forwarded upstream.
//!
//! HTTP Basic (the key as the password) is accepted for `/dashboard`
//! only, the page a browser opens: a browser replays Basic credentials on
//! every request to the origin, so on the API paths a cross-site page
//! could otherwise spend through a logged-in browser. `/metrics` is open
//! to anyone only when the policy says `server.metrics: open`; otherwise
//! it needs an admin key (`server::metrics`).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http::{header, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::gateway::Gateway;

/// Paths anyone may call.
pub const UNAUTHENTICATED: &[&str] = &["/healthz"];

/// Who is calling; added to every authenticated request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: Arc<str>,
    pub team: Arc<str>,
    /// Index into `Policy::keys`; `None` for anonymous callers.
    pub key: Option<usize>,
}

impl Caller {
    /// May this caller use `model` (a model or alias name)?
    pub fn may_use(&self, gw: &Gateway, model: &str) -> bool {
        match (self.key, &gw.policy.keys) {
            (Some(i), Some(keys)) => keys[i]
                .models
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(|m| m == model)),
            _ => true,
        }
    }
}

pub async fn authenticate(
    Extension(gw): Extension<Arc<Gateway>>,
    mut req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if UNAUTHENTICATED.contains(&path) || (path == "/metrics" && gw.policy.metrics_open) {
        return next.run(req).await;
    }
    let caller = match &gw.policy.keys {
        None => Caller {
            key_id: Arc::from("anonymous"),
            team: Arc::from("anonymous"),
            key: None,
        },
        Some(_) => {
            let browser = req.uri().path() == "/dashboard";
            // Anthropic's clients send the key as `x-api-key`, and read
            // errors in Anthropic's shape.
            let messages = req.uri().path().starts_with("/v1/messages");
            let refuse = |e: ApiError| match (browser, messages) {
                (true, _) => basic_challenge(e),
                (_, true) => crate::messages::reply::anthropic_error(&e),
                _ => e.into_response(),
            };
            let Some(token) = bearer(&req, browser).or_else(|| api_key(&req, messages)) else {
                return refuse(ApiError::unauthorized(
                    "You didn't provide an API key. Send it as `Authorization: Bearer <key>`.",
                ));
            };
            // A lookup by the token's SHA-256: its time says nothing about
            // any key, and it does not grow with the number of keys.
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            match gw.key_index.get(&digest) {
                Some((i, id, team)) => Caller {
                    key_id: id.clone(),
                    team: team.clone(),
                    key: Some(*i),
                },
                None => return refuse(ApiError::unauthorized("Incorrect API key provided.")),
            }
        }
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The key: `Bearer <key>`, or for a `browser` path HTTP Basic with the
/// key as the password.
/// `x-api-key`, on the Messages endpoints only.
fn api_key(req: &Request, messages: bool) -> Option<String> {
    let v = req.headers().get("x-api-key")?.to_str().ok()?.trim();
    (messages && !v.is_empty()).then(|| v.to_string())
}

fn bearer(req: &Request, browser: bool) -> Option<String> {
    use base64::Engine;
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(token.to_string());
    }
    if browser && scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (_, password) = text.split_once(':')?;
        return (!password.is_empty()).then(|| password.to_string());
    }
    None
}

/// The 401 a browser answers with a login prompt.
pub fn basic_challenge(e: ApiError) -> Response {
    let mut res = e.into_response();
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tollgate\", charset=\"UTF-8\""),
    );
    res
}
