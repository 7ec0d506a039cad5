//! What settlements have shown of each model's billing, so that a budget
//! reservation stays an upper bound of what the upstream bills.
//!
//! Per model and request shape (`Shape`), two ratios only ever rise:
//! billed prompt tokens over the count the reservation was based on, and
//! billed completion tokens over the reserved output bound. No tokenizer
//! is trusted before `VERIFY_AFTER` settlements of the model and shape:
//! until then the prompt is held at its byte bound (`classify::counting`),
//! since an upstream may serve a known name (`gpt-3.5-turbo`) and bill by
//! another tokenizer. Then a model counted with a tokenizer reserves its
//! count times the highest ratio seen (at least one), and a model counted
//! with the byte bound reserves `cl100k × the prompt ratio` (never more
//! than the byte bound). What was learned is kept in the ledger's
//! database (`Learnt`), so restarts and replicas start from it. A settlement over
//! its reservation (an upstream that ignores `max_tokens`, say) is charged
//! in full, counted as an overrun, logged once per model and day, and
//! raises the ratios at once.
//!
//! No request can raise another tenant's reservations past reason:
//! - ratios are kept apart per shape, so an image, audio or `n > 1`
//!   request (billed far beyond its text) never raises plain text ones;
//! - a plain prompt is never reserved above its byte bound (no tokenizer
//!   bills more tokens than bytes, plus the template allowance), and an
//!   output never above what the model can produce (`Want::completion_cap`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::money::Nanos;
use crate::policy::ModelId;
use crate::upstream::Usage;

/// Ratios are kept in thousandths.
const ONE: u64 = 1000;

#[derive(Default)]
struct Learned {
    /// Highest billed/basis prompt ratio seen (0: none yet).
    prompt: AtomicU64,
    /// Highest billed/bound completion ratio above one (0: none).
    completion: AtomicU64,
    /// Settlements seen (counted up to `VERIFY_AFTER`).
    settled: AtomicU64,
}

/// Settlements of a model and shape before its prompt count is trusted
/// (times the highest ratio seen); until then a reservation holds the
/// prompt's byte bound, whatever tokenizer the model's name implies: an
/// upstream may serve a known name and bill by another tokenizer.
pub const VERIFY_AFTER: u64 = 3;

/// The kind of request a ratio is learned from and applied to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Shape {
    /// Text only, one choice: its text bounds what it bills.
    #[default]
    Plain,
    /// Images, audio, files, several choices, or server-side state
    /// (`previous_response_id`, stored prompts, built-in tools): billed
    /// beyond its text.
    Rich,
}

impl Shape {
    fn slot(self) -> usize {
        match self {
            Shape::Plain => 0,
            Shape::Rich => 1,
        }
    }
}

struct PerModel {
    shapes: [Learned; 2],
    overrun: AtomicU64,
    /// The last day (since the epoch) an overrun was logged.
    logged_day: AtomicI64,
    /// Answers charged without a price of the model's own, and the last
    /// day one was logged.
    unpriced: AtomicU64,
    unpriced_day: AtomicI64,
    /// Woken by every settlement, for reservations waiting on the first.
    settled: tokio::sync::Notify,
    /// Reservations held at the byte bound before verification, open now.
    unverified: AtomicU64,
}

/// Per model; and the generation of the ledger's `learnt::Board` last
/// merged.
pub struct Bounds(Vec<PerModel>, AtomicU64);

/// What settlements showed of one model and shape: kept in the ledger's
/// database so restarts and replicas start from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Learnt {
    pub shape: Shape,
    pub prompt_milli: u64,
    pub completion_milli: u64,
    pub settled: u64,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::Plain => "plain",
            Shape::Rich => "rich",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        match s {
            "plain" => Some(Shape::Plain),
            "rich" => Some(Shape::Rich),
            _ => None,
        }
    }
}

/// What a settlement showed (`Bounds::settle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// Charged over the reservation.
    pub over: Nanos,
    /// The first overrun of the day for the model: log it.
    pub log: bool,
    /// A ratio or the settlement count rose: keep it.
    pub learned: bool,
}

