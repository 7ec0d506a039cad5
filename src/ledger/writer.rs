//! The ledger writer: rows handed over a channel to a thread of its own,
//! written in batches, kept and retried while the store fails, drained on
//! close. With a journal (`journal`), each row and each reservation is
//! also appended to a local file first, so a crash loses neither.
//!
//! Every row is cleaned first (`Row::sanitize`): no client text can make
//! a store refuse it. A row a store still rejects (`Store::rejects`: a
//! constraint an operator added, say) is tried once in its batch and
//! once alone, then moved aside: appended to the dead-letter file
//! (`Aside`), counted in `tollgate_ledger_rows_rejected_total` and logged
//! at ERROR with its fields (never prompt text: rows hold none). It never
//! holds back the rows behind it. A store that is down keeps every row.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::journal::{Journal, Line, Recovery};
use super::learnt::{Board, Taught, RELOAD};
use super::{open, Row, Store};
use crate::policy::LedgerTarget;

const BATCH: usize = 512;
const LINGER: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// At shutdown, how long a failing store is retried before the rows still
/// queued are reported lost.
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

pub use super::aside::rejected_rows;
use super::aside::Aside;

enum Msg {
    Row(Box<Row>),
    Flush(mpsc::Sender<()>),
    /// A journal segment whose rows were all sent before this: removed
    /// once they are committed.
    Retire(PathBuf),
    Teach(Taught),
}

/// The sending side; one lock orders the channel and the journal.
struct Sending {
    tx: mpsc::Sender<Msg>,
    journal: Option<Journal>,
}

/// The handle the request path uses. Cheap to share.
pub struct Ledger {
    sending: Mutex<Option<Sending>>,
    /// Whether a journal was opened (`provisional` rows go nowhere else).
    journalled: bool,
    /// Returns whether every row was committed.
    writer: Mutex<Option<JoinHandle<bool>>>,
    pub target: LedgerTarget,
    /// What settlements taught, as last read back from the store.
    pub board: Arc<Board>,
}

impl Ledger {
    /// Starts the writer thread. The store is opened there (and reopened
    /// after failures), so an unreachable database never blocks startup.
    /// `journal`: the directory of the crash journal, if any; what gone
    /// processes left there is committed before any new row.
    pub fn start(
        target: LedgerTarget,
        journal: Option<&Path>,
    ) -> anyhow::Result<Option<Arc<Ledger>>> {
        if target == LedgerTarget::None {
            return Ok(None);
        }
        let journal_dir = journal;
        let (journal, recovery) = match journal.map(Journal::open) {
            None => (None, Recovery::default()),
            Some(Ok((j, r))) => (Some(j), r),
            Some(Err(e)) => {
                tracing::error!(error = %format!("{e:#}"), "no ledger journal: a crash would lose the rows still queued");
                (None, Recovery::default())
            }
        };
        let (tx, rx) = mpsc::channel();
        let t = target.clone();
        let aside = Aside::for_target(&target, journal_dir);
        let board = Arc::new(Board::default());
        let b = board.clone();
        let writer = std::thread::Builder::new()
            .name("tollgate-ledger".into())
            .spawn(move || write_loop(&t, &rx, recovery, &aside, &b))?;
        Ok(Some(Arc::new(Ledger {
            journalled: journal.is_some(),
            sending: Mutex::new(Some(Sending { tx, journal })),
            writer: Mutex::new(Some(writer)),
            target,
            board,
        })))
    }

    /// Queues what a settlement taught, to keep (`learnt`).
    pub fn teach(&self, t: Taught) {
        if let Ok(guard) = self.sending.lock() {
            if let Some(s) = guard.as_ref() {
                let _ = s.tx.send(Msg::Teach(t));
            }
        }
    }

    /// Queues a row; never blocks, never fails the request.
    pub fn record(&self, row: Row) {
        self.send(Line::Final, row);
    }

    /// Whether `provisional` rows are kept (a journal is open); callers
    /// need not build one otherwise.
    pub fn journalled(&self) -> bool {
        self.journalled
    }

    /// Journals the row a request keeps if the gateway stops before it
    /// settles (a reservation); nothing is sent to the store.
    pub fn provisional(&self, row: Row) {
        if self.journalled {
            self.send(Line::Provisional, row);
        }
    }

    fn send(&self, line: Line, mut row: Row) {
        row.sanitize();
        let Ok(mut guard) = self.sending.lock() else {
            return;
        };
        let Some(s) = guard.as_mut() else {
            if matches!(line, Line::Final) {
                tracing::error!("ledger is closed; a row was not recorded");
            }
            return;
        };
        let retired = s.journal.as_mut().and_then(|j| j.append(line, &row));
        if matches!(line, Line::Final) && s.tx.send(Msg::Row(Box::new(row))).is_err() {
            tracing::error!("the ledger writer is gone; a row was not recorded");
        }
        if let Some(p) = retired {
            let _ = s.tx.send(Msg::Retire(p));
        }
    }

    /// Waits until every row recorded before this call is written (or
    /// `timeout` passes). For tests and reports that must see fresh rows.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        let sent = self
            .sending
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|s| s.tx.send(Msg::Flush(done)).is_ok()));
        sent == Some(true) && wait.recv_timeout(timeout).is_ok()
    }

    /// Writes everything queued and stops the writer (graceful shutdown).
    /// The journal is removed only when every row was committed; else it
    /// stays for the next start to replay.
    pub fn close(&self) {
        let sending = self.sending.lock().ok().and_then(|mut s| s.take());
        let journal = sending.and_then(|s| s.journal);
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        let Some(w) = writer else {
            return;
        };
        match w.join() {
            Ok(true) => {
                if let Some(j) = journal {
                    j.finish();
                }
            }
            Ok(false) => tracing::error!(
                "rows were left uncommitted; the ledger journal keeps them for the next start"
            ),
            Err(_) => tracing::error!("the ledger writer panicked"),
        }
    }
}

