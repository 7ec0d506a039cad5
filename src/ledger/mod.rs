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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
}

/// Opens (and creates the table of) the store a policy names.
pub fn open(target: &LedgerTarget) -> anyhow::Result<Option<Box<dyn Store>>> {
    Ok(match target {
        LedgerTarget::None => None,
        LedgerTarget::Sqlite(path) => Some(Box::new(sqlite::Sqlite::open(path)?)),
        LedgerTarget::Postgres(url) => Some(Box::new(postgres::Postgres::connect(url.expose())?)),
    })
}

/// The SQL both stores share. `p(i)` renders the i-th placeholder.
fn schema() -> &'static str {
    "CREATE TABLE IF NOT EXISTS tollgate_ledger (
        ts BIGINT NOT NULL,
        day TEXT NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        team TEXT NOT NULL,
        task TEXT NOT NULL,
        complexity TEXT NOT NULL,
        route TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nanos BIGINT NOT NULL,
        baseline_nanos BIGINT NOT NULL,
        cache TEXT NOT NULL,
        status INTEGER NOT NULL,
        latency_ms BIGINT NOT NULL,
        ttft_ms BIGINT,
        ending TEXT NOT NULL,
        saved_nanos BIGINT NOT NULL DEFAULT 0,
        strong_milli INTEGER,
        risk_milli BIGINT NOT NULL DEFAULT 0,
        certainty TEXT NOT NULL DEFAULT 'exact',
        cached_tokens BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS tollgate_ledger_ts ON tollgate_ledger (ts)"
}

const COLUMNS: usize = 24;

/// Columns added after the first release, for ledgers made before them.
const ADDED: [(&str, &str); 5] = [
    ("saved_nanos", "BIGINT NOT NULL DEFAULT 0"),
    ("strong_milli", "INTEGER"),
    ("risk_milli", "BIGINT NOT NULL DEFAULT 0"),
    ("certainty", "TEXT NOT NULL DEFAULT 'exact'"),
    ("cached_tokens", "BIGINT NOT NULL DEFAULT 0"),
];

fn insert_sql(p: fn(usize) -> String) -> String {
    let params: Vec<String> = (1..=COLUMNS).map(p).collect();
    format!(
        "INSERT INTO tollgate_ledger (ts, day, request_id, key_id, team, task, complexity, route, \
         requested_model, model, prompt_tokens, completion_tokens, cost_nanos, baseline_nanos, \
         cache, status, latency_ms, ttft_ms, ending, saved_nanos, strong_milli, risk_milli, certainty, \
         cached_tokens) \
         VALUES ({})",
        params.join(", ")
    )
}

fn report_sql(q: &Query, p: fn(usize) -> String) -> String {
    let dims: Vec<&str> = q.by.iter().map(|d| d.column()).collect();
    let select = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
    let group = if dims.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", dims.join(", "))
    };
    format!(
        "SELECT {select}COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(baseline_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(saved_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN strong_milli IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(risk_milli), 0) AS BIGINT) \
         FROM tollgate_ledger WHERE ts >= {} AND ts < {}{group}",
        p(1),
        p(2)
    )
}

const SEEN_SQL: &str = "SELECT request_id, ts, key_id FROM tollgate_ledger WHERE ts >= ";

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