/// What a reservation holds, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    pub prompt: u64,
    /// The count the prompt ratio is measured against.
    pub basis: u64,
    pub completion: u64,
    pub shape: Shape,
    /// Before verification (`VERIFY_AFTER`): the prompt this would hold
    /// once verified (0: verified). A budget that fits that but not the
    /// byte bound waits for the first settlements (`Bounds::settled`).
    pub trusted: u64,
}

impl Hold {
    /// The prompt to charge when no usage comes back: what it would hold
    /// once verified (the count, raised by what was billed), else what it
    /// holds.
    pub fn estimate(&self) -> u64 {
        match self.trusted {
            0 => self.prompt,
            t => t,
        }
    }
}

/// What a reservation is asked for, before learning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub shape: Shape,
    /// The model counts with the byte bound.
    pub bytes: bool,
    /// The prompt by the model's counter.
    pub counted: u64,
    /// The prompt as the classifier counted it (cl100k).
    pub cl100k: u64,
    /// The output bound, all choices.
    pub completion: u64,
    /// The prompt's byte bound: a plain prompt is never held above it.
    pub prompt_cap: u64,
    /// The most the model can output for it: never held above it.
    pub completion_cap: u64,
}

fn scaled(n: u64, milli: u64) -> u64 {
    n.saturating_mul(milli).div_ceil(ONE)
}

impl Bounds {
    pub fn new(models: usize) -> Bounds {
        Bounds(
            (0..models)
                .map(|_| PerModel {
                    shapes: Default::default(),
                    overrun: AtomicU64::new(0),
                    logged_day: AtomicI64::new(0),
                    unpriced: AtomicU64::new(0),
                    unpriced_day: AtomicI64::new(i64::MIN),
                    settled: tokio::sync::Notify::new(),
                    unverified: AtomicU64::new(0),
                })
                .collect(),
            AtomicU64::new(0),
        )
    }

    /// Marks `generation` of what the ledger read back as merged;
    /// whether it was new.
    pub fn absorbed(&self, generation: u64) -> bool {
        self.1.load(Ordering::Relaxed) != generation
            && self.1.swap(generation, Ordering::Relaxed) != generation
    }

    /// The tokens to reserve on `id` for `w`.
    pub fn hold(&self, id: ModelId, w: Want) -> Hold {
        let l = &self.0[id].shapes[w.shape.slot()];
        let p = l.prompt.load(Ordering::Relaxed);
        let c = l.completion.load(Ordering::Relaxed);
        let verified = p > 0 && l.settled.load(Ordering::Relaxed) >= VERIFY_AFTER;
        let (prompt, basis) = match (w.bytes, verified) {
            (true, false) => (w.counted, w.cl100k),
            (true, true) => (scaled(w.cl100k, p).min(w.counted), w.cl100k),
            // A tokenizer not yet verified: the byte bound.
            (false, false) => (w.counted.max(w.prompt_cap), w.counted),
            (false, true) => (scaled(w.counted, p.max(ONE)), w.counted),
        };
        // What it would hold once verified, if the ratio stays as seen.
        let trusted = match w.bytes {
            true => scaled(w.cl100k, p.max(ONE)).min(w.counted),
            false => scaled(w.counted, p.max(ONE)),
        };
        let prompt = match w.shape {
            Shape::Plain => prompt.min(w.prompt_cap.max(w.counted)),
            Shape::Rich => prompt,
        };
        let completion = if c > ONE {
            scaled(w.completion, c).min(w.completion_cap.max(w.completion))
        } else {
            w.completion
        };
        Hold {
            prompt,
            basis,
            completion,
            shape: w.shape,
            trusted: if verified { 0 } else { trusted.min(prompt) },
        }
    }

