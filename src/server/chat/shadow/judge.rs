//! The judge's side of router learning: a fixed rubric, the two answers
//! in an order drawn per request (so the judge's taste for a position
//! cannot favour either model), its grades read back, and the outcome
//! line appended to the operator's file.

use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::request::ChatRequest;

/// The rubric, fixed so that grades from different days compare.
const RUBRIC: &str = "You are an impartial judge of AI assistants. You will see a user's \
request and two answers to it, A and B. Grade each answer on its own from 1 (useless or \
wrong) to 10 (fully correct, complete and helpful), judging correctness first, then \
completeness, then clarity. Ignore length and style beyond how they help the user, and \
ignore which answer comes first. Reply with JSON only, in exactly this form: \
{\"A\": <grade>, \"B\": <grade>}";

/// Text beyond this many bytes is cut from each part the judge sees.
pub(super) const MAX_PART: usize = 12 * 1024;

/// The text of a chat completion's first choice (empty when it has none).
pub(super) fn answer_text(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn cut(text: &str) -> &str {
    if text.len() <= MAX_PART {
        return text;
    }
    let mut end = MAX_PART;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The judge's request: the conversation's text, then answers A and B.
pub(super) fn request(judge: &str, chat: &ChatRequest, a: &str, b: &str) -> Value {
    let mut conversation = String::new();
    for m in chat.messages() {
        let role = m["role"].as_str().unwrap_or("user");
        let text = crate::classify::content_text(&m["content"]);
        conversation.push_str(&format!("[{role}]\n{text}\n\n"));
    }
    let user = format!(
        "## Request\n{}\n## Answer A\n{}\n\n## Answer B\n{}\n",
        cut(&conversation),
        cut(a),
        cut(b)
    );
    json!({
        "model": judge,
        "messages": [
            {"role": "system", "content": RUBRIC},
            {"role": "user", "content": user},
        ],
        "temperature": 0,
        "max_tokens": 32,
    })
}

/// Grades A and B from the judge's reply: the first JSON object in it
/// with numeric `A` and `B` in [1, 10].
pub(super) fn grades(reply: &str) -> Result<(f64, f64), String> {
    let bad = || {
        format!(
            "the judge's reply is not {{\"A\": 1-10, \"B\": 1-10}} ({} bytes)",
            reply.len()
        )
    };
    let start = reply.find('{').ok_or_else(bad)?;
    let end = reply[start..].find('}').ok_or_else(bad)? + start;
    let v: Value = serde_json::from_str(&reply[start..=end]).map_err(|_| bad())?;
    let grade = |k: &str| {
        v[k].as_f64()
            .or_else(|| v[k].as_str().and_then(|s| s.trim().parse().ok()))
            .filter(|g| (1.0..=10.0).contains(g))
    };
    match (grade("A"), grade("B")) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(bad()),
    }
}

/// One writer at a time, so lines never interleave.
static FILE: Mutex<()> = Mutex::new(());

/// Appends `line` to the outcomes file (created if missing).
pub(super) async fn append(path: &Path, line: &Value) -> Result<(), String> {
    let path = path.to_path_buf();
    let mut text = line.to_string();
    text.push('\n');
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let _one = FILE
            .lock()
            .map_err(|_| "the outcomes writer panicked".to_string())?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| format!("cannot append to {}: {e}", path.display()))
    })
    .await
    .map_err(|e| format!("the outcomes writer failed: {e}"))?
}
