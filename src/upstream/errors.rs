//! An upstream's error answer, mapped to retry-or-answer: the status
//! decides whether another model may still answer, and the client gets
//! the upstream's own explanation only for errors that are its to fix.

use std::time::Duration;

use async_openai::error::WrappedError;
use http::{header, StatusCode};

use super::{Failure, RetryReason};
use crate::error::{ApiError, Cause};

/// Maps an upstream error status to retry-or-answer.
pub(super) async fn classify(resp: super::http::Response, timeout: Duration) -> Failure {
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = tokio::time::timeout(timeout, super::http::bytes(resp))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let upstream_error = serde_json::from_slice::<WrappedError>(&body).ok();
    let message = upstream_error
        .as_ref()
        .map_or_else(String::new, |w| w.error.message.clone());
    match status.as_u16() {
        408 | 409 | 429 | 500..=599 => {
            tracing::warn!(status = status.as_u16(), upstream_message = %truncate(&message), "upstream answered with a retryable error");
            Failure::Retry(RetryReason::Status {
                status: status.as_u16(),
                retry_after,
            })
        }
        401 | 403 | 404 => {
            // The gateway's credentials or model mapping are wrong: the
            // client cannot fix this, another model may still answer.
            tracing::error!(status = status.as_u16(), upstream_message = %truncate(&message), "upstream rejected the gateway's request; check the provider's api_key and the model's upstream_model");
            Failure::Retry(RetryReason::Unavailable(format!(
                "upstream status {status}"
            )))
        }
        _ => {
            // The request itself is invalid (e.g. bad tool schema): the
            // client gets the upstream's explanation with its status.
            let mut e = ApiError::invalid_request(
                if message.is_empty() {
                    format!("The upstream rejected the request with status {status}.")
                } else {
                    message
                },
                None,
            )
            .caused_by(Cause::Client);
            e.status = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_REQUEST);
            if let Some(w) = upstream_error {
                e.param = w.error.param;
                e.code = w.error.code;
            }
            Failure::Final(e)
        }
    }
}

/// The error with its sources, for logs (the clients hide the cause otherwise).
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    redact_urls(&s)
}

/// `s` with the credentials of every URL in it removed: user and password
/// (`https://user:key@host` → `https://***@host`) and the query string
/// (`?api-key=…` → `?***`), so errors can be logged (reqwest's name the
/// URL they were sending to).
pub fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .unwrap_or(tail.len());
        let (url, after) = tail.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        match path.find('?') {
            Some(q) => {
                out.push_str(&path[..q]);
                out.push_str("?***");
            }
            None => out.push_str(path),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_lose_their_credentials() {
        let e = "error sending request for url (https://user:sk-secret@api.example.com/v1/chat?api-key=k2): connect";
        let r = super::redact_urls(e);
        assert_eq!(
            r,
            "error sending request for url (https://***@api.example.com/v1/chat?***): connect"
        );
        assert!(!r.contains("secret") && !r.contains("k2"));
        assert_eq!(
            super::redact_urls("http://127.0.0.1:9/v1 refused"),
            "http://127.0.0.1:9/v1 refused"
        );
    }
}
