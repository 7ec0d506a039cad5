//! The default classifier: deterministic keyword and shape features over
//! the conversation, English and Chinese.
//!
//! Each task collects points from cues in the last user message (weighted
//! most), the system prompt and earlier turns; the highest total wins, ties
//! going to the earlier task in `ORDER`. Cues are plain substring tests on
//! a lower-cased copy of the text, so the cost is linear in the prompt.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

use super::{Class, Complexity, Task};

mod cues;
use cues::CUES;

/// All cues in one automaton: the text is scanned once, whatever the
/// number of cues. `None` only if building it failed (then: one search per cue).
static MATCHER: LazyLock<Option<AhoCorasick>> = LazyLock::new(|| dfa(CUES.iter().map(|c| c.1)));

/// A full DFA: the fastest search kind, and the cue sets are small.
fn dfa<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Option<AhoCorasick> {
    AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .build(patterns)
        .ok()
}

/// Longer texts are scanned for cues in their first `HEAD` and last
/// `TAIL` bytes only: instructions sit at the start or the end of a prompt,
/// and the body of a long document mostly adds incidental words. This
/// also bounds the classifier's cost whatever the prompt's length.
const HEAD: usize = 1024;
const TAIL: usize = 512;

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The parts of `lower` that are scanned for cues.
fn scanned(lower: &str) -> [&str; 2] {
    if lower.len() <= HEAD + TAIL {
        return [lower, ""];
    }
    let head_end = floor_boundary(lower, HEAD);
    let tail_start = floor_boundary(lower, lower.len() - TAIL);
    [&lower[..head_end], &lower[tail_start..]]
}

/// Indices into `CUES` of the cues found in `lower`, each once.
fn cues_in(lower: &str) -> Vec<usize> {
    let mut seen = vec![false; CUES.len()];
    for part in scanned(lower) {
        match MATCHER.as_ref() {
            Some(m) => {
                for hit in m.find_overlapping_iter(part) {
                    seen[hit.pattern().as_usize()] = true;
                }
            }
            None => {
                for (i, c) in CUES.iter().enumerate() {
                    seen[i] |= part.contains(c.1);
                }
            }
        }
    }
    seen.iter()
        .enumerate()
        .filter(|(_, s)| **s)
        .map(|(i, _)| i)
        .collect()
}

/// Tie-break order: earlier wins.
const ORDER: &[Task] = &[
    Task::Translation,
    Task::Summarization,
    Task::Extraction,
    Task::Classification,
    Task::Code,
    Task::Math,
    Task::ClosedQa,
    Task::Roleplay,
    Task::Reasoning,
    Task::CreativeWriting,
    Task::Brainstorming,
    Task::OpenQa,
    Task::Chat,
];

/// The text a classifier looks at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Conversation<'a> {
    pub system: &'a str,
    pub last_user: &'a str,
    /// Everything before the last user message, joined.
    pub earlier: &'a str,
    pub turns: usize,
    pub has_tools: bool,
    pub wants_json: bool,
    pub max_tokens: Option<u32>,
    /// Prompt tokens, counted by the caller with the model's tokenizer.
    pub prompt_tokens: u32,
}

fn index(t: Task) -> usize {
    Task::ALL.iter().position(|x| *x == t).unwrap_or(0)
}

/// Lower case; the ASCII fast path covers most English prompts.
pub(super) fn lowercase(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        s.to_lowercase()
    }
}

/// Adds the points of every cue in `lower` (already lower-cased).
fn add_cues(lower: &str, weight: i32, scores: &mut [i32; 13], hits: &mut Vec<&'static str>) {
    for i in cues_in(lower) {
        let (task, cue, points) = CUES[i];
        scores[index(task)] += points * weight;
        if weight >= 2 && hits.len() < 8 {
            hits.push(cue);
        }
    }
}

/// Cues of explicit constraints and multi-step instructions.
const MARKERS: &[&str] = &[
    "exactly",
    "at least",
    "at most",
    "must",
    "should",
    "do not",
    "don't",
    "without",
    "step",
    "format",
    "bullet",
    "words",
    "json",
    "table",
    "first",
    "then",
    "finally",
    "必须",
    "不要",
    "至少",
    "不超过",
    "步骤",
    "格式",
    "首先",
    "然后",
    "最后",
    "要求",
];

static MARKER_MATCHER: LazyLock<Option<AhoCorasick>> =
    LazyLock::new(|| dfa(MARKERS.iter().copied()));

/// Counts cues that make a request long or hard: numbered steps,
/// explicit constraints. `lower` is the lower-cased text.
pub(super) fn constraints(lower: &str) -> u32 {
    let distinct = match MARKER_MATCHER.as_ref() {
        Some(m) => {
            let mut seen = [false; 64];
            for hit in m.find_overlapping_iter(lower) {
                seen[hit.pattern().as_usize() % 64] = true;
            }
            seen.iter().filter(|s| **s).count() as u32
        }
        None => MARKERS.iter().filter(|m| lower.contains(*m)).count() as u32,
    };
    let numbered = lower
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with(|c: char| c.is_ascii_digit()) && (t.contains(". ") || t.contains("、"))
                || t.starts_with("- ")
        })
        .count() as u32;
    distinct + numbered
}

