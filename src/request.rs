//! The parse stage: the chat request body, parsed once.
//!
//! The body is kept as a JSON object so that every field the gateway does
//! not interpret (tools, tool_choice, response_format, seed, n, logprobs,
//! fields from newer API versions…) reaches the upstream untouched. The
//! fields the gateway itself needs are validated here and copied out, each
//! bad one reported as a 400 naming it.

use bytes::Bytes;
use serde_json::{Map, Value};

/// A request the gateway cannot accept: what is wrong and which field
/// (`server::chat` maps it to a 400 `invalid_request_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub param: Option<String>,
}

impl Invalid {
    pub fn new(message: impl Into<String>, param: Option<&str>) -> Invalid {
        Invalid {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }
}

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The whole body as sent.
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// The client asked for the final usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    pub max_tokens: Option<u32>,
    /// Choices asked for (`n`, default 1): each is billed its output.
    pub n: u32,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
}

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<ChatRequest, Invalid> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            Invalid::new(
                format!(
                    "We could not parse the JSON body of your request: {e}. \
                     The body must be a JSON object."
                ),
                None,
            )
        })?;
        let Value::Object(body) = value else {
            return Err(Invalid::new(
                "The request body must be a JSON object.",
                None,
            ));
        };
        ChatRequest::from_body(body)
    }

    /// A chat request from a body already parsed as a JSON object.
    pub fn from_body(body: Map<String, Value>) -> Result<ChatRequest, Invalid> {
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(Invalid::new(
                    "you must provide a model parameter",
                    Some("model"),
                ))
            }
            Some(_) => return Err(type_error("model", "a string")),
        };
        check_messages(body.get("messages"))?;
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(type_error("stream", "a boolean")),
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => {
                if !stream {
                    return Err(Invalid::new(
                        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                        Some("stream_options"),
                    ));
                }
                match o.get("include_usage") {
                    None | Some(Value::Null) => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(type_error("stream_options.include_usage", "a boolean")),
                }
            }
            Some(_) => return Err(type_error("stream_options", "an object")),
        };
        // Newer clients send max_completion_tokens; either bounds the reply.
        let max_tokens = match (
            positive_int(&body, "max_completion_tokens")?,
            positive_int(&body, "max_tokens")?,
        ) {
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        let temperature = number_in(&body, "temperature", 0.0, 2.0)?;
        let top_p = number_in(&body, "top_p", 0.0, 1.0)?;
        let n = positive_int(&body, "n")?.unwrap_or(1);
        if n > 128 {
            return Err(Invalid::new(
                format!("{n} is greater than the maximum of 128 - 'n'"),
                Some("n"),
            ));
        }
        let seed = match body.get("seed") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().map(|s| s as u64),
            Some(_) => return Err(type_error("seed", "an integer")),
        };
        let stop = match body.get("stop") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if a.len() <= 4 && a.iter().all(Value::is_string) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => {
                return Err(type_error(
                    "stop",
                    "a string or an array of up to 4 strings",
                ))
            }
        };
        Ok(ChatRequest {
            body,
            model,
            stream,
            include_usage,
            max_tokens,
            n,
            temperature,
            top_p,
            seed,
            stop,
        })
    }

    /// The body for an OpenAI-compatible upstream: the same fields, the
    /// upstream's model name, and for streams always a usage chunk (the
    /// gateway accounts every request even if the client did not ask).
    ///
    /// `bound`: the output bound the budget reserved, sent when the client
    /// set none, so the upstream cannot bill past the reservation.
    pub fn upstream_body(&self, upstream_model: &str, bound: Option<u32>) -> Bytes {
        let body = UpstreamBody {
            req: self,
            model: upstream_model,
            bound: bound.filter(|_| self.max_tokens.is_none()),
        };
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }

    /// The messages, validated by `parse`.
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// Serializes the client's body with the upstream's model name and, for
/// streams, `stream_options.include_usage: true`, without copying it.
struct UpstreamBody<'a> {
    req: &'a ChatRequest,
    model: &'a str,
    /// An output bound to add (the client sent none).
    bound: Option<u32>,
}

