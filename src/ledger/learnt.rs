//! What settlements taught the gateway of each upstream's billing
//! (`state::bounds::Learnt`), kept in the ledger's database beside the
//! rows: a restart starts from it, and replicas sharing a PostgreSQL
//! ledger learn from each other within `RELOAD`. Values only ever rise;
//! each store upserts with its own `max`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::state::bounds::{Learnt, Shape};

/// How often the writer reads back what other processes learned.
pub const RELOAD: Duration = Duration::from_secs(10);

/// One upstream model's learning, by provider and upstream model name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taught {
    pub provider: String,
    pub model: String,
    pub learnt: Learnt,
}

/// What the writer last read from the store, for the gateway to merge.
#[derive(Default)]
pub struct Board {
    generation: AtomicU64,
    rows: Mutex<Vec<Taught>>,
}

impl Board {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn rows(&self) -> Vec<Taught> {
        self.rows.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub(super) fn put(&self, rows: Vec<Taught>) {
        if let Ok(mut r) = self.rows.lock() {
            *r = rows;
        }
        self.generation.fetch_add(1, Ordering::Release);
    }
}

pub(super) const TABLE: &str = "CREATE TABLE IF NOT EXISTS tollgate_learnt (
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        shape TEXT NOT NULL,
        prompt_milli BIGINT NOT NULL,
        completion_milli BIGINT NOT NULL,
        settled BIGINT NOT NULL,
        PRIMARY KEY (provider, model, shape)
    )";

pub(super) const SELECT: &str =
    "SELECT provider, model, shape, prompt_milli, completion_milli, settled FROM tollgate_learnt";

/// The upsert; `max` is the store's two-argument maximum (SQLite `MAX`,
/// PostgreSQL `GREATEST`), `p` its placeholders.
pub(super) fn upsert(max: &str, p: fn(usize) -> String) -> String {
    let keep = |c: &str| format!("{c} = {max}(tollgate_learnt.{c}, excluded.{c})");
    format!(
        "INSERT INTO tollgate_learnt (provider, model, shape, prompt_milli, completion_milli, settled) \
         VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (provider, model, shape) DO UPDATE SET {}, {}, {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        keep("prompt_milli"),
        keep("completion_milli"),
        keep("settled")
    )
}

/// A row read back: (provider, model, shape, prompt, completion, settled).
pub(super) fn taught(row: (String, String, String, i64, i64, i64)) -> Option<Taught> {
    let (provider, model, shape, p, c, s) = row;
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    Some(Taught {
        provider,
        model,
        learnt: Learnt {
            shape: Shape::parse(&shape)?,
            prompt_milli: n(p),
            completion_milli: n(c),
            settled: n(s),
        },
    })
}
