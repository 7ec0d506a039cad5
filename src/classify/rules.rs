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

/// (task, cue, points). English cues are lower case; Chinese cues match as is.
const CUES: &[(Task, &str, i32)] = &[
    // code
    (Task::Code, "```", 6),
    (Task::Code, "def ", 4),
    (Task::Code, "from typing import", 8),
    (Task::Code, "import ", 2),
    (Task::Code, "#include", 6),
    (Task::Code, "console.log", 6),
    (Task::Code, "public static", 6),
    (Task::Code, "function", 3),
    (Task::Code, "python", 4),
    (Task::Code, "javascript", 4),
    (Task::Code, "java ", 3),
    (Task::Code, "c++", 4),
    (Task::Code, "golang", 4),
    (Task::Code, "rust ", 2),
    (Task::Code, "sql", 4),
    (Task::Code, "select ", 1),
    (Task::Code, "code", 4),
    (Task::Code, "program", 3),
    (Task::Code, "script", 2),
    (Task::Code, "implement", 3),
    (Task::Code, "debug", 4),
    (Task::Code, "compile", 3),
    (Task::Code, "regex", 4),
    (Task::Code, "return ", 2),
    (Task::Code, ">>> ", 4),
    (Task::Code, "html", 3),
    (Task::Code, "css", 2),
    (Task::Code, "api", 1),
    (Task::Code, "代码", 6),
    (Task::Code, "编程", 5),
    (Task::Code, "程序", 2),
    (Task::Code, "函数", 4),
    (Task::Code, "脚本", 4),
    (Task::Code, "查询语句", 5),
    // math
    (Task::Math, "how many", 3),
    (Task::Math, "how much", 3),
    (Task::Math, "calculate", 4),
    (Task::Math, "solve", 3),
    (Task::Math, "equation", 4),
    (Task::Math, "integral", 5),
    (Task::Math, "derivative", 5),
    (Task::Math, "probability", 4),
    (Task::Math, "percent", 2),
    (Task::Math, "total", 1),
    (Task::Math, "average", 2),
    (Task::Math, "each", 1),
    (Task::Math, "$", 1),
    (Task::Math, "math", 4),
    (Task::Math, "find the", 3),
    (Task::Math, "value of", 3),
    (Task::Math, "area of", 4),
    (Task::Math, "radius", 3),
    (Task::Math, "limit of", 4),
    (Task::Math, "x +", 3),
    (Task::Math, "x -", 2),
    (Task::Math, "x^", 4),
    (Task::Math, "x^2", 5),
    (Task::Math, "多少", 2),
    (Task::Math, "几", 1),
    (Task::Math, "计算", 4),
    (Task::Math, "方程", 5),
    (Task::Math, "数学", 5),
    (Task::Math, "平均", 2),
    (Task::Math, "一共", 3),
    (Task::Math, "还剩", 4),
    (Task::Math, "求", 1),
    (Task::Math, "每", 1),
    (Task::Math, "%", 1),
    // reasoning
    (Task::Reasoning, "riddle", 5),
    (Task::Reasoning, "puzzle", 5),
    (Task::Reasoning, "logic", 4),
    (Task::Reasoning, "step by step", 2),
    (Task::Reasoning, "reason", 2),
    (Task::Reasoning, "deduce", 4),
    (Task::Reasoning, "infer", 3),
    (Task::Reasoning, "estimate", 3),
    (Task::Reasoning, "try to explain your answer", 10),
    (Task::Reasoning, "your reasoning", 4),
    (Task::Reasoning, "what would happen if", 4),
    (Task::Reasoning, "推理", 4),
    (Task::Reasoning, "逻辑", 4),
    // summarization
    (Task::Summarization, "summarize", 8),
    (Task::Summarization, "summarise", 8),
    (Task::Summarization, "summary", 7),
    (Task::Summarization, "tl;dr", 8),
    (Task::Summarization, "key points", 5),
    (Task::Summarization, "in one sentence", 3),
    (Task::Summarization, "总结", 8),
    (Task::Summarization, "概括", 8),
    (Task::Summarization, "摘要", 7),
    (Task::Summarization, "核心观点", 6),
    (Task::Summarization, "主要内容", 5),
    (Task::Summarization, "一句话", 3),
    // extraction
    (Task::Extraction, "extract", 8),
    (Task::Extraction, "pull out", 5),
    (Task::Extraction, "find all", 4),
    (Task::Extraction, "list all the", 3),
    (Task::Extraction, "named entities", 6),
    (Task::Extraction, "keywords", 4),
    (Task::Extraction, "提取", 8),
    (Task::Extraction, "抽取", 8),
    (Task::Extraction, "找出", 4),
    (Task::Extraction, "关键词", 5),
    (Task::Extraction, "关键信息", 5),
    // classification
    (Task::Classification, "classify", 8),
    (Task::Classification, "categorize", 8),
    (Task::Classification, "categorise", 8),
    (Task::Classification, "which category", 6),
    (Task::Classification, "sentiment", 6),
    (Task::Classification, "positive or negative", 6),
    (Task::Classification, "is this a", 2),
    (Task::Classification, "分类", 8),
    (Task::Classification, "归类", 8),
    (Task::Classification, "属于哪", 6),
    (Task::Classification, "类别", 5),
    (Task::Classification, "情感", 4),
    (Task::Classification, "正面还是负面", 6),
    // translation
    (Task::Translation, "translate", 9),
    (Task::Translation, "translation", 8),
    (Task::Translation, "in french", 4),
    (Task::Translation, "into english", 6),
    (Task::Translation, "翻译", 9),
    (Task::Translation, "译成", 9),
    // creative writing
    (Task::CreativeWriting, "poem", 6),
    (Task::CreativeWriting, "story", 4),
    (Task::CreativeWriting, "write a", 3),
    (Task::CreativeWriting, "compose", 4),
    (Task::CreativeWriting, "write an", 3),
    (Task::CreativeWriting, "report", 2),
    (Task::CreativeWriting, "podcast", 4),
    (Task::CreativeWriting, "opinion piece", 5),
    (Task::CreativeWriting, "personal statement", 5),
    (Task::CreativeWriting, "cover letter", 5),
    (Task::CreativeWriting, "essay", 4),
    (Task::CreativeWriting, "song", 4),
    (Task::CreativeWriting, "lyrics", 5),
    (Task::CreativeWriting, "blog post", 5),
    (Task::CreativeWriting, "letter", 3),
    (Task::CreativeWriting, "slogan", 4),
    (Task::CreativeWriting, "haiku", 6),
    (Task::CreativeWriting, "创作", 6),
    (Task::CreativeWriting, "写一首", 6),
    (Task::CreativeWriting, "写一篇", 6),
    (Task::CreativeWriting, "写一段", 4),
    (Task::CreativeWriting, "撰写", 5),
    (Task::CreativeWriting, "诗", 4),
    (Task::CreativeWriting, "故事", 4),
    (Task::CreativeWriting, "文章", 3),
    (Task::CreativeWriting, "新闻", 3),
    (Task::CreativeWriting, "标题", 3),
    (Task::CreativeWriting, "歌", 3),
    (Task::CreativeWriting, "广告", 3),
    (Task::CreativeWriting, "生成", 2),
    (Task::CreativeWriting, "编写", 2),
    (Task::CreativeWriting, "介绍", 2),
    // brainstorming
    (Task::Brainstorming, "brainstorm", 8),
    (Task::Brainstorming, "ideas", 5),
    (Task::Brainstorming, "suggest", 4),
    (Task::Brainstorming, "list ", 3),
    (Task::Brainstorming, "ways to", 3),
    (Task::Brainstorming, "tips", 4),
    (Task::Brainstorming, "recommend", 4),
    (Task::Brainstorming, "列出", 5),
    (Task::Brainstorming, "列举", 5),
    (Task::Brainstorming, "建议", 4),
    (Task::Brainstorming, "方法", 3),
    (Task::Brainstorming, "推荐", 5),
    (Task::Brainstorming, "提供一些", 5),
    (Task::Brainstorming, "想法", 5),
    (Task::Brainstorming, "头脑风暴", 8),
    (Task::Brainstorming, "设计一", 4),
    (Task::Brainstorming, "几种", 3),
    (Task::Brainstorming, "有哪些", 2),
    (Task::Brainstorming, "计划", 3),
    (Task::Brainstorming, "提出", 3),
    (Task::Brainstorming, "分析", 2),
    (Task::Brainstorming, "讨论", 2),
    (Task::Brainstorming, "意见", 3),
    (Task::Brainstorming, "特点", 2),
    (Task::Brainstorming, "设计", 2),
    (Task::Brainstorming, "创造", 3),
    (Task::Brainstorming, "three facts", 3),
    (Task::Brainstorming, "三个", 2),
    (Task::Brainstorming, "方案", 4),
    (Task::Brainstorming, "策略", 3),
    (Task::Brainstorming, "创意", 4),
    // closed QA: answer from a given text
    (Task::ClosedQa, "based on the", 4),
    (Task::ClosedQa, "according to the", 4),
    (Task::ClosedQa, "given the following", 3),
    (Task::ClosedQa, "passage", 4),
    (Task::ClosedQa, "multiple choice", 6),
    (Task::ClosedQa, "根据以下", 4),
    (Task::ClosedQa, "根据给定", 4),
    (Task::ClosedQa, "根据文章", 6),
    (Task::ClosedQa, "根据给出", 4),
    (Task::ClosedQa, "回答下列问题", 6),
    (Task::ClosedQa, "回答下面", 4),
    (Task::ClosedQa, "回答以下问题", 3),
    (Task::ClosedQa, "选择题", 7),
    (Task::ClosedQa, "文中", 4),
    (Task::ClosedQa, "材料", 4),
    (Task::ClosedQa, "判断", 3),
    (Task::ClosedQa, "选项", 4),
    (Task::ClosedQa, "填空", 4),
    (Task::ClosedQa, "客服：", 4),
    (Task::ClosedQa, "用户：", 3),
    (Task::ClosedQa, "筛选出", 4),
    // roleplay
    (Task::Roleplay, "pretend you", 6),
    (Task::Roleplay, "if you were", 6),
    (Task::Roleplay, "introduce yourself as", 6),
    (Task::Roleplay, "act as", 6),
    (Task::Roleplay, "you are a", 3),
    (Task::Roleplay, "imagine you are", 6),
    (Task::Roleplay, "role-play", 8),
    (Task::Roleplay, "roleplay", 8),
    (Task::Roleplay, "as a pirate", 6),
    (Task::Roleplay, "in character", 6),
    (Task::Roleplay, "扮演", 8),
    (Task::Roleplay, "假设你是", 6),
    (Task::Roleplay, "假如你是", 6),
    // open QA
    (Task::OpenQa, "what ", 2),
    (Task::OpenQa, "why ", 3),
    (Task::OpenQa, "how ", 2),
    (Task::OpenQa, "explain", 3),
    (Task::OpenQa, "difference between", 3),
    (Task::OpenQa, "?", 2),
    (Task::OpenQa, "为什么", 4),
    (Task::OpenQa, "什么", 3),
    (Task::OpenQa, "解释", 4),
    (Task::OpenQa, "描述", 3),
    (Task::OpenQa, "描绘", 3),
    (Task::OpenQa, "阐述", 4),
    (Task::OpenQa, "概述", 3),
    (Task::OpenQa, "回答以下问题", 3),
    (Task::OpenQa, "回答问题", 2),
    (Task::OpenQa, "是谁", 3),
    (Task::OpenQa, "谁是", 3),
    (Task::OpenQa, "常识", 3),
    (Task::OpenQa, "describe", 2),
    (Task::OpenQa, "compare", 2),
    (Task::OpenQa, "discuss", 2),
    (Task::OpenQa, "如何", 2),
    (Task::OpenQa, "怎么", 2),
    (Task::OpenQa, "？", 2),
    (Task::OpenQa, "吗", 2),
    (Task::OpenQa, "哪", 2),
    // chat
    (Task::Chat, "hello", 2),
    (Task::Chat, "hi ", 2),
    (Task::Chat, "thanks", 3),
    (Task::Chat, "thank you", 3),
    (Task::Chat, "how are you", 5),
    (Task::Chat, "你好", 3),
    (Task::Chat, "谢谢", 3),
];

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
mod tests {
    use super::*;

