//! OpenAI-compatible HTTP upstreams (OpenAI itself, Azure-style proxies,
//! vLLM, llama.cpp's server, …).
//!
//! async-openai supplies the upstream configuration (`OpenAIConfig`: base
//! URL, auth and organisation headers) and the wire type of error bodies.
//! Its `Client` is not used to execute calls: it hides the HTTP status,
//! retries 429/5xx on its own, and re-parses streams into typed events. A
//! gateway needs the status (to choose between fallback and passing the
//! error on), its own bounded retry across models, and the SSE frames as
//! they arrive, so requests go through the gateway's own client
//! (`upstream::http`) directly.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_openai::config::{Config, OpenAIConfig};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{header, HeaderMap, HeaderValue};
use serde_json::Value;

use super::errors::{self, error_chain};
use super::http as client;
use super::rewrite::{rewrite, rewrite_map, splice, Spliced};
use super::sse::{error_frame, frame, Event, SseParser};
use super::{into_sse, Ending, Failure, OnFinish, Outbox, Pull, Reply, RetryReason};
use crate::error::ApiError;
use crate::secret::Secret;

mod messages;

#[derive(Clone)]
pub struct OpenAiUpstream {
    pub(super) http: client::Http,
    pub(super) url: client::Target,
    pub(super) embeddings_url: client::Target,
    pub(super) completions_url: client::Target,
    /// `None` for a server marked `chat_only`.
    pub(super) responses_url: Option<client::Target>,
    pub(super) headers: HeaderMap,
    /// Until the first byte of the answer (headers, or the first event).
    pub(super) timeout: Duration,
    /// For the whole answer, streams included.
    pub(super) total: Duration,
    /// Speaks Anthropic's Messages API (`upstream::anthropic`): chat
    /// requests are translated to it and its answers back.
    pub(super) anthropic: bool,
}

