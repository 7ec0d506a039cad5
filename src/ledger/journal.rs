//! The ledger's journal: what a crash must not lose.
//!
//! The writer commits rows in batches, so a process that is killed
//! (SIGKILL, the OOM killer, an abort) would lose the rows still queued,
//! and the requests in flight would leave no trace although the upstream
//! may have billed them; an in-memory budget rebuilt from that ledger would
//! hand their money out again. The journal closes both gaps. Before the
//! writer is handed a row, the row is appended to a local file, and so is
//! every reservation, as the provisional row of a request that ends there:
//! charged at what was reserved, `ending` = `interrupted`, status 0. Each
//! is one `write`, no `fsync`: the kernel keeps it when the process dies.
//!
//! At startup the journals of processes that are gone are replayed: rows
//! the store does not hold yet (matched by request id, time and key) are
//! inserted, a reservation without its row becomes its provisional row, and
//! the files are removed once that is committed. A machine crash (power,
//! kernel) can still lose what the kernel had not written back.
//!
//! Layout: a directory; each process holds an exclusive lock on
//! `<owner>.lock` for its life and writes `<owner>.<seq>.log`. A segment is
//! rotated at `SEGMENT_BYTES`, carrying the open reservations into the
//! next, and removed once the writer has committed its rows. A lock that
//! can be taken belongs to a process that is gone.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Row, Store};

const SEGMENT_BYTES: u64 = 4 << 20;

/// One process's journal. Not shared: the ledger keeps it behind the
/// lock that also orders its channel.
pub struct Journal {
    dir: PathBuf,
    owner: String,
    lock: Option<File>,
    file: File,
    seq: u64,
    bytes: u64,
    /// Reservations without their row yet, as written.
    open: HashMap<String, Vec<u8>>,
    failing: bool,
}

#[derive(Clone, Copy)]
pub enum Line {
    /// A reservation: the row to keep if the request never settles.
    Provisional,
    /// The request's row.
    Final,
}

/// What processes that are gone left behind, to replay before anything
/// else is written.
#[derive(Default)]
pub struct Recovery {
    pub(super) rows: Vec<Row>,
    files: Vec<PathBuf>,
    /// The dead owners' locks, held until their files are removed so
    /// another starting process does not replay them too.
    _held: Vec<File>,
}

/// The identity of a request's row, in the journal and in the store.
pub fn key(request_id: &str, ts: i64, key_id: &str) -> String {
    format!("{request_id}\u{1f}{ts}\u{1f}{key_id}")
}

impl Journal {
    /// Opens `dir` (creating it), takes this process's lock, and gathers
    /// what gone processes left.
    pub fn open(dir: &Path) -> anyhow::Result<(Journal, Recovery)> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("creating the ledger journal {}: {e}", dir.display()))?;
        let now = crate::clock::Clock::System.now();
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let owner = format!("{}-{now}-{n}", std::process::id());
        let lock = File::create(dir.join(format!("{owner}.lock")))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("locking the ledger journal: {e}"))?;
        let recovery = gather(dir, &owner)?;
        let file = segment(dir, &owner, 0)?;
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                owner,
                lock: Some(lock),
                file,
                seq: 0,
                bytes: 0,
                open: HashMap::new(),
                failing: false,
            },
            recovery,
        ))
    }

    /// Appends `row`. Returns the segment that was rotated out, if this
    /// line filled it: it may be removed once the rows sent before it are
    /// committed.
    pub fn append(&mut self, line: Line, row: &Row) -> Option<PathBuf> {
        let mut text = match line {
            Line::Provisional => b"R ".to_vec(),
            Line::Final => b"S ".to_vec(),
        };
        if serde_json::to_writer(&mut text, row).is_err() {
            return None;
        }
        text.push(b'\n');
        let k = key(&row.request_id, row.ts, &row.key_id);
        self.write(&text);
        match line {
            Line::Provisional => {
                self.open.insert(k, text);
            }
            Line::Final => {
                self.open.remove(&k);
            }
        }
        (self.bytes >= SEGMENT_BYTES)
            .then(|| self.rotate())
            .flatten()
    }

    fn write(&mut self, text: &[u8]) {
        match self.file.write_all(text) {
            Ok(()) => {
                self.bytes += text.len() as u64;
                if self.failing {
                    self.failing = false;
                    tracing::info!("the ledger journal is written again");
                }
            }
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!(error = %e, "cannot write the ledger journal; rows still go to the ledger, but a crash now would lose the ones queued");
            }
            Err(_) => {}
        }
    }

    fn rotate(&mut self) -> Option<PathBuf> {
        let next = match segment(&self.dir, &self.owner, self.seq + 1) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "cannot rotate the ledger journal; it keeps growing");
                return None;
            }
        };
        let old = self.path(self.seq);
        self.file = next;
        self.seq += 1;
        self.bytes = 0;
        let carried: Vec<Vec<u8>> = self.open.values().cloned().collect();
        for text in carried {
            self.write(&text);
        }
        Some(old)
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{}.{seq}.log", self.owner))
    }

    /// Everything was committed (a graceful close): the journal is removed.
    pub fn finish(mut self) {
        for p in [
            self.path(self.seq),
            self.dir.join(format!("{}.lock", self.owner)),
        ] {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(error = %e, "cannot remove a ledger journal file");
            }
        }
        self.lock.take();
    }
}

