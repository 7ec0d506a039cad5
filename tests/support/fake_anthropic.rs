//! A fake Anthropic Messages server, built from the documented response
//! and event shapes: `POST /v1/messages` answers "Hello from Claude." (cut
//! to `max_tokens` words, `stop_reason: max_tokens`) or, when tools are
//! given, a `get_weather` tool call; as JSON or as the event stream
//! (`message_start`, `content_block_*`, `ping`, `message_delta`,
//! `message_stop`). Usage: one input token per word of the system and
//! messages, plus 3 a message; `cache_read` of them reported as cache
//! reads and `cache_write` as cache writes. Errors use Anthropic's shape.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

pub const KEY: &str = "anthropic-secret";

#[derive(Default)]
struct Shared {
    cache_read: u64,
    cache_write: u64,
    requests: Mutex<Vec<(HeaderMap, Value)>>,
}

pub struct FakeAnthropic {
    addr: std::net::SocketAddr,
    state: Arc<Shared>,
}

impl FakeAnthropic {
    pub async fn start(cache_read: u64, cache_write: u64) -> FakeAnthropic {
        let state = Arc::new(Shared {
            cache_read,
            cache_write,
            ..Shared::default()
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeAnthropic { addr, state }
    }

    /// The base URL a provider names (no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received, with their headers.
    pub fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.state.requests.lock().unwrap().clone()
    }
}

fn error(status: u16, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(a) => a
            .iter()
            .map(|b| words(&b["text"]) + words(&b["content"]))
            .sum(),
        _ => 0,
    }
}

async fn messages(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return error(401, "authentication_error", "invalid x-api-key");
    }
    if headers.get("anthropic-version").is_none() {
        return error(
            400,
            "invalid_request_error",
            "anthropic-version header is required",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "invalid_request_error", "not JSON");
    };
    s.requests
        .lock()
        .unwrap()
        .push((headers.clone(), req.clone()));
    let Some(max) = req["max_tokens"].as_u64() else {
        return error(400, "invalid_request_error", "max_tokens: Field required");
    };
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let counted =
        words(&req["system"]) + msgs.iter().map(|m| 3 + words(&m["content"])).sum::<u64>();
    let read = s.cache_read.min(counted);
    let write = s.cache_write.min(counted - read);
    let input = counted - read - write;
    let tools = req["tools"].as_array().is_some_and(|t| !t.is_empty());
    let pieces = ["Hello", " from", " Claude."];
    let n = pieces.len().min(max.max(1) as usize);
    let (block, output, stop) = if tools {
        (
            json!({"type": "tool_use", "id": "toolu_fake", "name": "get_weather", "input": {"city": "Paris"}}),
            12,
            "tool_use",
        )
    } else {
        let stop = if n < pieces.len() {
            "max_tokens"
        } else {
            "end_turn"
        };
        (
            json!({"type": "text", "text": pieces[..n].concat()}),
            n as u64,
            stop,
        )
    };
    let usage = json!({"input_tokens": input, "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read, "output_tokens": output});
    let model = req["model"].clone();
    if req["stream"] != json!(true) {
        return axum::Json(
            json!({"id": "msg_fake", "type": "message", "role": "assistant",
            "model": model, "content": [block], "stop_reason": stop, "stop_sequence": null,
            "usage": usage}),
        )
        .into_response();
    }
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    let mut events = vec![
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage}}),
    ];
    if tools {
        events.push(
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": "toolu_fake", "name": "get_weather", "input": {}}}),
        );
        for part in ["{\"city\":", " \"Paris\"}"] {
            events.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": part}}));
        }
    } else {
        events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
        events.push(json!({"type": "ping"}));
        for p in &pieces[..n] {
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}));
        }
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": output}}),
    );
    events.push(json!({"type": "message_stop"}));
    let body: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    ([("content-type", "text/event-stream")], body).into_response()
}
