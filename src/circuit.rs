//! Circuit breakers: one per model. After `failures` consecutive upstream
//! failures (connect errors, timeouts, 5xx, malformed replies; not 429 or a
//! full local queue, which say "busy", not "broken") the circuit opens and
//! routes skip the model for `cooldown`. Then one request is let through as
//! a probe (half-open): success closes the circuit, failure opens it again.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::upstream::RetryReason;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe is in flight; everyone else skips. A probe that never
    /// reports (its client left) is replaced after another cool-down.
    HalfOpen {
        since: Instant,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub failures: u32,
    pub cooldown: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            failures: 5,
            cooldown: Duration::from_secs(30),
        }
    }
}

pub struct Breaker {
    cfg: Config,
    state: Mutex<State>,
}

/// May this request try the model?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Yes, as the half-open probe.
    Probe,
    No,
}

impl Breaker {
    pub fn new(cfg: Config) -> Breaker {
        Breaker {
            cfg,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    pub fn state(&self) -> State {
        self.state
            .lock()
            .map_or(State::Closed { failures: 0 }, |s| *s)
    }

    pub fn admit(&self, now: Instant) -> Admit {
        let Ok(mut s) = self.state.lock() else {
            return Admit::Yes;
        };
        match *s {
            State::Closed { .. } => Admit::Yes,
            State::Open { until } if now >= until => {
                *s = State::HalfOpen { since: now };
                Admit::Probe
            }
            State::HalfOpen { since } if now >= since + self.cfg.cooldown => {
                *s = State::HalfOpen { since: now };
                Admit::Probe
            }
            State::Open { .. } | State::HalfOpen { .. } => Admit::No,
        }
    }

    /// Records an attempt's outcome; returns the new state when it changed.
    pub fn record(&self, outcome: Result<(), &RetryReason>, now: Instant) -> Option<State> {
        let counts = match outcome {
            Ok(()) => false,
            Err(r) => {
                matches!(
                    r,
                    RetryReason::Connect(_) | RetryReason::Timeout | RetryReason::Malformed(_)
                ) || matches!(r, RetryReason::Status { status, .. } if *status >= 500)
            }
        };
        let Ok(mut s) = self.state.lock() else {
            return None;
        };
        let before = *s;
        *s = match (before, outcome.is_ok(), counts) {
            (_, true, _) => State::Closed { failures: 0 },
            (State::HalfOpen { .. }, false, true) => State::Open {
                until: now + self.cfg.cooldown,
            },
            (State::Closed { failures }, false, true) if failures + 1 >= self.cfg.failures => {
                State::Open {
                    until: now + self.cfg.cooldown,
                }
            }
            (State::Closed { failures }, false, true) => State::Closed {
                failures: failures + 1,
            },
            // A failure that says nothing about health (429, busy): a probe
            // that got one leaves the circuit closed; otherwise unchanged.
            (State::HalfOpen { .. }, false, false) => State::Closed { failures: 0 },
            (other, false, _) => other,
        };
        let changed = std::mem::discriminant(&before) != std::mem::discriminant(&*s);
        changed.then_some(*s)
    }
}

#[cfg(test)]
mod tests;