fn segment(dir: &Path, owner: &str, seq: u64) -> anyhow::Result<File> {
    let path = dir.join(format!("{owner}.{seq}.log"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))
}

/// Reads the segments of every owner whose lock can be taken.
fn gather(dir: &Path, me: &str) -> anyhow::Result<Recovery> {
    let mut segments: HashMap<String, Vec<(u64, PathBuf)>> = HashMap::new();
    let mut locks: HashMap<String, PathBuf> = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(owner) = name.strip_suffix(".lock") {
            locks.insert(owner.to_string(), path.clone());
        } else if let Some((owner, seq)) = name
            .strip_suffix(".log")
            .and_then(|s| s.rsplit_once('.'))
            .and_then(|(o, s)| Some((o, s.parse::<u64>().ok()?)))
        {
            segments
                .entry(owner.to_string())
                .or_default()
                .push((seq, path.clone()));
        }
    }
    let mut rec = Recovery::default();
    let mut rows: HashMap<String, (Row, bool)> = HashMap::new();
    // Gone: an owner whose lock can be taken (held until its files are
    // removed), or whose lock file is already gone (removed mid-cleanup).
    let mut gone: Vec<&String> = Vec::new();
    let mut dead_locks = Vec::new();
    for (owner, lock_path) in locks.iter().filter(|(o, _)| *o != me) {
        let Ok(f) = File::open(lock_path) else {
            continue;
        };
        if f.try_lock().is_ok() {
            rec._held.push(f);
            dead_locks.push(lock_path.clone());
            gone.push(owner);
        }
    }
    gone.extend(
        segments
            .keys()
            .filter(|o| *o != me && !locks.contains_key(*o)),
    );
    for owner in gone {
        let mut segs = segments.get(owner).cloned().unwrap_or_default();
        segs.sort();
        for (_, p) in segs {
            read_segment(&p, &mut rows);
            rec.files.push(p);
        }
    }
    // Locks last: a cleanup cut short leaves segments that are still found.
    rec.files.extend(dead_locks);
    rec.rows = rows.into_values().map(|(r, _)| r).collect();
    rec.rows.sort_by_key(|r| r.ts);
    Ok(rec)
}

/// Adds a segment's lines: a final row replaces anything; a reservation
/// replaces an earlier reservation only.
fn read_segment(path: &Path, rows: &mut HashMap<String, (Row, bool)>) {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a ledger journal segment");
            return;
        }
    };
    let mut torn = 0usize;
    for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let (kind, body) = line.split_at(line.len().min(2));
        let Ok(row) = serde_json::from_slice::<Row>(body) else {
            torn += 1;
            continue;
        };
        let k = key(&row.request_id, row.ts, &row.key_id);
        match kind {
            b"S " => {
                rows.insert(k, (row, true));
            }
            b"R " if !rows.get(&k).is_some_and(|(_, fin)| *fin) => {
                rows.insert(k, (row, false));
            }
            _ => {}
        }
    }
    if torn > 0 {
        tracing::warn!(lines = torn, "skipped unreadable ledger journal lines");
    }
}

impl Recovery {
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.files.is_empty()
    }

    /// Inserts the rows `store` does not hold yet with `insert` (the
    /// writer's, which moves aside rows the store rejects), then removes
    /// the files.
    pub fn replay(
        &self,
        store: &mut dyn Store,
        insert: impl FnOnce(&mut dyn Store, &mut Vec<Row>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if let Some(from) = self.rows.iter().map(|r| r.ts).min() {
            let seen: HashSet<String> = store.seen_since(from)?;
            // Cleaned as the writer cleans rows (journals written before
            // it did may hold raw text), so keys match what was stored.
            let mut missing: Vec<Row> = self
                .rows
                .iter()
                .cloned()
                .map(|mut r| {
                    r.sanitize();
                    r
                })
                .filter(|r| !seen.contains(&key(&r.request_id, r.ts, &r.key_id)))
                .collect();
            let interrupted = missing.iter().filter(|r| r.ending == "interrupted").count();
            let count = missing.len();
            if !missing.is_empty() {
                insert(store, &mut missing)?;
            }
            tracing::warn!(
                rows = count,
                interrupted,
                "recovered ledger rows a stopped process had not committed; interrupted requests are charged what they reserved"
            );
        }
        for p in &self.files {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(error = %e, "cannot remove a replayed ledger journal file");
            }
        }
        Ok(())
    }
}