    fn task(text: &str) -> Task {
        classify(&Conversation {
            last_user: text,
            turns: 1,
            ..Conversation::default()
        })
        .task
    }

    #[test]
    fn english_tasks() {
        assert_eq!(
            task("Write a Python function that reverses a linked list."),
            Task::Code
        );
        assert_eq!(
            task("Can you review this code?\n```js\nlet a = 1;\nlet b = a + 2;\n```"),
            Task::Code
        );
        assert_eq!(
            task("Summarize this code for a release note:\n```rust\nfn main() { println!(\"hi\"); }\n```"),
            Task::Summarization
        );
        assert_eq!(
            task("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?"),
            Task::Math
        );
        assert_eq!(
            task("Translate 'good morning' into French."),
            Task::Translation
        );
        assert_eq!(
            task("Write a poem about the autumn sea."),
            Task::CreativeWriting
        );
        assert_eq!(
            task("Pretend you are a pirate and greet me."),
            Task::Roleplay
        );
        assert_eq!(
            task("Classify this review as positive or negative: great phone!"),
            Task::Classification
        );
        assert_eq!(
            task("Extract all dates from this email: meet on 3 May, ship on 9 May."),
            Task::Extraction
        );
        assert_eq!(task("Why is the sky blue?"), Task::OpenQa);
        assert_eq!(task("hi there"), Task::Chat);
    }

