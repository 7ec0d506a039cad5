//! A fake OpenAI upstream that speaks the real wire format: chat
//! completions as JSON or SSE chunks (with `usage` when asked), the
//! Responses API as JSON or typed SSE events, legacy completions and
//! embeddings, OpenAI
//! error bodies, 429 with `Retry-After`, delays and streams that break
//! mid-way. It listens on port 0, counts its hits and records what it was
//! sent, so tests can assert on exactly what the gateway forwarded.
//!
//! Shared by the integration tests and `examples/fake_openai.rs` (the
//! standalone server used by the Python SDK check and the load benchmark).
#![allow(dead_code, clippy::unwrap_used, clippy::disallowed_methods)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// What the fake does for one request. Scripted behaviours are used in
/// order; when the script is empty it answers normally.
#[derive(Debug, Clone)]
pub enum Behavior {
    Ok,
    /// An OpenAI error body with this status (429 gets `Retry-After: 1`).
    Status(u16),
    /// Wait, then answer normally.
    Delay(Duration),
    /// Stream: send two content chunks, then drop the connection.
    DropMidStream,
    /// Stream: send headers, then close without any event.
    CloseBeforeFirstEvent,
    /// Stream: `pieces` content chunks of " tok" (one cl100k token
    /// each), `delay` apart, then the usage chunk and `[DONE]`.
    SlowStream {
        pieces: usize,
        delay: Duration,
    },
    /// Answer with this `usage` value (JSON replies; `null`: none at all).
    Usage(Value),
    /// Answer (JSON) with this message content instead of the greeting.
    Content(String),
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub body: Value,
    pub headers: HeaderMap,
}

#[derive(Clone)]
pub struct Fake {
    pub addr: SocketAddr,
    state: Arc<Shared>,
}

struct Shared {
    api_key: String,
    hits: AtomicUsize,
    record: bool,
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Behavior>>,
    chunk_delay: Duration,
    fail_every: Option<usize>,
    prompt_scale: Option<u64>,
    ignore_max_tokens: bool,
    cached_tokens: Option<u64>,
    greeting: Option<String>,
    judge: Option<(String, String)>,
    /// Chat tokens answered (prompt, completion): what this upstream bills.
    billed: Mutex<(u64, u64)>,
}

pub struct Options {
    pub api_key: String,
    pub record: bool,
    pub chunk_delay: Duration,
    /// Fail (500) every Nth request: a flapping upstream.
    pub fail_every: Option<usize>,
    /// Chat `usage.prompt_tokens` as this many times the cl100k count (a
    /// server whose tokenizer counts more, as Llama's does), instead of
    /// one per word.
    pub prompt_scale: Option<u64>,
    /// Answer (and bill) 7 tokens whatever `max_tokens` says.
    pub ignore_max_tokens: bool,
    /// Chat usage reports this many of the prompt tokens as served from
    /// the prompt cache (`prompt_tokens_details.cached_tokens`).
    pub cached_tokens: Option<u64>,
    /// The JSON chat answer's text, instead of the greeting.
    pub greeting: Option<String>,
    /// Answer every chat request as a judge would: `(marker, hard)` grades
    /// the answer containing `marker` 9 and the other 2 when the request
    /// contains `hard`, and both 8 otherwise, as `{"A": a, "B": b}`.
    pub judge: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            api_key: "upstream-secret".into(),
            record: true,
            chunk_delay: Duration::ZERO,
            fail_every: None,
            prompt_scale: None,
            ignore_max_tokens: false,
            cached_tokens: None,
            greeting: None,
            judge: None,
        }
    }
}

impl Fake {
    pub async fn start() -> Fake {
        Fake::start_with(Options::default()).await
    }

