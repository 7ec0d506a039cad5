//! A Chat Completions stream as a Responses event stream, in the order
//! OpenAI sends them: `response.created`, `response.in_progress`, then per
//! output item `output_item.added`, its deltas (`output_text.delta`,
//! `function_call_arguments.delta`) and its `.done` events, and last
//! `response.completed` (or `response.incomplete`) with the usage. Every
//! event carries its `type` and a `sequence_number`, and is framed with
//! its `event:` line. An error frame is passed on as it is and ends the
//! stream.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::reply::{call_item, envelope, finish, message_item, suffix, text_part};
use super::Ask;
use crate::upstream::SseStream;

pub fn from_chat(inner: SseStream, ask: Arc<Ask>) -> SseStream {
    let state = (inner, Translator::new(ask), VecDeque::<Bytes>::new());
    Box::pin(futures::stream::unfold(
        state,
        |(mut inner, mut t, mut queue)| async move {
            loop {
                if let Some(f) = queue.pop_front() {
                    return Some((f, (inner, t, queue)));
                }
                if t.done {
                    // The inner stream ends (and is accounted) on its next pull.
                    while inner.next().await.is_some() {}
                    return None;
                }
                match inner.next().await {
                    Some(frame) => queue.extend(t.on_frame(&frame)),
                    None => return None,
                }
            }
        },
    ))
}

enum Item {
    Text {
        text: String,
    },
    Call {
        call_id: String,
        name: String,
        args: String,
        /// The chat `tool_calls[].index`.
        index: u64,
    },
}

pub struct Translator {
    ask: Arc<Ask>,
    /// The response object, once the first chunk named its id and model.
    response: Option<Map<String, Value>>,
    id: String,
    seq: u64,
    items: Vec<Item>,
    finish_reason: Option<String>,
    usage: Option<Value>,
    pub done: bool,
}

impl Translator {
    pub fn new(ask: Arc<Ask>) -> Translator {
        Translator {
            ask,
            response: None,
            id: String::new(),
            seq: 0,
            items: Vec::new(),
            finish_reason: None,
            usage: None,
            done: false,
        }
    }

    /// The Responses frames for one chat frame (`data: …\n\n`).
    pub fn on_frame(&mut self, frame: &[u8]) -> Vec<Bytes> {
        let data = frame
            .strip_prefix(b"data: ")
            .unwrap_or(frame)
            .trim_ascii_end();
        if data == b"[DONE]" {
            self.done = true;
            return self.close();
        }
        let Ok(Value::Object(c)) = serde_json::from_slice::<Value>(data) else {
            return Vec::new();
        };
        if c.contains_key("error") {
            self.done = true;
            return vec![Bytes::copy_from_slice(frame)];
        }
        let mut out = Vec::new();
        if self.response.is_none() {
            self.id = suffix(c.get("id").and_then(Value::as_str).unwrap_or(""));
            let created = c.get("created").and_then(Value::as_u64).unwrap_or(0);
            let model = c.get("model").and_then(Value::as_str).unwrap_or("");
            let r = envelope(&self.ask, &self.id, created, model);
            out.push(self.event("response.created", json!({"response": r})));
            out.push(self.event("response.in_progress", json!({"response": r})));
            self.response = Some(r);
        }
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(u.clone());
        }
        let Some(choice) = c.get("choices").and_then(|ch| ch.get(0)) else {
            return out;
        };
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(f.to_string());
        }
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text_delta(text, &mut out);
        }
        for call in delta["tool_calls"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
        {
            self.call_delta(call, &mut out);
        }
        out
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<Bytes>) {
        let at = match self
            .items
            .iter()
            .position(|i| matches!(i, Item::Text { .. }))
        {
            Some(at) => at,
            None => {
                self.items.push(Item::Text {
                    text: String::new(),
                });
                let at = self.items.len() - 1;
                let item = message_item(&self.id, json!([]));
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": at, "item": item}),
                ));
                let part = text_part("");
                let item_id = format!("msg_{}", self.id);
                out.push(self.event(
                    "response.content_part.added",
                    json!({"item_id": item_id, "output_index": at, "content_index": 0, "part": part}),
                ));
                at
            }
        };
        if let Some(Item::Text { text: t }) = self.items.get_mut(at) {
            t.push_str(text);
        }
        let item_id = format!("msg_{}", self.id);
        out.push(self.event(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": at, "content_index": 0,
                   "delta": text, "logprobs": []}),
        ));
    }

    fn call_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let index = call["index"].as_u64().unwrap_or(0);
        let found = self
            .items
            .iter()
            .position(|i| matches!(i, Item::Call { index: n, .. } if *n == index));
        let at = match found {
            Some(at) => at,
            None => {
                let call_id = call["id"].as_str().unwrap_or("").to_string();
                let name = call["function"]["name"].as_str().unwrap_or("").to_string();
                let item = call_item(&call_id, &name, "", "in_progress");
                self.items.push(Item::Call {
                    call_id,
                    name,
                    args: String::new(),
                    index,
                });
                let at = self.items.len() - 1;
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": at, "item": item}),
                ));
                at
            }
        };
        let Some(more) = call["function"]["arguments"]
            .as_str()
            .filter(|a| !a.is_empty())
        else {
            return;
        };
        let Some(Item::Call { call_id, args, .. }) = self.items.get_mut(at) else {
            return;
        };
        args.push_str(more);
        let item_id = format!("fc_{call_id}");
        out.push(self.event(
            "response.function_call_arguments.delta",
            json!({"item_id": item_id, "output_index": at, "delta": more}),
        ));
    }

    /// The `.done` events of every item, then the completed response.
    fn close(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut output = Vec::new();
        let items = std::mem::take(&mut self.items);
        for (at, item) in items.iter().enumerate() {
            match item {
                Item::Text { text } => {
                    let item_id = format!("msg_{}", self.id);
                    out.push(self.event(
                        "response.output_text.done",
                        json!({"item_id": item_id, "output_index": at, "content_index": 0,
                               "text": text, "logprobs": []}),
                    ));
                    out.push(self.event(
                        "response.content_part.done",
                        json!({"item_id": item_id, "output_index": at, "content_index": 0,
                               "part": text_part(text)}),
                    ));
                    let done = message_item(&self.id, json!([text_part(text)]));
                    out.push(self.event(
                        "response.output_item.done",
                        json!({"output_index": at, "item": done}),
                    ));
                    output.push(done);
                }
                Item::Call {
                    call_id,
                    name,
                    args,
                    ..
                } => {
                    out.push(self.event(
                        "response.function_call_arguments.done",
                        json!({"item_id": format!("fc_{call_id}"), "output_index": at,
                               "arguments": args}),
                    ));
                    let done = call_item(call_id, name, args, "completed");
                    out.push(self.event(
                        "response.output_item.done",
                        json!({"output_index": at, "item": done}),
                    ));
                    output.push(done);
                }
            }
        }
        let mut r = self.response.take().unwrap_or_default();
        finish(
            &mut r,
            self.finish_reason.as_deref(),
            output,
            self.usage.as_ref(),
        );
        let kind = if r["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        out.push(self.event(kind, json!({ "response": r })));
        out
    }

    fn event(&mut self, kind: &str, fields: Value) -> Bytes {
        let mut e = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        e.insert("type".into(), json!(kind));
        e.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        let json = serde_json::to_vec(&Value::Object(e)).unwrap_or_default();
        crate::upstream::sse::typed_frame(kind, &json)
    }
}