impl OpenAiUpstream {
    pub fn new(
        http: client::Http,
        base_url: &str,
        api_key: &Secret,
        timeout: Duration,
        total: Duration,
    ) -> Result<Self, String> {
        // OpenAIConfig::headers() panics on a key that is not a valid header value.
        HeaderValue::from_str(&format!("Bearer {}", api_key.expose()))
            .map_err(|_| "the API key contains characters not allowed in a header".to_string())?;
        let config = OpenAIConfig::new()
            .with_api_base(base_url)
            .with_api_key(api_key.expose());
        let mut headers = config.headers();
        for v in headers.values_mut() {
            v.set_sensitive(true);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // Parsed, and the client chosen, once per URL.
        let parse = |path: &str| {
            let url = config.url(path);
            http.target(&url)
                .map_err(|e| format!("invalid base_url {url}: {e}"))
        };
        let url = parse("/chat/completions")?;
        let embeddings_url = parse("/embeddings")?;
        let completions_url = parse("/completions")?;
        let responses_url = Some(parse("/responses")?);
        Ok(OpenAiUpstream {
            http,
            url,
            embeddings_url,
            completions_url,
            responses_url,
            headers,
            timeout,
            total,
            anthropic: false,
        })
    }

    /// Marks the server as speaking Chat Completions only.
    pub fn chat_only(mut self, yes: bool) -> Self {
        if yes {
            self.responses_url = None;
        }
        self
    }

    /// Whether `/v1/responses` can go to this server as it is.
    pub fn speaks_responses(&self) -> bool {
        self.responses_url.is_some()
    }

    /// One Chat Completions attempt (or, with `legacy`, one `POST
    /// /completions`), JSON or SSE. `model` is the policy name the reply's
    /// `model` field gets. A stream takes `on_finish` and calls it when it
    /// ends; for a JSON reply the caller still holds it.
    pub async fn chat(
        &self,
        legacy: bool,
        body: Bytes,
        (stream, client_wants_usage): (bool, bool),
        model: Arc<str>,
        on_finish: &mut Option<OnFinish>,
    ) -> Result<Reply, Failure> {
        let url = if legacy {
            &self.completions_url
        } else {
            &self.url
        };
        let options = (stream, client_wants_usage);
        if self.anthropic {
            let body = self.messages_body(legacy, &body)?;
            let wire = if stream { Wire::Anthropic } else { Wire::Chat };
            return self.relay(url, wire, body, options, model, on_finish).await;
        }
        self.relay(url, Wire::Chat, body, options, model, on_finish)
            .await
    }

    /// One `POST /responses` attempt, JSON or SSE (events passed on in
    /// order, each with its type; usage from the terminal event), as `chat`.
    pub async fn responses(
        &self,
        body: Bytes,
        stream: bool,
        model: Arc<str>,
        on_finish: &mut Option<OnFinish>,
    ) -> Result<Reply, Failure> {
        let Some(url) = &self.responses_url else {
            let why = "the provider is marked chat_only".to_string();
            return Err(Failure::Retry(RetryReason::Unavailable(why)));
        };
        let wire = if stream { Wire::Responses } else { Wire::Chat };
        self.relay(url, wire, body, (stream, true), model, on_finish)
            .await
    }

    async fn relay(
        &self,
        url: &client::Target,
        wire: Wire,
        body: Bytes,
        (stream, client_wants_usage): (bool, bool),
        model: Arc<str>,
        on_finish: &mut Option<OnFinish>,
    ) -> Result<Reply, Failure> {
        let deadline = tokio::time::Instant::now() + self.total;
        let resp = self.send(url, body).await?;
        if stream {
            let mut relay = Relay {
                upstream: Box::pin(client::chunks(resp)),
                parser: SseParser::default(),
                wire,
                translator: matches!(wire, Wire::Anthropic | Wire::AnthropicRaw)
                    .then(|| super::anthropic::stream::Translator::new(&model, client_wants_usage)),
                name: serde_json::to_string(&*model).unwrap_or_default(),
                model,
                client_wants_usage,
                out: Outbox::default(),
                deadline,
            };
            match tokio::time::timeout(self.timeout, relay.prime()).await {
                Err(_) => Err(Failure::Retry(RetryReason::Timeout)),
                Ok(Err(reason)) => Err(Failure::Retry(reason)),
                Ok(Ok(())) => {
                    relay.out.on_finish = on_finish.take();
                    Ok(Reply::Stream(into_sse(relay)))
                }
            }
        } else {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let bytes = match tokio::time::timeout(left.min(self.timeout), client::bytes(resp))
                .await
            {
                Err(_) => return Err(Failure::Retry(RetryReason::Timeout)),
                Ok(Err(e)) => return Err(Failure::Retry(RetryReason::Connect(error_chain(&*e)))),
                Ok(Ok(b)) => b,
            };
            if wire == Wire::AnthropicRaw {
                let (body, usage) = super::anthropic::renamed(&bytes, &model)
                    .map_err(|e| Failure::Retry(RetryReason::Malformed(e)))?;
                return Ok(Reply::Json { body, usage });
            }
            if self.anthropic {
                let (body, usage) = super::anthropic::reply(&bytes, &model)
                    .map_err(|e| Failure::Retry(RetryReason::Malformed(e)))?;
                let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
                return Ok(Reply::Json { body, usage });
            }
            let (body, usage) = rewrite(&bytes, &model, false)
                .map_err(|e| Failure::Retry(RetryReason::Malformed(e)))?;
            let body =
                body.ok_or_else(|| Failure::Retry(RetryReason::Malformed("empty body".into())))?;
            Ok(Reply::Json {
                body: Bytes::from(body),
                usage,
            })
        }
    }

    /// One `POST /embeddings` attempt: the JSON answer with `model` set to
    /// the policy's name, and its prompt tokens.
    pub async fn embeddings(
        &self,
        body: Bytes,
        model: Arc<str>,
    ) -> Result<(Bytes, Option<u64>), Failure> {
        let resp = self.send(&self.embeddings_url, body).await?;
        let bytes = match tokio::time::timeout(self.total, client::bytes(resp)).await {
            Err(_) => return Err(Failure::Retry(RetryReason::Timeout)),
            Ok(Err(e)) => return Err(Failure::Retry(RetryReason::Connect(error_chain(&*e)))),
            Ok(Ok(b)) => b,
        };
        let prompt_tokens = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("usage")?.get("prompt_tokens")?.as_u64());
        let (body, _) = rewrite(&bytes, &model, false)
            .map_err(|e| Failure::Retry(RetryReason::Malformed(e)))?;
        let body =
            body.ok_or_else(|| Failure::Retry(RetryReason::Malformed("empty body".into())))?;
        Ok((Bytes::from(body), prompt_tokens))
    }

    /// Sends `body` to `url` and waits (up to `timeout`) for a successful
    /// status; a failing one is mapped to retry-or-answer.
    async fn send(&self, url: &client::Target, body: Bytes) -> Result<client::Response, Failure> {
        let send = self.http.post(url, &self.headers, body);
        let resp = match tokio::time::timeout(self.timeout, send).await {
            Err(_) => return Err(Failure::Retry(RetryReason::Timeout)),
            Ok(Err(e)) if client::is_timeout(&*e) => {
                return Err(Failure::Retry(RetryReason::Timeout))
            }
            Ok(Err(e)) => return Err(Failure::Retry(RetryReason::Connect(error_chain(&*e)))),
            Ok(Ok(r)) => r,
        };
        if resp.status().is_success() {
            Ok(resp)
        } else {
            Err(errors::classify(resp, self.timeout).await)
        }
    }
}