    pub async fn start_on(listener: tokio::net::TcpListener, opts: Options) -> Fake {
        let state = Arc::new(Shared {
            api_key: opts.api_key,
            hits: AtomicUsize::new(0),
            record: opts.record,
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            chunk_delay: opts.chunk_delay,
            fail_every: opts.fail_every,
            prompt_scale: opts.prompt_scale,
            ignore_max_tokens: opts.ignore_max_tokens,
            cached_tokens: opts.cached_tokens,
            greeting: opts.greeting,
            judge: opts.judge,
            billed: Mutex::new((0, 0)),
        });
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(embeddings))
            .route("/v1/completions", post(completions))
            .route("/v1/responses", post(responses))
            .with_state(state.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Fake { addr, state }
    }

    pub async fn start_with(opts: Options) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Fake::start_on(listener, opts).await
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.state.script.lock().unwrap().extend(behaviors);
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// The chat tokens (prompt, completion) this upstream has answered
    /// and so billed, whether or not the gateway passed the answer on.
    pub fn billed(&self) -> (u64, u64) {
        *self.state.billed.lock().unwrap()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Response {
    let mut res = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
        ),
    )
        .into_response();
    if status == 429 {
        res.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
    }
    res
}

/// Checks the key, parses the body and records the request.
#[allow(clippy::result_large_err)]
fn accept(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Bearer {}", s.api_key) {
        return Err(error(
            401,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ));
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return Err(error(
            400,
            "We could not parse the JSON body of your request.",
            "invalid_request_error",
            None,
        ));
    };
    if s.record {
        s.requests.lock().unwrap().push(Recorded {
            body: req.clone(),
            headers: headers.clone(),
        });
    }
    Ok(req)
}

/// Counts the hit, accepts the request and plays the next scripted
/// behaviour: an error status ends it, a delay waits; the rest is the
/// handler's.
async fn begin(
    s: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Value, Option<Behavior>), Response> {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let req = accept(s, headers, body)?;
    let behavior = s.script.lock().unwrap().pop_front();
    match behavior {
        Some(Behavior::Status(code)) => Err(error(
            code,
            "The server had an error while processing your request.",
            "server_error",
            None,
        )),
        Some(Behavior::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok((req, behavior))
        }
        _ => Ok((req, behavior)),
    }
}

/// `POST /v1/completions` (legacy): "Hello from the fake upstream." as
/// JSON or as SSE chunks (one per word, then the usage chunk when asked).
async fn completions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match begin(&s, &headers, &body).await {
        Ok(started) => started,
        Err(res) => return res,
    };
    let prompt = req["prompt"].as_str().map_or(1, |p| p.len() / 4 + 1) as u64;
    let words = ["Hello", " from", " the", " fake", " upstream."];
    let max = req["max_tokens"].as_u64().unwrap_or(16) as usize;
    let words = &words[..words.len().min(max.max(1))];
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": words.len(), "total_tokens": prompt + words.len() as u64});
    let model = req["model"].clone();
    if req["stream"] != json!(true) {
        return axum::Json(json!({
            "id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
            "choices": [{"text": words.concat(), "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        let finish = if i + 1 == words.len() {
            json!("stop")
        } else {
            Value::Null
        };
        let chunk = json!({"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model,
            "choices": [{"text": w, "index": 0, "logprobs": null, "finish_reason": finish}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    if req["stream_options"]["include_usage"] == json!(true) {
        let chunk = json!({"id": "cmpl-fake", "object": "text_completion", "created": 1, "model": model, "choices": [], "usage": usage});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        out,
    )
        .into_response()
}

/// `POST /v1/embeddings`: one 3-dimensional vector per input, usage
/// counted as one token per 4 bytes of text (or per token id) plus one.
async fn embeddings(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, _) = match begin(&s, &headers, &body).await {
        Ok(started) => started,
        Err(res) => return res,
    };
    let inputs: Vec<Value> = match &req["input"] {
        Value::Array(a) if a.first().is_some_and(Value::is_number) => vec![Value::Array(a.clone())],
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    let tokens = |v: &Value| match v {
        Value::String(t) => t.len() / 4 + 1,
        Value::Array(ids) => ids.len() + 1,
        _ => 1,
    };
    let prompt: usize = inputs.iter().map(tokens).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]}))
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "model": req["model"],
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }))
    .into_response()
}

