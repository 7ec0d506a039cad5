//! An `OpenAiUpstream` that speaks Anthropic's Messages API
//! (`upstream::anthropic` translates).

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::{OpenAiUpstream, Wire};
use crate::error::ApiError;
use crate::secret::Secret;
use crate::upstream::sse::frame;
use crate::upstream::{Ending, Failure, RetryReason};

impl OpenAiUpstream {
    /// Whether the server speaks Anthropic's Messages API.
    pub fn speaks_messages(&self) -> bool {
        self.anthropic
    }

    /// An upstream that speaks Messages at `{base_url}/v1/messages`, with
    /// `x-api-key` and `anthropic-version`.
    pub fn anthropic(
        http: crate::upstream::http::Http,
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
        let url = http
            .target(&url)
            .map_err(|e| format!("invalid base_url {url}: {e}"))?;
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

    /// This upstream with `headers` in place of its own (the client's
    /// `anthropic-version` and `anthropic-beta`); invalid values are left out.
    pub fn with_headers(&self, headers: &[(&'static str, String)]) -> std::borrow::Cow<'_, Self> {
        if headers.is_empty() {
            return std::borrow::Cow::Borrowed(self);
        }
        let mut h = self.headers.clone();
        for (name, v) in headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*name, v);
            }
        }
        std::borrow::Cow::Owned(OpenAiUpstream {
            http: self.http.clone(),
            url: self.url.clone(),
            embeddings_url: self.embeddings_url.clone(),
            completions_url: self.completions_url.clone(),
            responses_url: self.responses_url.clone(),
            headers: h,
            timeout: self.timeout,
            total: self.total,
            anthropic: self.anthropic,
        })
    }

    /// One Messages request passed on as it is (`body`: the client's,
    /// with the upstream model's name), JSON or SSE; the answer comes back
    /// as it came, `model` renamed to the policy's, its usage read.
    pub async fn messages(
        &self,
        body: Bytes,
        stream: bool,
        model: std::sync::Arc<str>,
        on_finish: &mut Option<crate::upstream::OnFinish>,
    ) -> Result<crate::upstream::Reply, Failure> {
        let url = self.url.clone();
        self.relay(
            &url,
            Wire::AnthropicRaw,
            body,
            (stream, true),
            model,
            on_finish,
        )
        .await
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

impl super::Relay {
    /// One Messages event: translated to chat chunks, or (passed on as it
    /// is) with `model` renamed; its usage kept, its chunks counted for a
    /// stream cut before its usage.
    pub(super) fn anthropic_event(&mut self, data: &[u8]) {
        let Some(t) = &mut self.translator else {
            return;
        };
        let step = t.event(data);
        let raw = self.wire == Wire::AnthropicRaw;
        for c in step.chunks {
            self.out.produced.push_event(&c);
            if !raw {
                self.out.ready.push_back(frame(&c));
            }
        }
        if raw {
            let event = crate::upstream::anthropic::renamed_event(data, &self.model);
            self.out
                .ready
                .push_back(frame(event.as_deref().unwrap_or(data)));
        }
        if let Some(u) = t.usage() {
            self.out.usage = Some(u);
        }
        match step.end {
            Some(true) => {
                if !raw {
                    self.out
                        .ready
                        .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                }
                self.out.ending = Some(Ending::Complete);
            }
            Some(false) => self.broke(),
            None => {}
        }
    }
}