fn write_loop(
    target: &LedgerTarget,
    rx: &mpsc::Receiver<Msg>,
    recovery: Recovery,
    aside: &Aside,
    board: &Board,
) -> bool {
    let mut store: Option<Box<dyn Store>> = None;
    let mut read_back: Option<Instant> = None;
    let mut recovery = (!recovery.is_empty()).then_some(recovery);
    let mut batch: Vec<Row> = Vec::new();
    let mut waiting = Waiting::default();
    let mut backoff = Duration::from_millis(100);
    let mut closed = false;
    let mut closing_since: Option<Instant> = None;
    loop {
        // Gather: block for the first message when idle, then linger.
        if read_back.is_none_or(|t| t.elapsed() >= RELOAD) {
            read_back = Some(Instant::now());
            learn(target, &mut store, board);
        }
        if batch.is_empty() && waiting.is_empty() && recovery.is_none() && !closed {
            match rx.recv_timeout(RELOAD) {
                Ok(m) => take(m, &mut batch, &mut waiting),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
            }
        }
        // Linger asleep, not parked on the channel: a receiver waiting in
        // `recv` is woken by every send (a context switch per request, 10%
        // of the gateway's CPU at 2,000 RPS); asleep, senders only enqueue.
        // A backlog that already fills a batch is written at once.
        let drain = |batch: &mut Vec<Row>, waiting: &mut Waiting| {
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => take(m, batch, waiting),
                    Err(mpsc::TryRecvError::Empty) => return false,
                    Err(mpsc::TryRecvError::Disconnected) => return true,
                }
            }
            false
        };
        closed |= drain(&mut batch, &mut waiting);
        if batch.len() < BATCH && !closed {
            std::thread::sleep(LINGER);
            closed |= drain(&mut batch, &mut waiting);
        }
        if !batch.is_empty() || recovery.is_some() || !waiting.taught.is_empty() {
            let result = commit(target, &mut store, &mut recovery, &mut batch, aside)
                .and_then(|()| teach(&mut store, &mut waiting.taught));
            match result {
                Ok(()) => {
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
                                "ledger unreachable at shutdown; these rows are lost unless a journal keeps them"
                            );
                            return false;
                        }
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        waiting.release();
        if closed && batch.is_empty() {
            return true;
        }
    }
}

/// Reads back what every process taught (opening the store if needed).
fn learn(target: &LedgerTarget, store: &mut Option<Box<dyn Store>>, board: &Board) {
    let s = match store {
        Some(s) => s,
        None => match open(target) {
            Ok(Some(s)) => store.insert(s),
            _ => return,
        },
    };
    match s.taught() {
        Ok(rows) => board.put(rows),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the learned billing ratios back")
        }
    }
}

/// Keeps what settlements taught, after the rows of the same batch.
fn teach(store: &mut Option<Box<dyn Store>>, taught: &mut Vec<Taught>) -> anyhow::Result<()> {
    if let (Some(s), false) = (store.as_mut(), taught.is_empty()) {
        s.teach(taught)?;
        taught.clear();
    }
    Ok(())
}

/// Opens the store if needed, replays a recovery, inserts the batch
/// (emptied as its rows are committed or moved aside).
fn commit(
    target: &LedgerTarget,
    store: &mut Option<Box<dyn Store>>,
    recovery: &mut Option<Recovery>,
    batch: &mut Vec<Row>,
    aside: &Aside,
) -> anyhow::Result<()> {
    let s = match store {
        Some(s) => s,
        None => store.insert(open(target)?.ok_or_else(|| anyhow::anyhow!("no ledger configured"))?),
    };
    if let Some(r) = recovery {
        r.replay(s.as_mut(), |s, rows| insert(s, rows, aside))?;
        *recovery = None;
    }
    insert(s.as_mut(), batch, aside)
}

/// Inserts `rows` in one transaction; when the store rejects it for its
/// data, row by row, moving aside those it rejects alone. Committed and
/// rejected rows leave `rows`; on any other error (the store is down)
/// what is left is kept for the retry.
fn insert(s: &mut dyn Store, rows: &mut Vec<Row>, aside: &Aside) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    match s.insert(rows) {
        Ok(()) => {
            rows.clear();
            return Ok(());
        }
        Err(e) if !s.rejects(&e) => return Err(e),
        Err(_) => {}
    }
    let mut left = std::mem::take(rows).into_iter();
    while let Some(r) = left.next() {
        match s.insert(std::slice::from_ref(&r)) {
            Ok(()) => {}
            Err(e) if s.rejects(&e) => aside.put(&r, &e),
            Err(e) => {
                rows.push(r);
                rows.extend(left);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// What waits on the rows gathered so far being committed.
#[derive(Default)]
struct Waiting {
    flushes: Vec<mpsc::Sender<()>>,
    retired: Vec<PathBuf>,
    taught: Vec<Taught>,
}

impl Waiting {
    fn is_empty(&self) -> bool {
        self.flushes.is_empty() && self.retired.is_empty() && self.taught.is_empty()
    }

    fn release(&mut self) {
        for w in self.flushes.drain(..) {
            let _ = w.send(());
        }
        for p in self.retired.drain(..) {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(error = %e, "cannot remove a ledger journal segment");
            }
        }
    }
}

fn take(m: Msg, batch: &mut Vec<Row>, waiting: &mut Waiting) {
    match m {
        Msg::Row(r) => batch.push(*r),
        Msg::Flush(w) => waiting.flushes.push(w),
        Msg::Retire(p) => waiting.retired.push(p),
        Msg::Teach(t) => waiting.taught.push(t),
    }
}