/// A judge's grades for the two answers in a router-learning request.
fn judged(req: &Value, marker: &str, hard: &str) -> String {
    let user = req["messages"][1]["content"].as_str().unwrap_or("");
    let (request, answers) = user.split_once("## Answer A\n").unwrap_or((user, ""));
    let (a, b) = answers.split_once("## Answer B\n").unwrap_or((answers, ""));
    let grade = |answer: &str| match (request.contains(hard), answer.contains(marker)) {
        (false, _) => 8,
        (true, true) => 9,
        (true, false) => 2,
    };
    json!({"A": grade(a), "B": grade(b)}).to_string()
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let n = s.hits.fetch_add(1, Ordering::SeqCst) + 1;
    let req = match accept(&s, &headers, &body) {
        Ok(req) => req,
        Err(res) => return res,
    };
    let flap = s
        .fail_every
        .is_some_and(|every| every > 0 && n % every == 0);
    let behavior = match s.script.lock().unwrap().pop_front() {
        Some(b) => b,
        None if flap => Behavior::Status(500),
        None => Behavior::Ok,
    };
    match behavior {
        Behavior::Status(code) => {
            let (msg, kind, c) = match code {
                429 => (
                    "Rate limit reached for requests",
                    "requests",
                    Some("rate_limit_exceeded"),
                ),
                400 => (
                    "Invalid schema for function 'f'.",
                    "invalid_request_error",
                    Some("invalid_function_parameters"),
                ),
                _ => (
                    "The server had an error while processing your request.",
                    "server_error",
                    None,
                ),
            };
            return error(code, msg, kind, c);
        }
        Behavior::Delay(d) => tokio::time::sleep(d).await,
        _ => {}
    }
    let model = req["model"].as_str().unwrap_or("unknown").to_string();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let usage_wanted = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false)
        && !matches!(&behavior, Behavior::Usage(Value::Null));
    let prompt_tokens = match s.prompt_scale {
        Some(k) => {
            let m = req["messages"].as_array().cloned().unwrap_or_default();
            k * u64::from(tollgate::classify::tokens::count_chat(&m))
        }
        None => prompt_tokens(&req),
    };
    let cap = match req["max_completion_tokens"]
        .as_u64()
        .or(req["max_tokens"].as_u64())
    {
        Some(m) if !s.ignore_max_tokens => m as usize,
        _ => usize::MAX,
    };
    let tools = req.get("tools").is_some();
    let bill = |completion: usize| {
        let mut b = s.billed.lock().unwrap();
        *b = (b.0 + prompt_tokens, b.1 + completion as u64);
    };
    if let (false, Behavior::Usage(u)) = (stream, &behavior) {
        bill(7.min(cap));
        let mut body = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": format!("{model}-fake"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the fake upstream."},
                         "logprobs": null, "finish_reason": "stop"}],
        });
        if !u.is_null() {
            body["usage"] = u.clone();
        }
        return axum::Json(body).into_response();
    }
    if !stream {
        bill(7.min(cap));
        let message = if tools {
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
        } else if let Behavior::Content(text) = &behavior {
            json!({"role": "assistant", "content": text})
        } else if let Some((marker, hard)) = &s.judge {
            json!({"role": "assistant", "content": judged(&req, marker, hard)})
        } else {
            let text = s
                .greeting
                .as_deref()
                .unwrap_or("Hello from the fake upstream.");
            json!({"role": "assistant", "content": text})
        };
        let body = json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1_700_000_000,
            "model": format!("{model}-fake"), "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": message, "logprobs": null,
                         "finish_reason": if tools { "tool_calls" } else { "stop" }}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 7.min(cap),
                      "total_tokens": prompt_tokens + 7.min(cap) as u64}
        });
        let mut body = body;
        if let Some(c) = s.cached_tokens {
            body["usage"]["prompt_tokens_details"] = json!({"cached_tokens": c, "audio_tokens": 0});
        }
        return axum::Json(body).into_response();
    }
    let (pieces, delay): (Vec<&str>, Duration) = match behavior {
        Behavior::SlowStream { pieces, delay } => (vec![" tok"; pieces.min(cap)], delay),
        _ => {
            let p = ["Hello", " from", " the", " fake", " upstream."];
            (p[..p.len().min(cap)].to_vec(), s.chunk_delay)
        }
    };
    bill(pieces.len());
    let mut frames: Vec<String> = Vec::new();
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": format!("{model}-fake"), "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
        });
        if usage_wanted {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    frames.push(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ));
    for p in &pieces {
        frames.push(chunk(json!({"content": p}), Value::Null));
    }
    frames.push(chunk(json!({}), json!("stop")));
    if usage_wanted {
        let mut u = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": format!("{model}-fake"), "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": pieces.len(),
                      "total_tokens": prompt_tokens + pieces.len() as u64}
        });
        if let Some(c) = s.cached_tokens {
            u["usage"]["prompt_tokens_details"] = json!({"cached_tokens": c, "audio_tokens": 0});
        }
        frames.push(format!("data: {u}\n\n"));
    }
    frames.push("data: [DONE]\n\n".into());
    let body = match behavior {
        Behavior::CloseBeforeFirstEvent => Body::empty(),
        Behavior::DropMidStream => {
            let head: Vec<String> = frames.into_iter().take(3).collect();
            let s = futures::stream::iter(
                head.into_iter()
                    .map(|f| Ok::<_, std::io::Error>(Bytes::from(f))),
            )
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("connection reset"))
            }));
            Body::from_stream(s)
        }
        _ if delay.is_zero() => Body::from(frames.concat()),
        _ => {
            let s = futures::stream::iter(frames).then(move |f| async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(Bytes::from(f))
            });
            Body::from_stream(s)
        }
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}