    /// Learns from a settlement of `hold` on `id`; returns the overrun
    /// (what `cost` is over `reserved`), counted, whether it is the
    /// first of `day` for this model (to log), and whether anything was
    /// learned (to keep: `learned`).
    pub fn settle(
        &self,
        id: ModelId,
        hold: &Hold,
        usage: Usage,
        cost: Nanos,
        reserved: Nanos,
        day: i64,
    ) -> Settled {
        let m = &self.0[id];
        m.settled.notify_waiters();
        let l = &m.shapes[hold.shape.slot()];
        let mut learned = false;
        if hold.basis > 0 {
            let r = usage.prompt_tokens.saturating_mul(ONE).div_ceil(hold.basis);
            learned |= l.prompt.fetch_max(r.max(1), Ordering::Relaxed) < r.max(1);
            learned |= l
                .settled
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < VERIFY_AFTER).then_some(n + 1)
                })
                .is_ok();
        }
        if hold.completion > 0 && usage.completion_tokens > hold.completion {
            let r = usage
                .completion_tokens
                .saturating_mul(ONE)
                .div_ceil(hold.completion);
            learned |= l.completion.fetch_max(r, Ordering::Relaxed) < r;
        }
        let over = cost.0.saturating_sub(reserved.0);
        if over == 0 {
            return Settled {
                over: Nanos::ZERO,
                log: false,
                learned,
            };
        }
        m.overrun.fetch_add(over, Ordering::Relaxed);
        Settled {
            over: Nanos(over),
            log: m.logged_day.swap(day, Ordering::Relaxed) != day,
            learned,
        }
    }

    /// A reservation held at the byte bound before verification opened
    /// on `id` (`ended` closes it).
    pub fn opened(&self, id: ModelId) {
        self.0[id].unverified.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ended(&self, id: ModelId) {
        let m = &self.0[id];
        let _ = m
            .unverified
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        m.settled.notify_waiters();
    }

    /// Whether reservations held before verification are open on `id`:
    /// their settlements are coming.
    pub fn verifying(&self, id: ModelId) -> bool {
        self.0[id].unverified.load(Ordering::Relaxed) > 0
    }

    /// Waits until the next settlement on `id`, or `at_most`.
    pub async fn next_settlement(&self, id: ModelId, at_most: std::time::Duration) {
        let _ = tokio::time::timeout(at_most, self.0[id].settled.notified()).await;
    }

    /// Counts an answer of `id` charged without a price of its own;
    /// whether it is the first of `day` (to warn).
    pub fn unpriced(&self, id: ModelId, day: i64) -> bool {
        let m = &self.0[id];
        m.unpriced.fetch_add(1, Ordering::Relaxed);
        m.unpriced_day.swap(day, Ordering::Relaxed) != day
    }

    /// Answers of `id` charged without a price of its own, since start.
    pub fn unpriced_count(&self, id: ModelId) -> u64 {
        self.0[id].unpriced.load(Ordering::Relaxed)
    }

    /// Whether `id`'s plain-text prompt counts are verified by settlements
    /// (`VERIFY_AFTER`), and the highest billed/counted ratio seen, in
    /// thousandths.
    pub fn verified(&self, id: ModelId) -> (bool, u64) {
        let l = &self.0[id].shapes[Shape::Plain.slot()];
        let p = l.prompt.load(Ordering::Relaxed);
        (
            p > 0 && l.settled.load(Ordering::Relaxed) >= VERIFY_AFTER,
            p,
        )
    }

    /// What `id` has learned, per shape, to keep across restarts.
    pub fn learned(&self, id: ModelId) -> [Learnt; 2] {
        let l = |s: Shape| {
            let l = &self.0[id].shapes[s.slot()];
            Learnt {
                shape: s,
                prompt_milli: l.prompt.load(Ordering::Relaxed),
                completion_milli: l.completion.load(Ordering::Relaxed),
                settled: l.settled.load(Ordering::Relaxed),
            }
        };
        [l(Shape::Plain), l(Shape::Rich)]
    }

    /// Merges what was learned elsewhere (an earlier run, another
    /// replica): ratios and counts only ever rise.
    pub fn merge(&self, id: ModelId, k: &Learnt) {
        let l = &self.0[id].shapes[k.shape.slot()];
        l.prompt.fetch_max(k.prompt_milli, Ordering::Relaxed);
        l.completion
            .fetch_max(k.completion_milli, Ordering::Relaxed);
        l.settled
            .fetch_max(k.settled.min(VERIFY_AFTER), Ordering::Relaxed);
    }

    /// Money charged over reservations on `id`, since start.
    pub fn overrun(&self, id: ModelId) -> Nanos {
        Nanos(self.0[id].overrun.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests;
