//! What settlements have shown of each model's billing, so that a budget
//! reservation stays an upper bound of what the upstream bills.
//!
//! Per model and request shape (`Shape`), two ratios only ever rise:
//! billed prompt tokens over the count the reservation was based on, and
//! billed completion tokens over the reserved output bound. A model
//! counted with the byte bound (`classify::counting`) reserves `cl100k ×
//! the prompt ratio` once one settlement has been seen (never more than
//! the byte bound); a model counted exactly reserves its count, raised by
//! the ratio when an upstream has billed more than it. A settlement over
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
}

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
}

pub struct Bounds(Vec<PerModel>);

/// What a reservation holds, in tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hold {
    pub prompt: u64,
    /// The count the prompt ratio is measured against.
    pub basis: u64,
    pub completion: u64,
    pub shape: Shape,
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
                })
                .collect(),
        )
    }

    /// The tokens to reserve on `id` for `w`.
    pub fn hold(&self, id: ModelId, w: Want) -> Hold {
        let l = &self.0[id].shapes[w.shape.slot()];
        let p = l.prompt.load(Ordering::Relaxed);
        let c = l.completion.load(Ordering::Relaxed);
        let (prompt, basis) = match (w.bytes, p) {
            (true, 0) => (w.counted, w.cl100k),
            (true, p) => (scaled(w.cl100k, p).min(w.counted), w.cl100k),
            (false, p) if p > ONE => (scaled(w.counted, p), w.counted),
            (false, _) => (w.counted, w.counted),
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
        }
    }

    /// Learns from a settlement of `hold` on `id`; returns the overrun
    /// (what `cost` is over `reserved`), counted, and whether it is the
    /// first of `day` for this model (to log).
    pub fn settle(
        &self,
        id: ModelId,
        hold: &Hold,
        usage: Usage,
        cost: Nanos,
        reserved: Nanos,
        day: i64,
    ) -> (Nanos, bool) {
        let m = &self.0[id];
        let l = &m.shapes[hold.shape.slot()];
        if hold.basis > 0 {
            let r = usage.prompt_tokens.saturating_mul(ONE).div_ceil(hold.basis);
            l.prompt.fetch_max(r.max(1), Ordering::Relaxed);
        }
        if hold.completion > 0 && usage.completion_tokens > hold.completion {
            let r = usage
                .completion_tokens
                .saturating_mul(ONE)
                .div_ceil(hold.completion);
            l.completion.fetch_max(r, Ordering::Relaxed);
        }
        let over = cost.0.saturating_sub(reserved.0);
        if over == 0 {
            return (Nanos::ZERO, false);
        }
        m.overrun.fetch_add(over, Ordering::Relaxed);
        let first = m.logged_day.swap(day, Ordering::Relaxed) != day;
        (Nanos(over), first)
    }

    /// Money charged over reservations on `id`, since start.
    pub fn overrun(&self, id: ModelId) -> Nanos {
        Nanos(self.0[id].overrun.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(p: u64, c: u64) -> Usage {
        Usage::new(p, c)
    }

    fn want(bytes: bool, counted: u64, cl100k: u64, completion: u64) -> Want {
        Want {
            shape: Shape::Plain,
            bytes,
            counted,
            cl100k,
            completion,
            prompt_cap: if bytes { counted } else { u64::MAX },
            completion_cap: u64::MAX,
        }
    }

    #[test]
    fn the_byte_bound_tightens_to_what_was_billed_and_never_below() {
        let b = Bounds::new(1);
        let first = b.hold(0, want(true, 400, 100, 16));
        assert_eq!((first.prompt, first.basis), (400, 100));
        // Billed 2× cl100k: later holds reserve exactly that.
        b.settle(0, &first, usage(200, 16), Nanos(10), Nanos(20), 1);
        assert_eq!(b.hold(0, want(true, 400, 50, 16)).prompt, 100);
        // A lower ratio later does not loosen it.
        b.settle(0, &first, usage(120, 16), Nanos(10), Nanos(20), 1);
        assert_eq!(b.hold(0, want(true, 400, 50, 16)).prompt, 100);
        // Never above the byte bound.
        assert_eq!(b.hold(0, want(true, 150, 100, 16)).prompt, 150);
    }

    #[test]
    fn an_overrun_is_counted_logged_once_a_day_and_raises_the_bounds() {
        let b = Bounds::new(2);
        let h = b.hold(1, want(false, 10, 10, 1));
        assert_eq!(
            h,
            Hold {
                prompt: 10,
                basis: 10,
                completion: 1,
                shape: Shape::Plain,
            }
        );
        // An upstream that ignored max_tokens: 7 billed for 1 reserved.
        let (over, log) = b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 5);
        assert_eq!((over, log), (Nanos(60), true));
        let (_, log) = b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 5);
        assert!(!log, "once a day");
        assert!(b.settle(1, &h, usage(10, 7), Nanos(170), Nanos(110), 6).1);
        assert_eq!(b.overrun(1), Nanos(180));
        assert_eq!(b.hold(1, want(false, 10, 10, 1)).completion, 7);
        assert_eq!(b.hold(1, want(false, 10, 10, 3)).completion, 21);
        // An exact counter billed over: raised by the ratio.
        b.settle(1, &h, usage(15, 1), Nanos(0), Nanos(0), 6);
        assert_eq!(b.hold(1, want(false, 20, 20, 1)).prompt, 30);
        assert_eq!(b.overrun(0), Nanos::ZERO);
    }

    #[test]
    fn a_rich_request_never_raises_plain_text_holds_and_caps_hold() {
        let b = Bounds::new(1);
        // An image billed 800 tokens on a 10-token text prompt, and four
        // choices billed where one was bounded.
        let rich = Want {
            shape: Shape::Rich,
            ..want(false, 10, 10, 5)
        };
        let h = b.hold(0, rich);
        b.settle(0, &h, usage(800, 20), Nanos(0), Nanos(0), 1);
        assert_eq!(b.hold(0, rich).prompt, 800, "rich requests learn");
        let plain = Want {
            prompt_cap: 60,
            completion_cap: 100,
            ..want(false, 10, 10, 5)
        };
        assert_eq!(
            (b.hold(0, plain).prompt, b.hold(0, plain).completion),
            (10, 5),
            "plain text is untouched"
        );
        // Plain billing itself past the byte bound or the model's output
        // can still only raise holds up to those caps.
        let h = b.hold(0, plain);
        b.settle(0, &h, usage(10_000, 5_000), Nanos(0), Nanos(0), 1);
        let after = b.hold(0, plain);
        assert_eq!((after.prompt, after.completion), (60, 100));
    }
}
