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

mod postgres;
mod sqlite;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::Millis;
use crate::money::Nanos;
use crate::policy::LedgerTarget;

const BATCH: usize = 512;
const LINGER: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At shutdown, how long a failing store is retried before the rows still
/// queued are reported lost.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// One request, as accounted.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    pub cost: Nanos,
    pub baseline_cost: Nanos,
    /// `hit`, `miss`, `bypass` or `off`.
    pub cache: String,
    /// For a cache hit: what the answer cost when it was made.
    pub saved: Nanos,
    pub status: u16,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    /// `complete`, `upstream_broke`, `client_gone`, `error`, `budget_cut`.
    pub ending: String,
    /// The router's strong_score in thousandths; `None` when the request
    /// was not classified (rejected before).
    pub strong_milli: Option<u32>,
    /// The expected quality lost against the baseline, in thousandths: the
    /// strong_score when the gateway chose a model other than the baseline,
    /// else 0. Reports turn it into "quality retained".
    pub risk_milli: u64,
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
        risk_milli BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX IF NOT EXISTS tollgate_ledger_ts ON tollgate_ledger (ts)"
}

const COLUMNS: usize = 22;

/// Columns added after the first release, for ledgers made before them.
const ADDED: [(&str, &str); 3] = [
    ("saved_nanos", "BIGINT NOT NULL DEFAULT 0"),
    ("strong_milli", "INTEGER"),
    ("risk_milli", "BIGINT NOT NULL DEFAULT 0"),
];