    #[test]
    fn chinese_tasks() {
        assert_eq!(
            task("花店里上午运来560枝玫瑰，卖掉了368枝，又运来了208枝．现在花店里有多少枝玫瑰？"),
            Task::Math
        );
        assert_eq!(
            task("请将以下英文句子翻译成中文:Hello, how are you today?"),
            Task::Translation
        );
        assert_eq!(
            task("请用一句话总结以下段落：保护环境的重要意义随着我国经济的发展。"),
            Task::Summarization
        );
        assert_eq!(
            task("对以下五本书进行分类： 《百年孤独》、《人类简史》、《三体》。"),
            Task::Classification
        );
        assert_eq!(task("列出5种可以改善睡眠质量的方法。"), Task::Brainstorming);
        assert_eq!(
            task("请创作一首歌曲，歌曲的主题是“爱情与分别”"),
            Task::CreativeWriting
        );
        assert_eq!(
            task("编写一个python程序，筛选出所有年龄大于等于18岁的人。"),
            Task::Code
        );
        assert_eq!(task("为什么在夏天喝冰镇饮料会感觉很凉爽？"), Task::OpenQa);
    }

    #[test]
    fn complexity_follows_task_constraints_and_length() {
        let easy = classify(&Conversation {
            last_user: "hello",
            turns: 1,
            ..Default::default()
        });
        assert_eq!(easy.complexity, Complexity::Low);
        let hard = classify(&Conversation {
            last_user:
                "Implement a thread-safe LRU cache in Rust. It must support get and put in O(1), \
                        must not use unsafe, and should include tests. First design the API, then \
                        implement it, finally explain the trade-offs in exactly 3 bullet points.",
            turns: 1,
            prompt_tokens: 400,
            ..Default::default()
        });
        assert_eq!(hard.task, Task::Code);
        assert_eq!(hard.complexity, Complexity::High);
        assert!(hard.strong_score > easy.strong_score);
    }

    #[test]
    fn deterministic() {
        let c = Conversation {
            last_user: "Solve x^2 = 9 step by step",
            turns: 1,
            ..Default::default()
        };
        assert_eq!(classify(&c), classify(&c));
    }
}
