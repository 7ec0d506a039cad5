//! The cost ledger: one row per request, never any prompt text.
//!
//! Rows are handed to `Ledger::record`, which never blocks and never fails
//! the request: a writer thread batches them (up to `BATCH` rows, or what
//! arrived within `LINGER`) into one transaction. When the store fails
//! (PostgreSQL down, disk full), the batch is kept and retried with
//! backoff while new rows queue in memory; `close` (graceful shutdown)
//! writes everything still queued before returning.
//!
//! Stores: an embedded SQLite file (default) or PostgreSQL, behind the
//! narrow `Store` trait; both run the same SQL and the same tests.

mod journal;
mod postgres;
mod sqlite;
mod tls;
mod writer;

pub use writer::{rejected_rows, Ledger};

use crate::clock::Millis;
use crate::money::Nanos;
use crate::policy::LedgerTarget;

/// One request, as accounted.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub ts: Millis,
    pub request_id: String,
    pub key_id: String,
    pub team: String,
    pub task: String,
    pub complexity: String,
    pub route: String,
    pub requested_model: String,
    /// The model that answered (or was tried last); empty when none was.
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, those the provider served from its prompt
    /// cache (priced at the cached-input rate).
    #[serde(default)]
    pub cached_tokens: u64,
    /// Of `prompt_tokens`, those written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Of `prompt_tokens`, audio input.
    #[serde(default)]
    pub audio_prompt_tokens: u64,
    /// Of `completion_tokens`, hidden reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Of `completion_tokens`, audio output.
    #[serde(default)]
    pub audio_completion_tokens: u64,
    /// What the provider's prompt cache saved against full input price.
    #[serde(default)]
    pub prompt_cache_saved: Nanos,
    /// The price `cost` was charged at (`Price::to_json`; empty when the
    /// model has none), so a later price change never rewrites history.
    #[serde(default)]
    pub price: String,
    pub cost: Nanos,
    pub baseline_cost: Nanos,
    /// `hit`, `miss`, `bypass` or `off`.
    pub cache: String,
    /// For a cache hit: what the answer cost when it was made.
    pub saved: Nanos,
    pub status: u16,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    /// `complete`, `upstream_broke`, `client_gone`, `error`, `budget_cut`,
    /// or `interrupted` (the gateway stopped mid-request: charged at its
    /// reservation, status 0; see `journal`).
    pub ending: String,
    /// The router's strong_score in thousandths; `None` when the request
    /// was not classified (rejected before).
    pub strong_milli: Option<u32>,
    /// The expected quality lost against the baseline, in thousandths: the
    /// strong_score when the gateway chose a model other than the baseline,
    /// else 0. Reports turn it into "quality retained".
    pub risk_milli: u64,
    /// How sure `cost` is: `exact` (the upstream's usage, priced),
    /// `estimated` (no valid usage came back: the tokens were counted
    /// locally, e.g. a stream cut before its usage chunk) or `unpriced`
    /// (no per-token price known for the model).
    #[serde(default = "exact")]
    pub certainty: String,
}

fn exact() -> String {
    "exact".to_string()
}

impl Row {
    /// The row of a request that has just arrived: who and when, the rest
    /// empty until it is settled.
    pub fn opened(ts: Millis, request_id: &str, key_id: &str, team: &str) -> Row {
        Row {
            ts,
            request_id: request_id.to_string(),
            key_id: key_id.to_string(),
            team: team.to_string(),
            task: String::new(),
            complexity: String::new(),
            route: String::new(),
            requested_model: String::new(),
            model: String::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            cached_tokens: 0,
            cache_write_tokens: 0,
            audio_prompt_tokens: 0,
            reasoning_tokens: 0,
            audio_completion_tokens: 0,
            prompt_cache_saved: Nanos::ZERO,
            price: String::new(),
            cost: Nanos::ZERO,
            baseline_cost: Nanos::ZERO,
            cache: "off".to_string(),
            saved: Nanos::ZERO,
            status: 0,
            latency_ms: 0,
            ttft_ms: None,
            ending: String::new(),
            strong_milli: None,
            risk_milli: 0,
            certainty: exact(),
        }
    }
}

/// The most bytes a text column keeps: a client's `model` or
/// `x-request-id` can be up to the body or header limit, and a row is
/// kept for years.
pub const MAX_TEXT: usize = 256;
/// The most tokens a row counts, prompt or completion: beyond any model's
/// context, so only absurd usage is clamped, and sums over millions of
/// rows stay far inside a BIGINT.
pub const MAX_TOKENS: u64 = 100_000_000;

