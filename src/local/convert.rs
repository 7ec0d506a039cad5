//! OpenAI chat request → mistralrs request, and mistralrs responses →
//! OpenAI JSON / SSE frames, with exact usage from the engine's tokenizer.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use indexmap::IndexMap;
use mistralrs_core::{
    Constraint, MessageContent, NormalRequest, RequestMessage, Response, SamplingParams, StopTokens,
};
use serde_json::{json, Value};
use tokio::sync::mpsc::{Receiver, Sender};

use super::admission::Slot;
use super::{Engine, TOKEN_TIMEOUT};
use crate::error::ApiError;
use crate::request::ChatRequest;
use crate::upstream::{into_sse, Ending, Failure, Outbox, Pull, RetryReason, SseStream, Usage};

/// Fields the local engine cannot honour; a request using them is sent on
/// to the next model in the chain instead of being answered wrongly.
use super::stop::StopFilter;

const UNSUPPORTED: &[&str] = &["tools", "functions", "response_format", "logprobs", "audio"];

pub type Messages = Vec<IndexMap<String, MessageContent>>;

pub struct LocalRequest {
    messages: Messages,
    sampling: SamplingParams,
}

impl LocalRequest {
    pub fn into_normal(self, response: Sender<Response>, id: usize) -> NormalRequest {
        NormalRequest {
            messages: RequestMessage::Chat {
                messages: self.messages,
                enable_thinking: None,
                reasoning_effort: None,
            },
            sampling_params: self.sampling,
            response,
            return_logprobs: false,
            // Always streamed inside the engine: a dropped receiver cancels.
            is_streaming: true,
            id,
            constraint: Constraint::None,
            suffix: None,
            tools: None,
            tool_choice: None,
            logits_processors: None,
            return_raw_logits: false,
            web_search_options: None,
            model_id: None,
            truncate_sequence: false,
        }
    }
}

fn unsupported(what: &str) -> RetryReason {
    RetryReason::Unavailable(format!("the local engine does not support {what}"))
}

/// The conversation as mistralrs takes it; text content only.
pub fn messages(chat: &ChatRequest) -> Result<Messages, RetryReason> {
    chat.messages()
        .iter()
        .map(|m| {
            let role = m["role"].as_str().unwrap_or("user");
            let role = match role {
                "developer" => "system",
                "system" | "user" | "assistant" => role,
                other => return Err(unsupported(&format!("`{other}` messages"))),
            };
            if m.get("tool_calls").is_some_and(|t| !t.is_null()) {
                return Err(unsupported("tool calls"));
            }
            let content = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                Value::Array(parts) => {
                    let mut text = String::new();
                    for p in parts {
                        match (p["type"].as_str(), p["text"].as_str()) {
                            (Some("text"), Some(t)) => text.push_str(t),
                            _ => return Err(unsupported("non-text content parts")),
                        }
                    }
                    text
                }
                _ => return Err(unsupported("this message content")),
            };
            let mut out = IndexMap::new();
            out.insert("role".to_string(), either::Either::Left(role.to_string()));
            out.insert("content".to_string(), either::Either::Left(content));
            Ok(out)
        })
        .collect()
}

pub fn request(chat: &ChatRequest) -> Result<LocalRequest, RetryReason> {
    for field in UNSUPPORTED {
        if chat
            .body
            .get(*field)
            .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
        {
            return Err(unsupported(&format!("`{field}`")));
        }
    }
    if chat
        .body
        .get("n")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 1)
    {
        return Err(unsupported("`n` > 1"));
    }
    let greedy = chat.temperature == Some(0.0);
    let mut sampling = if greedy {
        // Temperature 0 is greedy decoding: deterministic.
        SamplingParams::deterministic()
    } else {
        let mut s = SamplingParams::deterministic();
        s.top_k = None;
        s.temperature = Some(chat.temperature.unwrap_or(1.0));
        s.top_p = chat.top_p;
        s
    };
    sampling.max_len = chat.max_tokens.map(|n| n as usize);
    if !chat.stop.is_empty() {
        sampling.stop_toks = Some(StopTokens::Seqs(chat.stop.clone()));
    }
    let f32_of = |k: &str| chat.body.get(k).and_then(Value::as_f64).map(|v| v as f32);
    sampling.frequency_penalty = f32_of("frequency_penalty");
    sampling.presence_penalty = f32_of("presence_penalty");
    Ok(LocalRequest {
        messages: messages(chat)?,
        sampling,
    })
}

/// One running sequence: turns engine responses into OpenAI frames.
pub struct Generation {
    rx: Receiver<Response>,
    _slot: Slot,
    model: Arc<str>,
    id: String,
    created: u64,
    stream: bool,
    include_usage: bool,
    engine: Arc<Engine>,
    text: String,
    stops: StopFilter,
    finish_reason: Option<String>,
    error: Option<String>,
    pub out: Outbox,
}

