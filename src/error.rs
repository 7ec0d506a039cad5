//! The one place failures become HTTP responses.
//!
//! Every error a client sees is OpenAI-shaped:
//! `{"error":{"message","type","param","code"}}` with OpenAI's status codes,
//! so SDKs raise their usual exception types. 5xx messages stay generic;
//! the detail goes to the log, never to the client.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

/// Who caused a failure; logged with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Client,
    Upstream,
    Gateway,
}

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<String>,
    pub retry_after: Option<u64>,
    pub cause: Cause,
    /// Extra response headers (e.g. `x-ratelimit-*` on a 429); boxed to
    /// keep errors small on the happy path.
    pub headers: Option<Box<Vec<(&'static str, String)>>>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
            headers: None,
            cause: if status.is_server_error() {
                Cause::Gateway
            } else {
                Cause::Client
            },
        }
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn caused_by(mut self, cause: Cause) -> Self {
        self.cause = cause;
        self
    }

    /// 400: the request is wrong; `param` names the field.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        match param {
            Some(p) => e.param(p),
            None => e,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
            .code("invalid_api_key")
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .param("model")
        .code("model_not_found")
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unknown request URL: {path}."),
        )
        .code("unknown_url")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "Method not allowed for this URL.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body is larger than the limit of {limit} bytes."),
        )
        .code("request_too_large")
    }

    pub fn rate_limited(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "requests", message)
            .code("rate_limit_exceeded");
        e.retry_after = retry_after;
        e
    }

    /// 403: authenticated, but this key may not do that.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", message).code("permission_denied")
    }

    /// 429 `insufficient_quota`: a budget cannot cover the request.
    pub fn insufficient_quota(message: impl Into<String>, retry_after: Option<u64>) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", message)
            .code("insufficient_quota");
        e.retry_after = retry_after;
        e
    }

    pub fn bad_gateway() -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "server_error",
            "The upstream model server returned an error.",
        )
        .caused_by(Cause::Upstream)
    }

    pub fn unavailable(retry_after: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "No model for this request is available right now. Try again later.",
        )
        .retry_after(retry_after)
        .caused_by(Cause::Upstream)
    }

    pub fn gateway_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            "The upstream model server timed out.",
        )
        .caused_by(Cause::Upstream)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The server had an error while processing your request.",
        )
    }

    /// The JSON body, also used as the last SSE event of a broken stream.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for (name, value) in self.headers.into_iter().flat_map(|h| *h) {
            if let Ok(v) = HeaderValue::from_str(&value) {
                res.headers_mut().insert(name, v);
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_all_four_fields() {
        let b = ApiError::model_not_found("gpt-9").body();
        assert_eq!(b["error"]["code"], "model_not_found");
        assert_eq!(b["error"]["param"], "model");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        let b = ApiError::internal().body();
        assert!(b["error"]["param"].is_null() && b["error"]["code"].is_null());
    }
}