/// `s` as a store keeps it: each control character replaced by U+FFFD
/// (PostgreSQL rejects NUL in text; the rest garble reports and logs; the
/// mark shows the name was not stored as sent), at most `MAX_TEXT` bytes,
/// cut on a character boundary. Borrowed when already clean.
pub fn clean_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_TEXT && !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(MAX_TEXT));
    for c in s.chars() {
        let c = if c.is_control() {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    std::borrow::Cow::Owned(out)
}

impl Row {
    /// Makes the row storable whatever a client sent: every text cleaned
    /// (`clean_text`) and the token counts clamped at `MAX_TOKENS`.
    /// Returns whether anything changed.
    pub fn sanitize(&mut self) -> bool {
        let mut changed = false;
        for s in [
            &mut self.request_id,
            &mut self.key_id,
            &mut self.team,
            &mut self.task,
            &mut self.complexity,
            &mut self.route,
            &mut self.requested_model,
            &mut self.model,
            &mut self.cache,
            &mut self.ending,
            &mut self.certainty,
            &mut self.price,
        ] {
            if let std::borrow::Cow::Owned(clean) = clean_text(s) {
                *s = clean;
                changed = true;
            }
        }
        for n in [
            &mut self.prompt_tokens,
            &mut self.completion_tokens,
            &mut self.cached_tokens,
            &mut self.cache_write_tokens,
            &mut self.audio_prompt_tokens,
            &mut self.reasoning_tokens,
            &mut self.audio_completion_tokens,
        ] {
            if *n > MAX_TOKENS {
                *n = MAX_TOKENS;
                changed = true;
            }
        }
        changed
    }
}

impl Row {
    /// The row a request keeps if the gateway stops while `model` holds
    /// its reservation: charged the reservation, for the tokens it holds.
    pub fn interrupted(
        &self,
        model: &str,
        tokens: (u64, u64),
        cost: Nanos,
        baseline: Nanos,
    ) -> Row {
        Row {
            model: model.to_string(),
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            cost,
            baseline_cost: baseline,
            status: 0,
            ending: "interrupted".to_string(),
            ..self.clone()
        }
    }
}

/// What a report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    Key,
    Team,
    Model,
    Task,
    Route,
    Day,
}

impl Dim {
    pub const ALL: &'static [Dim] = &[
        Dim::Key,
        Dim::Team,
        Dim::Model,
        Dim::Task,
        Dim::Route,
        Dim::Day,
    ];

    pub fn column(self) -> &'static str {
        match self {
            Dim::Key => "key_id",
            Dim::Team => "team",
            Dim::Model => "model",
            Dim::Task => "task",
            Dim::Route => "route",
            Dim::Day => "day",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dim::Key => "key",
            other => other.column(),
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.iter().copied().find(|d| d.name() == s)
    }
}

/// Rows with `from <= ts < to`, grouped by `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: Millis,
    pub to: Millis,
    pub by: Vec<Dim>,
}

/// One group of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub keys: Vec<String>,
    pub requests: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: Nanos,
    pub baseline_cost: Nanos,
    pub cache_hits: u64,
    /// What the cache hits' answers cost when they were made.
    pub cache_saved: Nanos,
    /// Rows with a strong_score, and the sum of their `risk_milli`.
    pub scored: u64,
    pub risk_milli: u64,
    /// Prompt tokens served from the providers' prompt caches, and what
    /// that saved against full input price.
    pub cached_tokens: u64,
    pub prompt_cache_saved: Nanos,
    pub reasoning_tokens: u64,
    /// Rows charged without a price of their own, and rows counted
    /// locally (`Row::certainty`).
    pub unpriced: u64,
    pub estimated: u64,
}

impl Group {
    /// The router's estimate of the share of answers as good as the
    /// baseline model's would have been, in tenths of a percent (`None`
    /// with no scored rows).
    pub fn quality_retained_tenths(&self) -> Option<u64> {
        if self.scored == 0 {
            return None;
        }
        let lost = self.risk_milli.min(self.scored * 1000);
        Some(((self.scored * 1000 - lost) * 2 + self.scored).div_euclid(self.scored * 2))
    }
}

/// Where rows are kept.
pub trait Store: Send {
    fn insert(&mut self, rows: &[Row]) -> anyhow::Result<()>;
    fn report(&mut self, q: &Query) -> anyhow::Result<Vec<Group>>;
    /// The `journal::key` of every row with `ts >= from`.
    fn seen_since(&mut self, from: Millis) -> anyhow::Result<std::collections::HashSet<String>>;
    /// Whether `e` (from `insert`) rejects the rows themselves (a
    /// constraint, a value the store cannot hold) rather than telling
    /// that the store is down: such rows are never going in, and are
    /// moved aside (`writer`) instead of retried.
    fn rejects(&self, e: &anyhow::Error) -> bool;
    /// Keeps what settlements taught (`learnt`), raising what is there.
    fn teach(&mut self, taught: &[learnt::Taught]) -> anyhow::Result<()>;
    /// Everything kept by `teach`, from any process.
    fn taught(&mut self) -> anyhow::Result<Vec<learnt::Taught>>;
}

/// Opens (and creates the table of) the store a policy names.
pub fn open(target: &LedgerTarget) -> anyhow::Result<Option<Box<dyn Store>>> {
    Ok(match target {
        LedgerTarget::None => None,
        LedgerTarget::Sqlite(path) => Some(Box::new(sqlite::Sqlite::open(path)?)),
        LedgerTarget::Postgres(url) => Some(Box::new(postgres::Postgres::connect(url.expose())?)),
    })
}

mod aside;
pub mod learnt;
mod sql;
use sql::{insert_sql, report_sql, schema, to_i64, to_u64, ADDED, SEEN_SQL};

#[cfg(test)]
mod tests;