impl Generation {
    pub fn new(
        rx: Receiver<Response>,
        slot: Slot,
        model: Arc<str>,
        chat: &ChatRequest,
        engine: Arc<Engine>,
    ) -> Self {
        let nonce: u64 = rand::random();
        Generation {
            rx,
            _slot: slot,
            model,
            id: format!("chatcmpl-{nonce:016x}"),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            stream: chat.stream,
            include_usage: chat.include_usage,
            engine,
            text: String::new(),
            stops: StopFilter::new(chat.stop.clone()),
            finish_reason: None,
            error: None,
            out: Outbox::default(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": &*self.model, "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        frame(&c)
    }

    /// Reads the next engine response.
    async fn pull_next(&mut self) {
        let next = tokio::time::timeout(TOKEN_TIMEOUT, self.rx.recv()).await;
        match next {
            Ok(Some(Response::Chunk(c))) => {
                let first = self.text.is_empty() && self.out.ready.is_empty();
                let Some(choice) = c.choices.into_iter().next() else {
                    return;
                };
                let piece = self.stops.push(&choice.delta.content.unwrap_or_default());
                if self.stream && (first || !piece.is_empty()) {
                    let delta = if first {
                        json!({"role": "assistant", "content": piece})
                    } else {
                        json!({"content": piece})
                    };
                    let f = self.chunk(delta, None);
                    self.out.ready.push_back(f);
                }
                self.text.push_str(&piece);
                self.out.produced.push(&piece);
                if let Some(reason) = choice.finish_reason {
                    let reason = if reason == "canceled" {
                        "stop".to_string()
                    } else {
                        reason
                    };
                    self.finish(reason, c.usage);
                }
            }
            Ok(Some(Response::Done(done))) => {
                if let Some(choice) = done.choices.into_iter().next() {
                    let piece = self.stops.push(&choice.message.content.unwrap_or_default());
                    self.text.push_str(&piece);
                    self.finish(choice.finish_reason, Some(done.usage));
                }
            }
            Ok(Some(Response::ModelError(msg, _))) => self.broke(format!("model error: {msg}")),
            Ok(Some(Response::InternalError(e))) => self.broke(format!("internal error: {e}")),
            Ok(Some(Response::ValidationError(e))) => self.broke(format!("rejected: {e}")),
            Ok(Some(_)) => self.broke("unexpected response kind".into()),
            Ok(None) => self.broke("the engine closed the sequence".into()),
            Err(_) => self.broke(format!("no token for {} s", TOKEN_TIMEOUT.as_secs())),
        }
    }

    fn finish(&mut self, reason: String, usage: Option<mistralrs_core::Usage>) {
        let rest = self.stops.flush();
        if self.stream && !rest.is_empty() {
            let f = self.chunk(json!({"content": rest}), None);
            self.out.ready.push_back(f);
        }
        self.text.push_str(&rest);
        if let Some(u) = usage {
            self.out.usage = Some(Usage::new(
                u.prompt_tokens as u64,
                u.completion_tokens as u64,
            ));
            self.engine.meter.record(
                u.prompt_tokens as u64,
                f64::from(u.total_prompt_time_sec),
                u.completion_tokens as u64,
                f64::from(u.total_completion_time_sec),
            );
        }
        if self.stream {
            let f = self.chunk(json!({}), Some(&reason));
            self.out.ready.push_back(f);
            if let (true, Some(u)) = (self.include_usage, self.out.usage) {
                let c = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": &*self.model, "system_fingerprint": null, "choices": [],
                    "usage": usage_json(u),
                });
                self.out.ready.push_back(frame(&c));
            }
            self.out
                .ready
                .push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        self.finish_reason = Some(reason);
        self.out.ending = Some(Ending::Complete);
    }

    fn broke(&mut self, why: String) {
        tracing::warn!(model = %self.model, reason = %why, "local generation failed");
        if self.stream {
            self.out
                .ready
                .push_back(crate::upstream::sse::error_frame(&ApiError::bad_gateway()));
        }
        self.error = Some(why);
        self.out.ending = Some(Ending::UpstreamBroke);
    }

    /// Waits for the first frame; a failure before it may fall back.
    pub async fn prime(&mut self) -> Result<(), Failure> {
        while self.out.ready.is_empty() && self.out.ending.is_none() {
            self.pull_next().await;
        }
        match (&self.out.ending, &self.error) {
            (Some(Ending::UpstreamBroke), Some(why)) if self.text.is_empty() => {
                Err(Failure::Retry(RetryReason::Malformed(why.clone())))
            }
            _ => Ok(()),
        }
    }

    /// Runs the sequence to the end: the OpenAI JSON body and its usage.
    pub async fn collect(mut self) -> Result<(Bytes, Option<Usage>), Failure> {
        while self.out.ending.is_none() {
            self.pull_next().await;
        }
        if let Some(why) = self.error.take() {
            return Err(Failure::Retry(RetryReason::Malformed(why)));
        }
        let u = self.out.usage.unwrap_or_default();
        let body = json!({
            "id": self.id, "object": "chat.completion", "created": self.created,
            "model": &*self.model, "system_fingerprint": null,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.text},
                         "logprobs": null, "finish_reason": self.finish_reason}],
            "usage": usage_json(u),
        });
        Ok((
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            self.out.usage,
        ))
    }

    pub fn into_sse(self) -> SseStream {
        into_sse(self)
    }
}

impl Pull for Generation {
    fn outbox(&mut self) -> &mut Outbox {
        &mut self.out
    }

    async fn pull(&mut self) {
        self.pull_next().await
    }
}

fn usage_json(u: Usage) -> Value {
    json!({"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
           "total_tokens": u.prompt_tokens + u.completion_tokens})
}

fn frame(v: &Value) -> Bytes {
    crate::upstream::sse::frame(&serde_json::to_vec(v).unwrap_or_default())
}
