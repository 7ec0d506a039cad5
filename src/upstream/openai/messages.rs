//! An `OpenAiUpstream` that speaks Anthropic's Messages API
//! (`upstream::anthropic` translates).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::OpenAiUpstream;
use crate::error::ApiError;
use crate::secret::Secret;
use crate::upstream::{Failure, RetryReason};

impl OpenAiUpstream {
    /// Whether the server speaks Anthropic's Messages API.
    pub fn speaks_messages(&self) -> bool {
        self.anthropic
    }

    /// An upstream that speaks Messages at `{base_url}/v1/messages`, with
    /// `x-api-key` and `anthropic-version`.
    pub fn anthropic(
        http: reqwest::Client,
        base_url: &str,
        api_key: &Secret,
        version: &str,
        (timeout, total): (std::time::Duration, std::time::Duration),
    ) -> Result<Self, String> {
        let mut key = HeaderValue::from_str(api_key.expose())
            .map_err(|_| "the API key contains characters not allowed in a header".to_string())?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        headers.insert(
            "anthropic-version",
            HeaderValue::from_str(version).map_err(|_| "invalid anthropic_version".to_string())?,
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let url = format!("{}/v1/messages", base_url.trim_end_matches('/'));
        let url = reqwest::Url::parse(&url).map_err(|e| format!("invalid base_url {url}: {e}"))?;
        Ok(OpenAiUpstream {
            http,
            embeddings_url: url.clone(),
            completions_url: url.clone(),
            url,
            responses_url: None,
            headers,
            timeout,
            total,
            anthropic: true,
        })
    }

    /// A chat request's body as Messages (`request`).
    pub(super) fn messages_body(&self, legacy: bool, body: &[u8]) -> Result<Bytes, Failure> {
        if legacy {
            let why = "an Anthropic provider answers chat requests only".to_string();
            return Err(Failure::Retry(RetryReason::Unavailable(why)));
        }
        let v: Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| Failure::Retry(RetryReason::Malformed(e.to_string())))?;
        let bound = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| v.get(*k)?.as_u64())
            .map_or(4096, |n| u32::try_from(n).unwrap_or(u32::MAX));
        let model = v.get("model").and_then(Value::as_str).unwrap_or("");
        let out = crate::upstream::anthropic::request(&v, model, bound)
            .map_err(|e| Failure::Final(ApiError::invalid_request(e, Some("messages"))))?;
        Ok(Bytes::from(serde_json::to_vec(&out).unwrap_or_default()))
    }
}
