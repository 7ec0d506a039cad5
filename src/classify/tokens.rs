//! Prompt tokens as OpenAI counts them (cl100k_base, the GPT-3.5 / GPT-4
//! tokenizer), including the per-message overhead of the chat format.

use serde_json::Value;

/// Tokens the chat format adds per message, and to prime the reply
/// (OpenAI's published counting recipe for gpt-3.5-turbo and gpt-4).
const PER_MESSAGE: usize = 3;
const PER_NAME: usize = 1;
const REPLY_PRIMING: usize = 3;

/// Roles are one cl100k token each; counting them without the tokenizer
/// saves two of its calls on a typical request (each call has a fixed cost
/// that dominates for short strings).
const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// Counts the prompt tokens of OpenAI chat `messages`.
pub fn count_chat(messages: &[Value]) -> u32 {
    let mut n = REPLY_PRIMING;
    for m in messages {
        n += PER_MESSAGE;
        if let Some(obj) = m.as_object() {
            for (k, v) in obj {
                if let (true, Some(role)) = (k == "role", v.as_str()) {
                    if ROLES.contains(&role) {
                        n += 1;
                        continue;
                    }
                }
                let text = match v {
                    Value::String(_) | Value::Array(_) => super::content_text(v),
                    _ => continue,
                };
                n += super::counting::cl100k(&text);
                if k == "name" {
                    n += PER_NAME;
                }
            }
        }
    }
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_like_openai() {
        // "Hello" is 1 token, "user" 1: 3 (message) + 2 + 3 (priming) = 8,
        // matching what the OpenAI API reports for this request.
        let m = [json!({"role": "user", "content": "Hello"})];
        assert_eq!(count_chat(&m), 8);
        let two = [
            json!({"role": "system", "content": "You are terse."}),
            json!({"role": "user", "content": "Hello"}),
        ];
        assert!(count_chat(&two) > count_chat(&m));
    }

    #[test]
    fn each_role_is_one_token() {
        let cl100k = super::super::counting::cl100k;
        for role in ROLES {
            assert_eq!(cl100k(role), 1, "{role}");
        }
        // An unknown role is counted by the tokenizer, as before.
        let odd = [json!({"role": "narrator of things", "content": "Hello"})];
        assert_eq!(
            count_chat(&odd),
            3 + 3 + 1 + cl100k("narrator of things") as u32
        );
    }
}