impl serde::Serialize for UpstreamBody<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let body = &self.req.body;
        let mut map = s.serialize_map(None)?;
        for (k, v) in body {
            match k.as_str() {
                "model" => map.serialize_entry(k, self.model)?,
                "stream_options" if self.req.stream => {}
                _ => map.serialize_entry(k, v)?,
            }
        }
        if !body.contains_key("model") {
            map.serialize_entry("model", self.model)?;
        }
        if let Some(b) = self.bound {
            // Reasoning models take only the newer name; the rest of the
            // OpenAI-compatible world knows `max_tokens`.
            let m = self.model.rsplit('/').next().unwrap_or(self.model);
            let newer = ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p));
            let key = if newer {
                "max_completion_tokens"
            } else {
                "max_tokens"
            };
            map.serialize_entry(key, &b)?;
        }
        if self.req.stream {
            let mut opts = match body.get("stream_options") {
                Some(Value::Object(o)) => o.clone(),
                _ => Map::new(),
            };
            opts.insert("include_usage".into(), Value::Bool(true));
            map.serialize_entry("stream_options", &opts)?;
        }
        map.end()
    }
}

/// A request body as a JSON object, and the model it names (every
/// endpoint but chat, whose `ChatRequest::parse` reads more).
pub fn object_with_model(bytes: &[u8]) -> Result<(Map<String, Value>, String), Invalid> {
    let body = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Err(Invalid::new(
                "The request body must be a JSON object.",
                None,
            ))
        }
        Err(e) => {
            let message = format!(
                "We could not parse the JSON body of your request: {e}. The body must be a JSON object."
            );
            return Err(Invalid::new(message, None));
        }
    };
    match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => {
            let m = m.clone();
            Ok((body, m))
        }
        _ => Err(Invalid::new(
            "you must provide a model parameter",
            Some("model"),
        )),
    }
}

fn type_error(param: &str, expected: &str) -> Invalid {
    Invalid::new(
        format!("Invalid type for '{param}': expected {expected}."),
        Some(param),
    )
}

fn check_messages(messages: Option<&Value>) -> Result<(), Invalid> {
    let list = match messages {
        None | Some(Value::Null) => {
            return Err(Invalid::new(
                "Missing required parameter: 'messages'.",
                Some("messages"),
            ))
        }
        Some(Value::Array(a)) => a,
        Some(_) => return Err(type_error("messages", "an array")),
    };
    if list.is_empty() {
        return Err(Invalid::new(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            Some("messages"),
        ));
    }
    for (i, m) in list.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(type_error(&format!("messages[{i}]"), "an object"));
        };
        match m.get("role") {
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => {}
            Some(Value::String(r)) => {
                return Err(Invalid::new(
                    format!(
                        "Invalid value: '{r}'. Supported values are: {}.",
                        ROLES.join(", ")
                    ),
                    Some(&format!("messages[{i}].role")),
                ))
            }
            _ => {
                return Err(Invalid::new(
                    format!("Missing required parameter: 'messages[{i}].role'."),
                    Some(&format!("messages[{i}].role")),
                ))
            }
        }
        match m.get("content") {
            None | Some(Value::Null) | Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(_) => {
                return Err(type_error(
                    &format!("messages[{i}].content"),
                    "a string or an array of content parts",
                ))
            }
        }
    }
    Ok(())
}

fn positive_int(body: &Map<String, Value>, name: &str) -> Result<Option<u32>, Invalid> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v >= 1 => u32::try_from(v).map(Some).map_err(|_| {
                Invalid::new(format!("Invalid '{name}': {v} is too large."), Some(name))
            }),
            _ => Err(Invalid::new(
                format!("Invalid '{name}': must be an integer of at least 1."),
                Some(name),
            )),
        },
        Some(_) => Err(type_error(name, "an integer")),
    }
}

fn number_in(
    body: &Map<String, Value>,
    name: &str,
    lo: f64,
    hi: f64,
) -> Result<Option<f64>, Invalid> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if (lo..=hi).contains(&v) => Ok(Some(v)),
            _ => Err(Invalid::new(
                format!("Invalid '{name}': must be between {lo} and {hi}."),
                Some(name),
            )),
        },
        Some(_) => Err(type_error(name, "a number")),
    }
}

#[cfg(test)]
mod tests;
