//! A Messages event stream as Chat Completions chunks, event by event:
//! `message_start` opens the assistant turn, text deltas become
//! `delta.content`, a `tool_use` block becomes a tool call whose
//! `input_json_delta`s are its `arguments`, `message_delta` carries the
//! finish reason and the output count, and `message_stop` ends it (the
//! usage chunk, then `[DONE]`). `ping` is dropped; an `error` event ends
//! the stream as broken.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{chat_usage, finish_reason, usage};
use crate::upstream::Usage;

/// What one event gave.
#[derive(Debug, Default)]
pub struct Step {
    /// Chat chunks (JSON), in order.
    pub chunks: Vec<Vec<u8>>,
    /// The stream ended: `Some(true)` complete, `Some(false)` broken.
    pub end: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Translator {
    model: String,
    id: String,
    created: u64,
    usage: Usage,
    /// `message_delta` came: the usage is whole.
    counted: bool,
    /// Content block index → tool call index.
    tools: HashMap<u64, usize>,
    /// The usage chunk goes to the client only if it asked.
    wants_usage: bool,
}

impl Translator {
    pub fn new(model: &str, wants_usage: bool) -> Translator {
        Translator {
            model: model.to_string(),
            created: super::now(),
            wants_usage,
            ..Translator::default()
        }
    }

    /// The usage, once `message_delta` has given the output count (a
    /// stream cut before it is counted locally instead).
    pub fn usage(&self) -> Option<Usage> {
        self.counted.then_some(self.usage)
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Vec<u8> {
        let v = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        serde_json::to_vec(&v).unwrap_or_default()
    }

    pub fn event(&mut self, data: &[u8]) -> Step {
        let mut step = Step::default();
        let Ok(e) = serde_json::from_slice::<Value>(data) else {
            return step;
        };
        match e["type"].as_str() {
            Some("message_start") => {
                let m = &e["message"];
                self.id = m["id"].as_str().unwrap_or("").to_string();
                if let Some(u) = usage(&m["usage"]) {
                    self.usage = u;
                }
                step.chunks.push(self.chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ));
            }
            Some("content_block_start") => {
                let b = &e["content_block"];
                if b["type"] == "tool_use" {
                    let index = self.tools.len();
                    self.tools.insert(e["index"].as_u64().unwrap_or(0), index);
                    step.chunks.push(self.chunk(
                        json!({"tool_calls": [{"index": index, "id": b["id"], "type": "function",
                            "function": {"name": b["name"], "arguments": ""}}]}),
                        None,
                    ));
                }
            }
            Some("content_block_delta") => {
                let d = &e["delta"];
                match d["type"].as_str() {
                    Some("text_delta") => {
                        step.chunks
                            .push(self.chunk(json!({"content": d["text"]}), None));
                    }
                    Some("input_json_delta") => {
                        let index = e["index"].as_u64().unwrap_or(0);
                        if let Some(t) = self.tools.get(&index) {
                            step.chunks.push(self.chunk(
                                json!({"tool_calls": [{"index": t,
                                    "function": {"arguments": d["partial_json"]}}]}),
                                None,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            Some("message_delta") => {
                if let Some(out) = e["usage"]["output_tokens"].as_u64() {
                    self.usage.completion_tokens = out;
                    self.counted = true;
                }
                let reason = finish_reason(e["delta"]["stop_reason"].as_str());
                step.chunks.push(self.chunk(json!({}), Some(reason)));
            }
            Some("message_stop") => {
                if self.wants_usage {
                    let v = json!({"id": self.id, "object": "chat.completion.chunk",
                        "created": self.created, "model": self.model, "choices": [],
                        "usage": chat_usage(&self.usage)});
                    step.chunks.push(serde_json::to_vec(&v).unwrap_or_default());
                }
                step.end = Some(true);
            }
            Some("error") => step.end = Some(false),
            _ => {}
        }
        step
    }
}
