//! Per-model prompt counting for budget reservations: a bound on what the
//! upstream can bill for a prompt.
//!
//! - Exact where the tokenizer is known: OpenAI's model families by name
//!   (`cl100k_base` for GPT-4 and GPT-3.5, `o200k_base` for gpt-4o,
//!   gpt-4.1, gpt-4.5, gpt-5 and the o-series), or the model's
//!   `tokenizer:` setting (`cl100k`, `o200k`, a `tokenizer.json` file).
//! - Otherwise a bound no tokenizer can beat: byte-fallback BPEs (Llama,
//!   Mistral, Qwen…) emit at most one token per UTF-8 byte, so the bytes
//!   of every text, plus `PER_MESSAGE` tokens a message and `PRIMING` for
//!   the chat template's own text (`tokenizer: bytes` asks for it).
//!
//! `gateway::Bounds` tightens these by what settlements have shown.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use serde_json::Value;

/// Template tokens a message may add around its text (role markers,
/// separators), in the byte bound.
pub const PER_MESSAGE: u64 = 24;
/// Template tokens a chat may add once (begin-of-text, the reply's
/// header, a default system prompt), in the byte bound.
pub const PRIMING: u64 = 64;

#[derive(Clone)]
pub enum Counter {
    Cl100k,
    O200k,
    /// A Hugging Face `tokenizer.json`.
    File(Arc<tokenizers::Tokenizer>),
    /// One token per UTF-8 byte, plus the template allowance.
    Bytes,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for Counter {
    fn eq(&self, other: &Counter) -> bool {
        match (self, other) {
            (Counter::File(a), Counter::File(b)) => Arc::ptr_eq(a, b),
            _ => self.name() == other.name(),
        }
    }
}

impl Counter {
    /// The counter for a model: its `tokenizer:` setting, else its
    /// upstream name's OpenAI family, else the byte bound.
    pub fn for_model(upstream_model: &str, setting: Option<&str>) -> Result<Counter, String> {
        match setting {
            Some("cl100k") | Some("cl100k_base") => Ok(Counter::Cl100k),
            Some("o200k") | Some("o200k_base") => Ok(Counter::O200k),
            Some("bytes") => Ok(Counter::Bytes),
            Some(path) if path.ends_with(".json") => tokenizers::Tokenizer::from_file(path)
                .map(|t| Counter::File(Arc::new(t)))
                .map_err(|e| format!("cannot read tokenizer file {path}: {e}")),
            Some(other) => Err(format!(
                "unknown tokenizer `{other}` (expected cl100k, o200k, bytes or a tokenizer.json file)"
            )),
            None => Ok(family(upstream_model)),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Counter::Cl100k => "cl100k",
            Counter::O200k => "o200k",
            Counter::File(_) => "tokenizer.json",
            Counter::Bytes => "bytes",
        }
    }

    /// Tokens of one text.
    pub fn text(&self, s: &str) -> u64 {
        let n = match self {
            Counter::Cl100k => cl100k(s),
            Counter::O200k => O200K.count(s),
            Counter::File(t) => t.encode(s, false).map_or(s.len(), |e| e.len()),
            Counter::Bytes => s.len(),
        };
        n as u64
    }

    /// A chat prompt: every message's texts (role, name, content, tool
    /// calls), the tools' definitions, and the chat format's overhead
    /// (OpenAI's recipe for its tokenizers; the template allowance for
    /// the byte bound and tokenizer files).
    pub fn chat(&self, messages: &[Value], tools: Option<&Value>) -> u64 {
        let (per_message, priming) = match self {
            Counter::Cl100k | Counter::O200k => (3, 3),
            Counter::File(_) | Counter::Bytes => (PER_MESSAGE, PRIMING),
        };
        let mut n = priming;
        for m in messages {
            n += per_message;
            if let Some(obj) = m.as_object() {
                for (k, v) in obj {
                    n += match v {
                        Value::String(s) => self.text(s) + u64::from(k == "name"),
                        Value::Array(_) if k == "content" => self.text(&super::content_text(v)),
                        Value::Array(_) | Value::Object(_) => self.text(&v.to_string()),
                        _ => 0,
                    };
                }
            }
        }
        if let Some(t) = tools.filter(|t| !t.is_null()) {
            n += self.text(&t.to_string());
        }
        n
    }

    /// An `input`/`prompt` field: a string, strings, token ids (one each).
    pub fn input(&self, v: &Value) -> u64 {
        match v {
            Value::String(s) => self.text(s),
            Value::Array(a) => a
                .iter()
                .map(|x| if x.is_u64() { 1 } else { self.input(x) })
                .sum(),
            _ => 0,
        }
    }
}

/// The cl100k_base tokens of `s`, in time linear in its length.
pub fn cl100k(s: &str) -> usize {
    CL100K.count(s)
}

static CL100K: LazyLock<Encoding> = LazyLock::new(|| Encoding::of(bpe_openai::cl100k_base()));
static O200K: LazyLock<Encoding> = LazyLock::new(|| Encoding::of(bpe_openai::o200k_base()));

/// An OpenAI encoding and the set of its tokens' bytes. Most pre-token
/// pieces (a word with its leading space) are one token of the
/// vocabulary, and such a piece encodes as that one token (tiktoken
/// takes the same shortcut), so it is counted by a lookup instead of
/// the encoder, whose buffers are allocated afresh for every piece.
struct Encoding {
    tokenizer: &'static bpe_openai::Tokenizer,
    whole: HashSet<&'static [u8]>,
}

impl Encoding {
    fn of(tokenizer: &'static bpe_openai::Tokenizer) -> Encoding {
        let bpe = &tokenizer.bpe;
        let whole = (0..bpe.num_tokens())
            .filter_map(|id| u32::try_from(id).ok())
            .map(|id| bpe.token_bytes(id))
            .collect();
        Encoding { tokenizer, whole }
    }

