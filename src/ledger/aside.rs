//! The dead-letter file: rows a store rejected for their data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::Row;
use crate::policy::LedgerTarget;

/// Rows the stores rejected and moved aside, since start (all ledgers).
static REJECTED: AtomicU64 = AtomicU64::new(0);

/// Rows the store rejected and the writer moved aside, since start.
pub fn rejected_rows() -> u64 {
    REJECTED.load(Ordering::Relaxed)
}

/// Where rejected rows go: a JSON-lines file (`None`: the error log only).
pub struct Aside(Option<PathBuf>);

impl Aside {
    /// Beside a SQLite ledger (`<file>.rejected.jsonl`), else in the
    /// journal directory when there is one.
    pub(super) fn for_target(target: &LedgerTarget, journal: Option<&Path>) -> Aside {
        Aside(match target {
            LedgerTarget::Sqlite(path) => Some(PathBuf::from(format!("{path}.rejected.jsonl"))),
            _ => journal.map(|d| d.join("rejected.jsonl")),
        })
    }

    pub(super) fn put(&self, row: &Row, e: &anyhow::Error) {
        REJECTED.fetch_add(1, Ordering::Relaxed);
        let line = serde_json::to_string(row).unwrap_or_default();
        let saved = self.0.as_ref().map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()))
                .map(|()| p.display().to_string())
        });
        let file = match saved {
            Some(Ok(p)) => p,
            Some(Err(w)) => format!("(not saved: {w})"),
            None => "(no dead-letter file)".to_string(),
        };
        tracing::error!(error = %format!("{e:#}"), row = %line, dead_letter = %file,
            "the ledger store rejected a row; moved aside so later rows are not held back");
    }
}