use futures::StreamExt;

/// A deterministic stand-in for a tokenizer: one token per whitespace word.
/// Content parts: the words of text parts, and 765 tokens an image (what
/// OpenAI bills a 512×512 image at high detail).
fn prompt_tokens(req: &Value) -> u64 {
    let words = |t: &str| t.split_whitespace().count() as u64;
    let content = |c: &Value| match c {
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("image_url") => 765,
                _ => words(p["text"].as_str().unwrap_or("")),
            })
            .sum(),
        c => words(c.as_str().unwrap_or("")),
    };
    req["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| content(&m["content"]) + 4).sum())
        .unwrap_or(0)
}

/// `POST /v1/responses`: "Hello from the fake upstream." (cut to
/// `max_output_tokens` words, then `incomplete`), or a `get_weather`
/// function call when tools are given; as JSON or as the typed event
/// stream, with usage in the final response. Input tokens: one per
/// whitespace word of the instructions and text inputs, plus 4 per item.
async fn responses(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (req, behavior) = match begin(&s, &headers, &body).await {
        Ok(started) => started,
        Err(res) => return res,
    };
    let words = |t: &str| t.split_whitespace().count() as u64;
    let mut input = req["instructions"].as_str().map_or(0, words);
    match &req["input"] {
        Value::String(t) => input += words(t) + 4,
        Value::Array(items) => {
            for it in items {
                input += 4 + match &it["content"] {
                    Value::String(t) => words(t),
                    Value::Array(parts) => parts
                        .iter()
                        .map(|p| p["text"].as_str().map_or(0, words))
                        .sum(),
                    _ => it["output"].as_str().map_or(0, words),
                };
            }
        }
        _ => {}
    }
    let model = format!("{}-fake", req["model"].as_str().unwrap_or("unknown"));
    let pieces = ["Hello", " from", " the", " fake", " upstream."];
    let max = req["max_output_tokens"].as_u64().unwrap_or(u64::MAX) as usize;
    let n = pieces.len().min(max.max(1));
    let tools = req["tools"].as_array().is_some_and(|t| !t.is_empty());
    let text: String = pieces[..n].concat();
    let (item, output_tokens) = if tools {
        let args = "{\"location\":\"Paris\"}";
        (
            json!({"id": "fc_fake", "type": "function_call", "status": "completed",
                "call_id": "call_fake", "name": "get_weather", "arguments": args}),
            6,
        )
    } else {
        (
            json!({"id": "msg_fake", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}),
            n as u64,
        )
    };
    let incomplete = !tools && n < pieces.len();
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": "resp_fake", "object": "response", "created_at": 1_700_000_000,
               "status": status, "error": null,
               "incomplete_details": if incomplete && status != "in_progress" { json!({"reason": "max_output_tokens"}) } else { Value::Null },
               "instructions": req["instructions"], "model": model, "output": output,
               "parallel_tool_calls": true, "previous_response_id": req["previous_response_id"],
               "store": req["store"].as_bool().unwrap_or(true), "temperature": 1.0,
               "text": {"format": {"type": "text"}}, "tool_choice": "auto",
               "tools": req["tools"].as_array().cloned().unwrap_or_default(), "top_p": 1.0,
               "truncation": "disabled", "usage": usage, "metadata": {}})
    };
    let usage = json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input + output_tokens});
    let status = if incomplete {
        "incomplete"
    } else {
        "completed"
    };
    if req["stream"] != json!(true) {
        return axum::Json(response(status, json!([item]), usage)).into_response();
    }
    let mut events: Vec<Value> = vec![
        json!({"type": "response.created", "response": response("in_progress", json!([]), Value::Null)}),
        json!({"type": "response.in_progress", "response": response("in_progress", json!([]), Value::Null)}),
    ];
    if tools {
        let mut added = item.clone();
        added["status"] = json!("in_progress");
        added["arguments"] = json!("");
        events
            .push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
        for d in ["{\"location\":", "\"Paris\"}"] {
            events.push(json!({"type": "response.function_call_arguments.delta", "item_id": "fc_fake", "output_index": 0, "delta": d}));
        }
        events.push(json!({"type": "response.function_call_arguments.done", "item_id": "fc_fake", "output_index": 0, "arguments": item["arguments"]}));
    } else {
        events.push(json!({"type": "response.output_item.added", "output_index": 0,
            "item": {"id": "msg_fake", "type": "message", "status": "in_progress", "role": "assistant", "content": []}}));
        events.push(json!({"type": "response.content_part.added", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []}}));
        for p in &pieces[..n] {
            events.push(json!({"type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}));
        }
        events.push(json!({"type": "response.output_text.done", "item_id": "msg_fake", "output_index": 0, "content_index": 0, "text": text, "logprobs": []}));
        events.push(json!({"type": "response.content_part.done", "item_id": "msg_fake", "output_index": 0, "content_index": 0,
            "part": item["content"][0]}));
    }
    events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    let last = if incomplete {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push(json!({"type": last, "response": response(status, json!([item]), usage)}));
    let frames: Vec<String> = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["sequence_number"] = json!(i);
            format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())
        })
        .collect();
    let body = match behavior {
        Some(Behavior::CloseBeforeFirstEvent) => Body::empty(),
        Some(Behavior::DropMidStream) => {
            let head: Vec<String> = frames.into_iter().take(5).collect();
            let s = futures::stream::iter(
                head.into_iter()
                    .map(|f| Ok::<_, std::io::Error>(Bytes::from(f))),
            )
            .chain(futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::other("connection reset"))
            }));
            Body::from_stream(s)
        }
        _ => Body::from(frames.concat()),
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(body)
        .unwrap()
}
