//! YAML → `serde_json::Value`, remembering where every node came from.
//!
//! Policies are parsed in two steps: this module turns the YAML text into a
//! JSON value plus a map from each node's path (`routes[0].to`) to its
//! line and column, then serde deserializes the raw types from the value.
//! Keeping positions outside the value lets every later error (serde's and
//! `compile()`'s) be reported as `file:line:col: path: message`.
//!
//! Built on yaml-rust2's event parser: it is maintained, pure Rust and has no
//! RustSec advisory (unlike the archived serde_yaml and the unsound serde_yml).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::Yaml;

/// A line and column, both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A parsed document: its value and the position of every path in it.
#[derive(Debug, Default)]
pub struct Document {
    pub value: Value,
    positions: HashMap<String, Pos>,
}

impl Document {
    /// The position of `path`, or of its nearest ancestor that has one.
    pub fn position(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => {
                    return self
                        .positions
                        .get("")
                        .copied()
                        .unwrap_or(Pos { line: 1, col: 1 })
                }
            }
        }
    }
}

/// A YAML syntax error with its position.
#[derive(Debug)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parses one YAML document, without positions: what loading a good
/// policy needs (a policy with 100,000 keys has half a million paths).
pub fn parse(text: &str) -> Result<Document, SyntaxError> {
    build(text, false)
}

/// Parses one YAML document with the position of every path in it, to
/// point diagnostics at their line.
pub fn parse_with_positions(text: &str) -> Result<Document, SyntaxError> {
    build(text, true)
}

fn build(text: &str, track: bool) -> Result<Document, SyntaxError> {
    let mut builder = Builder {
        track,
        ..Builder::default()
    };
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| SyntaxError {
        pos: pos(*e.marker()),
        message: e.info().to_string(),
    })?;
    if let Some(err) = builder.error {
        return Err(err);
    }
    let value = builder.root.unwrap_or(Value::Null);
    Ok(Document {
        value,
        positions: builder.positions,
    })
}

fn pos(m: Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

enum Frame {
    Seq {
        path: String,
        items: Vec<Value>,
        anchor: usize,
    },
    Map {
        path: String,
        map: Map<String, Value>,
        pending_key: Option<String>,
        anchor: usize,
    },
}

#[derive(Default)]
struct Builder {
    /// Whether paths and positions are kept.
    track: bool,
    stack: Vec<Frame>,
    root: Option<Value>,
    positions: HashMap<String, Pos>,
    anchors: HashMap<usize, Value>,
    error: Option<SyntaxError>,
}

impl Builder {
    /// The path the next value will have (empty when not tracked).
    fn next_path(&self) -> Option<String> {
        if !self.track {
            return Some(String::new());
        }
        match self.stack.last() {
            None => Some(String::new()),
            Some(Frame::Seq { path, items, .. }) => Some(format!("{path}[{}]", items.len())),
            Some(Frame::Map {
                path, pending_key, ..
            }) => pending_key.as_ref().map(|k| join(path, k)),
        }
    }

    /// Is the next scalar a mapping key?
    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn push_value(&mut self, value: Value) {
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map {
                map, pending_key, ..
            }) => {
                if let Some(k) = pending_key.take() {
                    map.insert(k, value);
                }
            }
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match Yaml::from_str(&text) {
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(r) => r
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::String(text), Value::Number),
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Null => Value::Null,
        _ => Value::String(text),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, _) => {
                if self.expecting_key() {
                    if let Some(Frame::Map {
                        path,
                        map,
                        pending_key,
                        ..
                    }) = self.stack.last_mut()
                    {
                        if map.contains_key(&text) {
                            self.error = Some(SyntaxError {
                                pos: pos(mark),
                                message: format!("duplicate key `{text}`"),
                            });
                            return;
                        }
                        if self.track {
                            self.positions.insert(join(path, &text), pos(mark));
                        }
                        *pending_key = Some(text);
                    }
                    return;
                }
                if let Some(p) = self.next_path().filter(|_| self.track) {
                    self.positions.entry(p).or_insert(pos(mark));
                }
                let v = scalar(text, style);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                self.push_value(v);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if self.expecting_key() {
                    self.error = Some(SyntaxError {
                        pos: pos(mark),
                        message: "mapping keys must be plain strings".into(),
                    });
                    return;
                }
                let path = self.next_path().unwrap_or_default();
                if self.track {
                    self.positions.entry(path.clone()).or_insert(pos(mark));
                }
                self.stack.push(if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        path,
                        items: Vec::new(),
                        anchor,
                    }
                } else {
                    Frame::Map {
                        path,
                        map: Map::new(),
                        pending_key: None,
                        anchor,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { items, anchor, .. }) => (Value::Array(items), anchor),
                    Some(Frame::Map { map, anchor, .. }) => (Value::Object(map), anchor),
                    None => return,
                };
                if anchor > 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                self.push_value(value);
            }
            Event::Alias(id) => {
                let v = self.anchors.get(&id).cloned().unwrap_or(Value::Null);
                if self.expecting_key() {
                    self.error = Some(SyntaxError {
                        pos: pos(mark),
                        message: "aliases cannot be mapping keys".into(),
                    });
                    return;
                }
                self.push_value(v);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests;