/// The shape of an upstream's stream: Chat Completions and legacy
/// completions chunks end with `[DONE]`; Responses events are typed and
/// end with a terminal event.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wire {
    Chat,
    Responses,
    /// Anthropic's Messages events, translated to chat chunks.
    Anthropic,
    /// Anthropic's Messages, passed on as they come (the model renamed).
    AnthropicRaw,
}

/// Relays an upstream SSE stream frame by frame: rewrites `model`, keeps
/// the usage chunk for accounting, forwards it only to clients that asked,
/// and ends a broken stream with an error event instead of a silent cut.
struct Relay {
    upstream: Pin<Box<dyn Stream<Item = Result<Bytes, client::BoxError>> + Send>>,
    parser: SseParser,
    wire: Wire,
    translator: Option<super::anthropic::stream::Translator>,
    model: Arc<str>,
    /// `model` as a JSON string, as it is spliced into chunks.
    name: String,
    client_wants_usage: bool,
    out: Outbox,
    /// The provider's total timeout: past it the stream ends with an error.
    deadline: tokio::time::Instant,
}

impl Relay {
    /// Reads until the first frame is ready; fails if the upstream ends first.
    async fn prime(&mut self) -> Result<(), RetryReason> {
        while self.out.ready.is_empty() && self.out.ending.is_none() {
            self.pull_next().await;
        }
        match self.out.ending {
            Some(Ending::UpstreamBroke) if self.out.ready.len() <= 1 => Err(
                RetryReason::Malformed("stream ended before the first event".into()),
            ),
            _ => Ok(()),
        }
    }

    async fn pull_next(&mut self) {
        let Ok(next) = tokio::time::timeout_at(self.deadline, self.upstream.next()).await else {
            tracing::warn!("upstream stream ran past the provider's total_timeout");
            self.out
                .ready
                .push_back(error_frame(&ApiError::gateway_timeout()));
            self.out.ending = Some(Ending::UpstreamBroke);
            return;
        };
        match next {
            Some(Ok(chunk)) => {
                let mut parser = std::mem::take(&mut self.parser);
                parser.feed_bytes(&chunk, |e| {
                    if self.out.ending.is_none() {
                        self.on_event(e);
                    }
                });
                self.parser = parser;
            }
            Some(Err(e)) => {
                tracing::warn!(error = %error_chain(&*e), "upstream stream broke off");
                self.broke();
            }
            None => {
                tracing::warn!("upstream stream ended without [DONE]");
                self.broke();
            }
        }
    }

    fn broke(&mut self) {
        self.out
            .ready
            .push_back(error_frame(&ApiError::bad_gateway()));
        self.out.ending = Some(Ending::UpstreamBroke);
    }

    fn on_event(&mut self, event: Event) {
        let data = &event.data[..];
        if self.translator.is_some() {
            return self.anthropic_event(data);
        }
        if data != b"[DONE]" {
            self.out.produced.push_event(data);
        }
        if self.wire == Wire::Responses {
            let e = super::responses::rewrite_event(data, &self.model);
            if e.usage.is_some() {
                self.out.usage = e.usage;
            }
            self.out.ready.push_back(e.frame);
            if e.terminal {
                self.out.ending = Some(Ending::Complete);
            } else if e.error {
                self.out.ending = Some(Ending::UpstreamBroke);
            }
            return;
        }
        if data == b"[DONE]" {
            self.out
                .ready
                .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
            self.out.ending = Some(Ending::Complete);
            return;
        }
        // Most chunks: `model` spliced in, or nothing to change at all.
        let drop_usage = !self.client_wants_usage;
        let wrap = (&b"data: "[..], &b"\n\n"[..]);
        let (out, usage) = splice(data, &self.name, drop_usage, wrap).unwrap_or_else(|| {
            match rewrite_map(data, &self.model, drop_usage) {
                Ok((Some(body), usage)) => (Spliced::Rewritten(frame(&body).to_vec()), usage),
                Ok((None, usage)) => (Spliced::Dropped, usage),
                Err(_) => (Spliced::Unchanged, None),
            }
        });
        // Usage is kept for accounting even when its chunk is dropped.
        if usage.is_some() {
            self.out.usage = usage;
        }
        self.out.ready.extend(match out {
            Spliced::Unchanged => Some(event.frame.unwrap_or_else(|| frame(data))),
            Spliced::Rewritten(f) => Some(Bytes::from(f)),
            Spliced::Dropped => None,
        });
    }
}

impl Pull for Relay {
    fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    async fn pull(&mut self) {
        self.pull_next().await
    }
}