fn insert_sql(p: fn(usize) -> String) -> String {
    let params: Vec<String> = (1..=COLUMNS).map(p).collect();
    format!(
        "INSERT INTO tollgate_ledger (ts, day, request_id, key_id, team, task, complexity, route, \
         requested_model, model, prompt_tokens, completion_tokens, cost_nanos, baseline_nanos, \
         cache, status, latency_ms, ttft_ms, ending, saved_nanos, strong_milli, risk_milli) VALUES ({})",
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

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

enum Msg {
    Row(Box<Row>),
    Flush(mpsc::Sender<()>),
}

/// The handle the request path uses. Cheap to share.
pub struct Ledger {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub target: LedgerTarget,
}

impl Ledger {
    /// Starts the writer thread. The store is opened there (and reopened
    /// after failures), so an unreachable database never blocks startup.
    pub fn start(target: LedgerTarget) -> anyhow::Result<Option<Arc<Ledger>>> {
        if target == LedgerTarget::None {
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel();
        let t = target.clone();
        let writer = std::thread::Builder::new()
            .name("tollgate-ledger".into())
            .spawn(move || write_loop(&t, &rx))?;
        Ok(Some(Arc::new(Ledger {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            target,
        })))
    }

    /// Queues a row; never blocks, never fails the request.
    pub fn record(&self, row: Row) {
        let sent = self.tx.lock().ok().and_then(|tx| {
            tx.as_ref()
                .map(|tx| tx.send(Msg::Row(Box::new(row))).is_ok())
        });
        if sent != Some(true) {
            tracing::error!("ledger is closed; a row was not recorded");
        }
    }

    /// Waits until every row recorded before this call is written (or
    /// `timeout` passes). For tests and reports that must see fresh rows.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        let sent = self
            .tx
            .lock()
            .ok()
            .and_then(|tx| tx.as_ref().map(|tx| tx.send(Msg::Flush(done)).is_ok()));
        sent == Some(true) && wait.recv_timeout(timeout).is_ok()
    }

    /// Writes everything queued and stops the writer (graceful shutdown).
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(w) = writer {
            if w.join().is_err() {
                tracing::error!("the ledger writer panicked");
            }
        }
    }
}

fn write_loop(target: &LedgerTarget, rx: &mpsc::Receiver<Msg>) {
    let mut store: Option<Box<dyn Store>> = None;
    let mut batch: Vec<Row> = Vec::new();
    let mut waiting: Vec<mpsc::Sender<()>> = Vec::new();
    let mut backoff = Duration::from_millis(100);
    let mut closed = false;
    let mut closing_since: Option<Instant> = None;
    loop {
        // Gather: block for the first message when idle, then linger.
        if batch.is_empty() && waiting.is_empty() && !closed {
            match rx.recv() {
                Ok(m) => take(m, &mut batch, &mut waiting),
                Err(_) => closed = true,
            }
        }
        let deadline = Instant::now() + LINGER;
        while batch.len() < BATCH && !closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(m) => take(m, &mut batch, &mut waiting),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        if !batch.is_empty() {
            let result = match store.as_mut() {
                Some(s) => s.insert(&batch),
                None => open(target).and_then(|s| {
                    let mut s = s.ok_or_else(|| anyhow::anyhow!("no ledger configured"))?;
                    let r = s.insert(&batch);
                    store = Some(s);
                    r
                }),
            };
            match result {
                Ok(()) => {
                    batch.clear();
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(rows = batch.len(), error = %format!("{e:#}"), "ledger write failed; keeping the rows and retrying");
                    store = None;
                    if closed {
                        let since = *closing_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > CLOSE_DEADLINE {
                            tracing::error!(
                                rows = batch.len(),
                                "ledger unreachable at shutdown; these rows are lost"
                            );
                            batch.clear();
                        }
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        for w in waiting.drain(..) {
            let _ = w.send(());
        }
        if closed && batch.is_empty() {
            return;
        }
    }
}

fn take(m: Msg, batch: &mut Vec<Row>, waiting: &mut Vec<mpsc::Sender<()>>) {
    match m {
        Msg::Row(r) => batch.push(*r),
        Msg::Flush(w) => waiting.push(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn row(i: u64, team: &str, model: &str, cost: u64) -> Row {
        Row {
            ts: 1_764_288_000_000 + i64::try_from(i).unwrap() * 1000,
            request_id: format!("req_{i}"),
            key_id: format!("key-{}", i % 2),
            team: team.into(),
            task: "chat".into(),
            complexity: "low".into(),
            route: "r".into(),
            requested_model: "auto".into(),
            model: model.into(),
            prompt_tokens: 10,
            completion_tokens: 5,
            cost: Nanos(cost),
            baseline_cost: Nanos(cost * 10),
            cache: if i % 3 == 0 { "hit" } else { "miss" }.into(),
            saved: Nanos::ZERO,
            status: 200,
            latency_ms: 12,
            ttft_ms: Some(3),
            ending: "complete".into(),
            strong_milli: Some(400),
            risk_milli: if model == "gpt-4" { 0 } else { 400 },
        }
    }

    #[test]
    fn writer_batches_and_flushes_everything_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sqlite").display().to_string();
        let target = LedgerTarget::Sqlite(path);
        let ledger = Ledger::start(target.clone()).unwrap().unwrap();
        for i in 0..1000 {
            ledger.record(row(i, "web", "gpt-4", 7));
        }
        ledger.close();
        let mut store = open(&target).unwrap().unwrap();
        let total = store
            .report(&Query {
                from: 0,
                to: i64::MAX,
                by: vec![],
            })
            .unwrap();
        assert_eq!(total[0].requests, 1000);
        assert_eq!(total[0].cost, Nanos(7000));
        assert_eq!((total[0].scored, total[0].risk_milli), (1000, 0));
    }

    #[test]
    fn quality_retained_is_the_share_without_expected_loss() {
        let g = |scored, risk_milli| Group {
            scored,
            risk_milli,
            ..Group::default()
        };
        assert_eq!(g(0, 0).quality_retained_tenths(), None);
        assert_eq!(g(4, 0).quality_retained_tenths(), Some(1000));
        // Four requests, two sent to a weak model at strong_score 0.3: 85%.
        assert_eq!(g(4, 600).quality_retained_tenths(), Some(850));
        assert_eq!(g(3, 1000).quality_retained_tenths(), Some(667));
        assert_eq!(g(1, 5000).quality_retained_tenths(), Some(0));
    }
}
