//! `serve`'s log output: one line per event on stderr, written by a thread
//! of its own in batches.
//!
//! Every request logs a line when it finishes; written at once, that is a
//! `write` system call per request on the request path. Lines go over a
//! channel instead, and the writer thread, once woken, lingers `LINGER`
//! (asleep, so further lines do not wake it) and writes what gathered in
//! one call. Warnings and errors wake it at once. Order is kept: every line
//! goes the same way. `Logs::flush` (and dropping the guard `init` returns)
//! waits until what was logged is written; a process killed outright loses
//! at most the last `LINGER` of info lines.
//!
//! The channel is bounded (`QUEUE` lines): when stderr cannot keep up (a
//! stalled pipe, a flood of requests), lines past it are dropped and
//! counted, and the next write says how many, so logging never grows
//! memory without bound or blocks a request.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::thread::Thread;
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

const LINGER: Duration = Duration::from_millis(10);
/// Lines waiting for the writer at most.
const QUEUE: usize = 65_536;
/// Lines dropped since the last write because the queue was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

enum Msg {
    Line(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The writer side, shared by every thread that logs.
pub struct Logs {
    tx: Mutex<mpsc::SyncSender<Msg>>,
    writer: Thread,
}

impl Logs {
    fn start() -> Option<Logs> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
        let handle = std::thread::Builder::new()
            .name("tollgate-logs".into())
            .spawn(move || write_loop(&rx))
            .ok()?;
        Some(Logs {
            tx: Mutex::new(tx),
            writer: handle.thread().clone(),
        })
    }

    fn send(&self, m: Msg, urgent: bool) {
        let sent = self
            .tx
            .lock()
            .map(|tx| match m {
                // A flush waits for room: it is rare, and must arrive.
                Msg::Flush(_) => tx.send(m).is_ok(),
                Msg::Line(_) => match tx.try_send(m) {
                    Ok(()) => true,
                    Err(mpsc::TrySendError::Full(_)) => {
                        DROPPED.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Err(mpsc::TrySendError::Disconnected(_)) => false,
                },
            })
            .unwrap_or(false);
        if urgent && sent {
            self.writer.unpark();
        }
    }

    /// Waits (up to a second) until every line logged before is written.
    pub fn flush(&self) {
        let (ack, done) = mpsc::channel();
        self.send(Msg::Flush(ack), true);
        let _ = done.recv_timeout(Duration::from_secs(1));
    }
}

fn write_loop(rx: &mpsc::Receiver<Msg>) {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut acks = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut take = |m: Msg, out: &mut Vec<u8>| match m {
            Msg::Line(l) => out.extend_from_slice(&l),
            Msg::Flush(a) => acks.push(a),
        };
        take(first, &mut out);
        std::thread::park_timeout(LINGER);
        while let Ok(m) = rx.try_recv() {
            take(m, &mut out);
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!("tollgate: {dropped} log lines dropped (stderr fell behind)\n");
            out.extend_from_slice(note.as_bytes());
        }
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(&out).and_then(|()| stderr.flush());
        out.clear();
        for a in acks.drain(..) {
            let _ = a.send(());
        }
    }
}

/// One event's line, sent when the formatter is done with it.
pub struct Line<'a> {
    logs: &'a Logs,
    buf: Vec<u8>,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.logs.send(Msg::Line(line), self.urgent);
        }
    }
}

/// A `MakeWriter` over a leaked `Logs` (the subscriber is global).
#[derive(Clone, Copy)]
pub struct Output(&'static Logs);

impl<'a> MakeWriter<'a> for Output {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            logs: self.0,
            buf: Vec::new(),
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            logs: self.0,
            buf: Vec::new(),
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

/// Flushes the log output when dropped.
pub struct Guard(Option<&'static Logs>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(l) = self.0 {
            l.flush();
        }
    }
}

/// Installs the global subscriber: `TOLLGATE_LOG` (an `EnvFilter`) or the
/// default levels, text or JSON lines.
pub fn init(json: bool) -> Guard {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
        // mistralrs logs every loading step at info; tollgate logs the start
        // and end of loading itself.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "info,mistralrs=warn,mistralrs_core=warn,mistralrs_quant=warn",
            )
        });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    // Without a writer thread (it could not start), lines go straight out.
    let Some(logs) = Logs::start().map(|l| &*Box::leak(Box::new(l))) else {
        let b = builder.with_writer(std::io::stderr);
        if json {
            b.json().init()
        } else {
            b.init()
        }
        return Guard(None);
    };
    let b = builder.with_writer(Output(logs));
    if json {
        b.json().init()
    } else {
        b.init()
    }
    Guard(Some(logs))
}
