//! A chat answer's SSE frames as Messages events: `message_start` and a
//! `ping` first, a `content_block_start` / `content_block_delta`
//! (`text_delta`, `input_json_delta` for tool calls) / `content_block_stop`
//! run per block, then `message_delta` with the stop reason and usage, and
//! `message_stop`. An error frame, or a stream that ends without `[DONE]`,
//! ends with an `error` event.

use bytes::Bytes;
use serde_json::{json, Value};

use super::reply::{message_id, stop_reason, usage};
use crate::upstream::sse::SseParser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text,
    Tool,
}

/// The translation state of one stream.
pub struct Events {
    model: String,
    parser: SseParser,
    started: bool,
    block: Block,
    /// The index of the open (or next) content block.
    index: u64,
    finish: Option<String>,
    usage: Value,
    done: bool,
    /// The frames are a Messages provider's own events (passed on with
    /// their `event:` lines), not chat chunks; known from the first.
    raw: Option<bool>,
}

fn event(kind: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {data}\n\n"))
}

impl Events {
    pub fn new(model: &str) -> Events {
        Events {
            model: model.to_string(),
            parser: SseParser::default(),
            started: false,
            block: Block::None,
            index: 0,
            finish: None,
            usage: json!({}),
            done: false,
            raw: None,
        }
    }

    /// The events for the next bytes of the chat stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let mut frames = Vec::new();
        self.parser.feed(bytes, |d| frames.push(d));
        let mut out = Vec::new();
        for data in frames {
            self.frame(&data, &mut out);
        }
        out
    }

    /// What ends a stream that stopped without `[DONE]`.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        vec![event(
            "error",
            &json!({"type": "error", "error": {"type": "api_error",
            "message": "the upstream stream ended early"}}),
        )]
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if self.block != Block::None {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": self.index}),
            ));
            self.index += 1;
            self.block = Block::None;
        }
    }

    fn frame(&mut self, data: &[u8], out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        if data == b"[DONE]" {
            self.close_block(out);
            let stop = stop_reason(self.finish.as_deref());
            out.push(event("message_delta", &json!({"type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage(&self.usage)})));
            out.push(event("message_stop", &json!({"type": "message_stop"})));
            self.done = true;
            return;
        }
        let Ok(c) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        let raw = *self.raw.get_or_insert_with(|| c["type"] == "message_start");
        if raw && c.get("error").is_none_or(|_| c["type"] == "error") {
            let kind = c["type"].as_str().unwrap_or("message_delta").to_string();
            self.done = kind == "message_stop" || kind == "error";
            out.push(Bytes::from(format!(
                "event: {kind}\ndata: {}\n\n",
                String::from_utf8_lossy(data)
            )));
            return;
        }
        if let Some(e) = c.get("error") {
            let (_, kind) = super::reply::error_kind(502);
            let message = e["message"].as_str().unwrap_or("the upstream failed");
            out.push(event(
                "error",
                &json!({"type": "error", "error": {"type": kind, "message": message}}),
            ));
            self.done = true;
            return;
        }
        if !self.started {
            self.started = true;
            let id = message_id(c["id"].as_str().unwrap_or(""));
            out.push(event("message_start", &json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0}}})));
            out.push(event("ping", &json!({"type": "ping"})));
        }
        if c.get("usage").is_some_and(|u| !u.is_null()) {
            self.usage = c["usage"].clone();
        }
        let choice = &c["choices"][0];
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            if self.block != Block::Text {
                self.close_block(out);
                self.block = Block::Text;
                out.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start",
                    "index": self.index, "content_block": {"type": "text", "text": ""}}),
                ));
            }
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta",
                "index": self.index, "delta": {"type": "text_delta", "text": t}}),
            ));
        }
        for call in delta["tool_calls"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            if call.get("id").is_some_and(|i| !i.is_null()) {
                self.close_block(out);
                self.block = Block::Tool;
                out.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start",
                    "index": self.index, "content_block": {"type": "tool_use", "id": call["id"],
                    "name": call["function"]["name"], "input": {}}}),
                ));
            }
            if let Some(a) = call["function"]["arguments"]
                .as_str()
                .filter(|a| !a.is_empty())
            {
                out.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta",
                    "index": self.index, "delta": {"type": "input_json_delta", "partial_json": a}}),
                ));
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_string());
        }
    }
}
