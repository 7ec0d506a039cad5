//! The classify stage: what a request asks for (task), how hard it is
//! (complexity, strong_score), from the whole conversation.
//!
//! The task and complexity names are part of the policy format
//! (`when: { task: [code] }`), so they are fixed here and parsed strictly.

pub mod counting;
pub mod embed;
pub mod fit;
pub mod learned;
mod rules;
pub mod tokens;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use learned::Router;
pub use rules::{classify, Conversation};

use crate::request::ChatRequest;

/// What the classifier found.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub task: Task,
    pub complexity: Complexity,
    /// How likely only the strong model answers well, in [0, 1].
    pub strong_score: f64,
    pub prompt_tokens: u32,
    /// Explicit constraints and numbered steps in the last user message.
    pub constraints: u32,
    /// The cues that fired, for `x-tollgate-reason` and debugging.
    pub signals: Vec<&'static str>,
}

/// The learned router's answer when one is loaded, else the keyword
/// classifier's.
pub fn classify_with(router: Option<&Router>, c: &Conversation<'_>) -> Class {
    match router {
        Some(r) => r.classify(c),
        None => classify(c),
    }
}

/// What loading the learned router found.
pub enum RouterLoad {
    Loaded(Box<Router>),
    /// Its files are not there: the keyword classifier routes. The text
    /// names the missing files and how to fetch them.
    Missing(String),
    /// Its files are there but unusable; the text says why.
    Broken(String),
}

/// Loads the learned router from `path`: its directory (see
/// [`learned::Router::load`]), or a heads file written by `route fit`,
/// whose embedding comes from [`Router::default_dir`]. Missing embedding
/// files are `Missing` for a directory, `Broken` for a heads file (it
/// asked for the learned router by name).
pub fn load_router(path: &std::path::Path) -> RouterLoad {
    let heads = path.is_file().then(|| learned::heads::Heads::read(path));
    let dir = match &heads {
        Some(Err(e)) => return RouterLoad::Broken(e.clone()),
        Some(Ok(_)) => Router::default_dir(),
        None => path.to_path_buf(),
    };
    let missing: Vec<String> = [learned::TOKENIZER_FILE, learned::TABLE_FILE]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "learned router not loaded: {} not found (scripts/fetch-test-model fetches it); \
             the keyword classifier routes",
            missing.join(", ")
        );
        return match heads {
            Some(_) => {
                RouterLoad::Broken(format!("{} names a heads file, but {msg}", path.display()))
            }
            None => RouterLoad::Missing(msg),
        };
    }
    let loaded = Router::load(&dir).map_err(|e| format!("learned router: {e}"));
    let with_heads = match heads {
        Some(Ok(h)) => loaded.and_then(|r| r.with_heads(std::sync::Arc::new(h))),
        _ => loaded,
    };
    match with_heads {
        Ok(r) => RouterLoad::Loaded(Box::new(r)),
        Err(e) => RouterLoad::Broken(e),
    }
}

/// The texts of a chat request, split the way the classifier weighs them.
pub struct Texts {
    pub system: String,
    pub last_user: String,
    pub earlier: String,
    pub turns: usize,
}

impl Texts {
    pub fn of(chat: &ChatRequest) -> Texts {
        let msgs = chat.messages();
        let last_user = msgs
            .iter()
            .rposition(|m| m["role"] == "user")
            .unwrap_or(msgs.len().saturating_sub(1));
        let mut t = Texts {
            system: String::new(),
            last_user: String::new(),
            earlier: String::new(),
            turns: msgs.len(),
        };
        for (i, m) in msgs.iter().enumerate() {
            let text = content_text(&m["content"]);
            let role = m["role"].as_str().unwrap_or("");
            let dest = if i == last_user {
                &mut t.last_user
            } else if role == "system" || role == "developer" {
                &mut t.system
            } else {
                &mut t.earlier
            };
            if !dest.is_empty() {
                dest.push('\n');
            }
            dest.push_str(&text);
        }
        t
    }

    pub fn conversation<'a>(&'a self, chat: &ChatRequest, prompt_tokens: u32) -> Conversation<'a> {
        Conversation {
            system: &self.system,
            last_user: &self.last_user,
            earlier: &self.earlier,
            turns: self.turns,
            has_tools: chat.body.get("tools").is_some_and(|t| !t.is_null()),
            wants_json: chat
                .body
                .get("response_format")
                .is_some_and(|t| !t.is_null()),
            max_tokens: chat.max_tokens,
            prompt_tokens,
        }
    }
}

/// The text of a message's content: a string, or its text parts joined.
pub fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} `{s}` (expected one of: {})",
                        stringify!($name).to_lowercase(),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// What the request asks the model to do.
    Task {
        Code => "code",
        Math => "math",
        Reasoning => "reasoning",
        Summarization => "summarization",
        Extraction => "extraction",
        Classification => "classification",
        Translation => "translation",
        CreativeWriting => "creative_writing",
        Brainstorming => "brainstorming",
        OpenQa => "open_qa",
        ClosedQa => "closed_qa",
        Roleplay => "roleplay",
        Chat => "chat",
    }
);

named_enum!(
    /// How hard the request is.
    Complexity {
        Low => "low",
        Medium => "medium",
        High => "high",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in Task::ALL {
            assert_eq!(t.as_str().parse::<Task>(), Ok(*t));
        }
        assert!("poetry"
            .parse::<Task>()
            .unwrap_err()
            .contains("creative_writing"));
        assert_eq!("high".parse::<Complexity>(), Ok(Complexity::High));
    }
}