/// Classifies a conversation.
pub fn classify(c: &Conversation<'_>) -> Class {
    let mut scores = [0i32; 13];
    let mut signals = Vec::new();
    let lower = lowercase(c.last_user);
    add_cues(&lower, 3, &mut scores, &mut signals);
    add_cues(&lowercase(c.system), 1, &mut scores, &mut signals);
    if !c.earlier.is_empty() {
        add_cues(&lowercase(c.earlier), 1, &mut scores, &mut signals);
    }
    // The instruction usually comes first: a verb there that operates on
    // given text ("summarize this code…") outweighs what the text is about.
    let head = match lower.char_indices().nth(60) {
        Some((i, _)) => &lower[..i],
        None => &lower,
    };
    for i in cues_in(head) {
        let (task, _, points) = CUES[i];
        let operates_on_text = matches!(
            task,
            Task::Summarization | Task::Translation | Task::Extraction | Task::Classification
        );
        if operates_on_text {
            scores[index(task)] += points * 3;
        }
    }
    // Shape features.
    let text = c.last_user;
    let (mut digits, mut cjk, mut chars) = (0usize, 0usize, 0usize);
    for ch in text.chars() {
        chars += 1;
        digits += usize::from(ch.is_ascii_digit());
        cjk += usize::from(('\u{4e00}'..='\u{9fff}').contains(&ch));
    }
    let chars = chars.max(1);
    if digits >= 2 && (text.contains('?') || text.contains('？') || text.contains("多少")) {
        scores[index(Task::Math)] += 6;
        signals.push("numbers+question");
    }
    if text.contains(['=', '+', '×', '÷', '√', '∫']) && digits > 0 {
        scores[index(Task::Math)] += 5;
        signals.push("math notation");
    }
    let code_lines = text
        .lines()
        .filter(|l| {
            let t = l.trim_end();
            t.ends_with(';') || t.ends_with('{') || t.ends_with('}') || t.ends_with("):")
        })
        .count();
    if code_lines >= 2 {
        scores[index(Task::Code)] += 8;
        signals.push("code lines");
    }
    if c.has_tools {
        scores[index(Task::Code)] += 2;
        signals.push("tools");
    }
    let start = lower.trim_start();
    if start.starts_with("as a ") || start.starts_with("as an ") {
        scores[index(Task::Roleplay)] += 9;
        signals.push("as a …");
    }
    // A long text with a short instruction is about the text.
    let long_doc = chars > 400 || (cjk > 200);
    if long_doc {
        scores[index(Task::Summarization)] += 2;
        scores[index(Task::ClosedQa)] += 2;
    }
    if cjk == 0 && chars < 24 && scores.iter().all(|s| *s < 6) {
        scores[index(Task::Chat)] += 6;
        signals.push("short");
    }
    let mut task = Task::OpenQa;
    let mut best = 0;
    for t in ORDER {
        let s = scores[index(*t)];
        if s > best {
            best = s;
            task = *t;
        }
    }
    if best == 0 {
        task = if cjk == 0 && chars < 40 {
            Task::Chat
        } else {
            Task::OpenQa
        };
    }

    let n_constraints = constraints(&lower);
    let mut hardness: f64 = match task {
        Task::Code => 0.55,
        Task::Math => 0.5,
        Task::Reasoning => 0.55,
        Task::CreativeWriting | Task::Roleplay => 0.3,
        Task::Brainstorming | Task::OpenQa => 0.3,
        Task::ClosedQa | Task::Extraction | Task::Classification => 0.2,
        Task::Summarization | Task::Translation => 0.15,
        Task::Chat => 0.05,
    };
    hardness += 0.05 * f64::from(n_constraints.min(6));
    // Length: tokens when the caller counted them, else ~4 characters a token.
    let approx_tokens = if c.prompt_tokens > 0 {
        c.prompt_tokens as usize
    } else {
        (chars + c.system.len() + c.earlier.len()) / 4
    };
    // Length makes a request bigger, not likelier to need the strong model:
    // on AlpacaEval, long prompts (mostly "rewrite/summarize this text") are
    // where the weak model loses least, and counting length in strong_score
    // lowered APGR (examples/route_eval.rs). So it counts for complexity only.
    let length = match approx_tokens {
        0..=60 => 0.0,
        61..=300 => 0.05,
        301..=1500 => 0.1,
        _ => 0.15,
    };
    if c.turns > 3 {
        hardness += 0.05;
    }
    if c.has_tools || c.wants_json {
        hardness += 0.1;
    }
    if c.max_tokens.is_some_and(|m| m >= 2000) {
        hardness += 0.05;
    }
    let strong_score = hardness.clamp(0.0, 1.0);
    let size = strong_score + length;
    let complexity = if size >= 0.6 {
        Complexity::High
    } else if size >= 0.35 {
        Complexity::Medium
    } else {
        Complexity::Low
    };
    Class {
        task,
        complexity,
        strong_score: (strong_score * 100.0).round() / 100.0,
        prompt_tokens: c.prompt_tokens,
        constraints: n_constraints,
        signals,
    }
}

#[cfg(test)]
mod tests;