    /// As `Tokenizer::count` (these encodings do not normalise).
    fn count(&self, s: &str) -> usize {
        self.tokenizer
            .split(s)
            .map(|piece| {
                if self.whole.contains(piece.as_bytes()) {
                    1
                } else {
                    self.tokenizer.bpe.count(piece.as_bytes())
                }
            })
            .sum()
    }
}

/// Loads the OpenAI encodings `counters` need now (tens of milliseconds
/// each), so the first request does not pay for it: cl100k always (the
/// classifier counts every prompt with it, 33 MB), o200k only where a
/// model counts with it (66 MB).
pub fn warm<'a>(counters: impl IntoIterator<Item = &'a Counter>) {
    cl100k("");
    if counters.into_iter().any(|c| *c == Counter::O200k) {
        O200K.count("");
    }
}

/// OpenAI's encodings by model name (`openai/gpt-4o` counts as `gpt-4o`).
fn family(upstream_model: &str) -> Counter {
    let m = upstream_model.rsplit('/').next().unwrap_or(upstream_model);
    const O200K: &[&str] = &[
        "gpt-4o",
        "chatgpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "o1",
        "o3",
        "o4",
    ];
    const CL100K: &[&str] = &[
        "gpt-4",
        "gpt-3.5",
        "gpt-35",
        "text-embedding-3",
        "text-embedding-ada-002",
    ];
    if O200K.iter().any(|p| m.starts_with(p)) {
        Counter::O200k
    } else if CL100K.iter().any(|p| m.starts_with(p)) {
        Counter::Cl100k
    } else {
        Counter::Bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn families_by_name() {
        for (m, c) in [
            ("gpt-4o-mini", "o200k"),
            ("gpt-4o-2024-08-06", "o200k"),
            ("gpt-4.1-nano", "o200k"),
            ("o3-mini", "o200k"),
            ("gpt-5", "o200k"),
            ("openai/gpt-4o", "o200k"),
            ("gpt-4-turbo", "cl100k"),
            ("gpt-4", "cl100k"),
            ("gpt-3.5-turbo-instruct", "cl100k"),
            ("text-embedding-3-small", "cl100k"),
            ("meta-llama/Llama-3.1-8B-Instruct", "bytes"),
            ("llama2:13b", "bytes"),
        ] {
            assert_eq!(Counter::for_model(m, None).unwrap().name(), c, "{m}");
        }
        assert_eq!(
            Counter::for_model("llama", Some("o200k")).unwrap(),
            Counter::O200k
        );
        let e = Counter::for_model("x", Some("sentencepiece")).unwrap_err();
        assert!(e.contains("unknown tokenizer `sentencepiece`"), "{e}");
        let e = Counter::for_model("x", Some("/no/tokenizer.json")).unwrap_err();
        assert!(e.contains("/no/tokenizer.json"), "{e}");
    }

    #[test]
    fn o200k_counts_as_gpt_4o_does() {
        // "Hello, world!" is 4 tokens in both encodings (OpenAI's
        // tokenizer page); o200k's larger vocabulary is denser elsewhere.
        let o = Counter::O200k;
        let c = Counter::Cl100k;
        assert_eq!(o.text("Hello, world!"), 4);
        assert_eq!(c.text("Hello, world!"), 4);
        let zh = "我们的目标是建立一个更好的世界。";
        assert!(o.text(zh) < c.text(zh), "o200k is denser for Chinese");
        // "Hello" 1 + "user" 1 + 3 per message + 3 priming, for both.
        let m = [json!({"role": "user", "content": "Hello"})];
        assert_eq!(o.chat(&m, None), 8);
        assert_eq!(c.chat(&m, None), 8);
    }

    #[test]
    fn the_whole_token_lookup_counts_as_the_encoder() {
        let texts = [
            "Say hello to the benchmark in one short sentence.",
            "fn main() {\n    println!(\"{}\", 1_000_000 * 42);\n}\n\n\n",
            "Übermäßig   lange   Wörter: Donaudampfschifffahrtsgesellschaft",
            "我们的目标是建立一个更好的世界。 😀👍🏽 ǅǈ",
            "   leading and trailing spaces   \t\r\n",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "",
            // Code and prose: this file, whole and line by line.
            include_str!("counting.rs"),
        ];
        let lines = include_str!("counting.rs").lines();
        for t in texts.into_iter().chain(lines) {
            assert_eq!(cl100k(t), bpe_openai::cl100k_base().count(t), "{t:?}");
            assert_eq!(
                Counter::O200k.text(t) as usize,
                bpe_openai::o200k_base().count(t),
                "{t:?}"
            );
        }
        // The shortcut is taken: a word with its space is one token.
        assert!(CL100K.whole.contains(" hello".as_bytes()));
        assert_eq!(cl100k(" hello"), 1);
    }

    #[test]
    fn the_byte_bound_covers_any_byte_fallback_tokenizer() {
        let zh = "我们的目标是建立一个更好的世界。";
        let m = [json!({"role": "user", "content": zh})];
        let bound = Counter::Bytes.chat(&m, None);
        // Three bytes a character: at least twice what cl100k counts.
        assert!(bound >= 2 * Counter::Cl100k.chat(&m, None), "{bound}");
        assert_eq!(bound, PRIMING + PER_MESSAGE + 4 + zh.len() as u64);
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        assert!(Counter::Bytes.chat(&m, Some(&tools)) > bound);
        assert_eq!(Counter::Bytes.input(&json!(["ab", [1, 2, 3]])), 5);
    }
}
