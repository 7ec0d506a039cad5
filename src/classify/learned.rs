//! The learned router: linear heads over the prompt's embedding and the
//! keyword classifier's cues, trained on public per-model outcomes by
//! `scripts/train-router` (weights in `router.json`, model card in
//! `docs/router-card.md`), or on a deployment's own outcomes by
//! `tollgate route fit` (`heads`, `fit`).
//!
//! - `strong_score`: a calibrated probability that the weak model's answer
//!   is worse than the strong model's.
//! - `task`: the most likely of the 13 task labels; prompts written mostly
//!   in Chinese keep the keyword classifier's task where the card shows it
//!   is better there.
//! - `complexity`: a difficulty head (the share of models that lose on
//!   such a prompt) plus a length term, cut at the 50th and 85th
//!   percentiles of the training prompts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::embed::{bounded_text, Embedder, DIM};
use super::{rules, Class, Complexity, Conversation, Task};
pub use domain::Domain;
use heads::{dot, Heads};

mod domain;
pub mod heads;

/// Cue features after the embedding: see [`Router::features`].
const EXTRA: usize = 6 + 13;
pub const FEATURES: usize = DIM + EXTRA;

/// Where each cue feature sits in the vector (`Router::features`), by
/// name: what `tollgate route features` tells the trainer, so it never
/// hard-codes a position. `task` starts the 13 one-hot task columns.
pub const COLUMNS: [(&str, usize); 7] = [
    ("log_length", DIM),
    ("rules_strong", DIM + 1),
    ("constraints", DIM + 2),
    ("cjk_share", DIM + 3),
    ("code_fence", DIM + 4),
    ("digits", DIM + 5),
    ("task", DIM + 6),
];

/// File names inside the router directory (`scripts/fetch-test-model`
/// puts them in `models/wordllama/`).
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TABLE_FILE: &str = "l2_supercat_256.safetensors";

/// The embedding (loaded once, shared) and the heads in use. A policy's
/// `router: { heads }` swaps the heads, never the embedding.
#[derive(Clone)]
pub struct Router {
    embedder: Arc<Embedder>,
    heads: Arc<Heads>,
    tasks: Vec<Task>,
}

impl Router {
    /// Loads the embedding from `dir` (`tokenizer.json` and
    /// `l2_supercat_256.safetensors`) and the shipped heads.
    pub fn load(dir: &Path) -> Result<Router, String> {
        let embedder = Embedder::load(&dir.join(TOKENIZER_FILE), &dir.join(TABLE_FILE))?;
        Router::with(Arc::new(embedder), Arc::new(Heads::shipped()?))
    }

    fn with(embedder: Arc<Embedder>, heads: Arc<Heads>) -> Result<Router, String> {
        let tasks = heads.tasks()?;
        Ok(Router {
            embedder,
            heads,
            tasks,
        })
    }

    /// The same embedding with other heads (a `route fit` file).
    pub fn with_heads(&self, heads: Arc<Heads>) -> Result<Router, String> {
        Router::with(self.embedder.clone(), heads)
    }

    /// The heads in use.
    pub fn heads(&self) -> &Heads {
        &self.heads
    }

    /// The default directory, `models/wordllama`.
    pub fn default_dir() -> PathBuf {
        PathBuf::from("models/wordllama")
    }

    /// The feature vector the heads read, and the keyword classifier's
    /// answer it includes. `scripts/train-router` gets its training
    /// features from here (`tollgate route features`), so training and
    /// serving compute them the same way.
    ///
    /// Everything here reads at most the head and tail of the last user
    /// message (`embed::bounded_text`), so the cost is bounded whatever
    /// the prompt's length.
    pub fn features(&self, c: &Conversation<'_>) -> Features {
        let text = bounded_text(c.last_user);
        let (system, earlier) = (bounded_text(c.system), bounded_text(c.earlier));
        let rules = rules::classify(&Conversation {
            last_user: &text,
            system: &system,
            earlier: &earlier,
            ..*c
        });
        let emb = self.embedder.embed(c.last_user);
        let (mut chars, mut cjk, mut digits) = (0usize, 0usize, 0usize);
        for ch in text.chars() {
            chars += 1;
            cjk += usize::from(('\u{4e00}'..='\u{9fff}').contains(&ch));
            digits += usize::from(ch.is_ascii_digit());
        }
        let chars = chars.max(1) as f32;
        let cjk_share = cjk as f32 / chars;
        let mut f = Vec::with_capacity(FEATURES);
        f.extend_from_slice(&emb.vector);
        f.push((1.0 + emb.tokens as f32).ln() / 8.0);
        f.push(rules.strong_score as f32);
        f.push(rules.constraints.min(6) as f32 / 6.0);
        f.push(cjk_share);
        f.push(f32::from(u8::from(text.contains("```"))));
        f.push((digits as f32 / chars * 10.0).min(1.0));
        f.extend(
            Task::ALL
                .iter()
                .map(|t| f32::from(u8::from(*t == rules.task))),
        );
        Features {
            vector: f,
            choices: domain::has_choices(&text),
            quantities: domain::quantities(&text),
            rules,
            cjk_share,
        }
    }

    /// The task these heads answer for `f`, and the domain that follows.
    pub fn judge(&self, f: &Features) -> (Task, Option<Domain>) {
        let h = &*self.heads;
        let keep_rules_task = h.rules_task_above_cjk.is_some_and(|t| f.cjk_share > t)
            || h.keep_rules_tasks
                .iter()
                .any(|t| t == f.rules.task.as_str());
        let mut task = f.rules.task;
        if !keep_rules_task {
            let best = h
                .task
                .w
                .iter()
                .zip(&h.task.b)
                .map(|(w, b)| dot(w, &f.vector) + b)
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i);
            if let Some(i) = best {
                task = self.tasks[i];
            }
        }
        (task, Domain::of(f.choices, f.quantities, task))
    }

    pub fn classify(&self, c: &Conversation<'_>) -> Class {
        let features = self.features(c);
        let (task, domain) = self.judge(&features);
        let Features {
            vector: f,
            rules: mut class,
            ..
        } = features;
        let h = &*self.heads;
        let strong = h.strong_score(h.strong_raw(&f, domain));
        class.task = task;
        let difficulty = f64::from(h.difficulty_raw(&f, domain));
        let size = difficulty + length_term(c, class.prompt_tokens);
        class.complexity = if size >= h.complexity.high {
            Complexity::High
        } else if size >= h.complexity.medium {
            Complexity::Medium
        } else {
            Complexity::Low
        };
        class.strong_score = (strong * 1000.0).round() / 1000.0;
        class.signals.insert(0, "learned router");
        class
    }
}

/// What the heads read for one prompt.
pub struct Features {
    /// The vector every head is a linear function of.
    pub vector: Vec<f32>,
    /// The keyword classifier's answer (its cues are in the vector).
    pub rules: Class,
    /// The share of CJK characters in the last user message.
    pub cjk_share: f32,
    /// Whether the last user message offers lettered options (the
    /// `choices` domain, whatever the task).
    pub choices: bool,
    /// Distinct numbers it states, counted up to two (the `math` domain).
    pub quantities: usize,
}

/// Long prompts are bigger work whatever their difficulty.
fn length_term(c: &Conversation<'_>, prompt_tokens: u32) -> f64 {
    let tokens = if prompt_tokens > 0 {
        prompt_tokens as usize
    } else {
        (c.last_user.len() + c.system.len() + c.earlier.len()) / 4
    };
    match tokens {
        0..=300 => 0.0,
        301..=1500 => 0.1,
        _ => 0.2,
    }
}
