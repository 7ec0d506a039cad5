//! Rate limits: requests and tokens per minute, per key, team or model.
//!
//! GCRA everywhere: a limit of N per minute admits a burst of N, then one
//! more every 60/N seconds. In memory it is `governor`'s keyed limiter
//! (`memory`); in Redis one Lua script checks every applicable limit and
//! consumes from all of them only when all admit, on Redis's clock, so
//! replicas agree (`redis`).
//!
//! Tokens: the prompt tokens counted at admission are taken up front; when
//! the real usage is known, the completion (and any prompt difference) is
//! taken too (`LimitGuard::correct`), so the next requests see it. In
//! memory that correction is best effort: governor cannot take more than
//! is left.
//!
//! `LimitGuard` decides which limits apply (scope matching) above the
//! stores; an unreachable store is `Denial::Unavailable`, and what that
//! means for the request is decided by `state::unreachable`.

mod memory;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryLimits;
pub use redis::RedisLimits;

use super::{Fut, Unavailable};
use crate::policy::{RateLimit, Scope, Subject};

/// Which limit, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Tokens,
}

/// The state of the tightest limit of one kind after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: u32,
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Verdict {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

impl Verdict {
    /// Merges another decision's verdict into this one (tightest wins).
    pub fn merge(&mut self, v: Verdict) {
        for (slot, w) in [
            (&mut self.requests, v.requests),
            (&mut self.tokens, v.tokens),
        ] {
            if let Some(w) = w {
                tighten(slot, w);
            }
        }
    }
}

/// Over a limit.
#[derive(Debug, Clone)]
pub struct Limited {
    /// The limit's name.
    pub limit: String,
    pub kind: Kind,
    /// `None`: never, the request alone exceeds the limit.
    pub retry_after: Option<Duration>,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub enum Denial {
    Limited(Limited),
    Unavailable,
}

/// One applicable limit: its index in the definitions and the subject it
/// counts (`""` for global).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub limit: usize,
    pub subject: String,
}

/// A store of GCRA limiters; `defs` (the limits, by index) are its own copy.
pub trait RateLimits: Send + Sync {
    /// Takes one request and `tokens` tokens from every hit.
    fn admit<'a>(
        &'a self,
        hits: &'a [Hit],
        tokens: u32,
    ) -> Fut<'a, Result<Result<Verdict, Limited>, Unavailable>>;
    /// Takes `extra` more tokens from every hit's token limit, unchecked
    /// (usage known after the fact).
    fn take<'a>(&'a self, hits: &'a [Hit], extra: u32) -> Fut<'a, Result<(), Unavailable>>;
    /// True when every call completes without I/O (at its first poll).
    fn is_local(&self) -> bool;
}

/// The rate limits of a gateway: scope matching above a store.
pub struct LimitGuard {
    defs: Vec<RateLimit>,
    store: Arc<dyn RateLimits>,
    /// Whether any limit is on a model, on a key/team/global, on tokens:
    /// lets the request path skip lookups that cannot match.
    model_scoped: bool,
    request_scoped: bool,
    tokens: bool,
}

impl LimitGuard {
    pub fn new(defs: Vec<RateLimit>, store: Arc<dyn RateLimits>) -> LimitGuard {
        let model_scoped = defs.iter().any(|d| matches!(d.scope, Scope::Model(_)));
        LimitGuard {
            model_scoped,
            request_scoped: defs.iter().any(|d| !matches!(d.scope, Scope::Model(_))),
            tokens: defs.iter().any(|d| d.tokens_per_minute.is_some()),
            defs,
            store,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    pub fn counts_tokens(&self) -> bool {
        self.tokens
    }

    /// The limits that apply to `s`: with `model: None` the key, team and
    /// global ones (at admission); with `Some` only that model's.
    fn hits(&self, s: Subject<'_>) -> Vec<Hit> {
        let relevant = if s.model.is_some() {
            self.model_scoped
        } else {
            self.request_scoped
        };
        if !relevant {
            return Vec::new();
        }
        self.defs
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d.scope, Scope::Model(_)) == s.model.is_some())
            .filter_map(|(i, d)| {
                d.scope.subject(s).map(|v| Hit {
                    limit: i,
                    subject: v.to_string(),
                })
            })
            .collect()
    }

    /// Takes one request and `tokens` tokens from every limit that applies.
    pub async fn admit(&self, s: Subject<'_>, tokens: u32) -> Result<Verdict, Denial> {
        let hits = self.hits(s);
        if hits.is_empty() {
            return Ok(Verdict::default());
        }
        match self.store.admit(&hits, tokens).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(l)) => Err(Denial::Limited(l)),
            Err(Unavailable) => Err(Denial::Unavailable),
        }
    }

    /// Takes `extra` more tokens (the completion, once usage is known)
    /// from the limits of `s` and of `model`: at once for a local store,
    /// else on `tasks`.
    pub fn correct(
        self: &Arc<Self>,
        s: Subject<'_>,
        model: Option<&str>,
        extra: u32,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        use futures::FutureExt;
        if extra == 0 || !self.tokens {
            return;
        }
        let mut hits = self.hits(Subject { model: None, ..s });
        if let Some(m) = model {
            hits.extend(self.hits(Subject {
                model: Some(m),
                ..s
            }));
        }
        hits.retain(|h| self.defs[h.limit].tokens_per_minute.is_some());
        if hits.is_empty() {
            return;
        }
        if self.store.is_local() {
            let _ = self.store.take(&hits, extra).now_or_never();
            return;
        }
        let me = self.clone();
        tasks.spawn(async move {
            let _ = me.store.take(&hits, extra).await;
        });
    }
}

fn window(limit: u32, remaining: u32) -> Window {
    // Each used unit comes back after 60/limit seconds.
    let used = u64::from(limit.saturating_sub(remaining));
    Window {
        limit,
        remaining,
        reset: Duration::from_millis(used * 60_000 / u64::from(limit.max(1))),
    }
}

/// Keeps the window with the fewest remaining.
fn tighten(slot: &mut Option<Window>, w: Window) {
    if slot.is_none_or(|s| w.remaining < s.remaining) {
        *slot = Some(w);
    }
}

/// `20ms`, `1s`, `6m0s`: how OpenAI writes `x-ratelimit-reset-*`.
pub fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let s = ms.div_ceil(1000);
        if s < 60 {
            format!("{s}s")
        } else {
            format!("{}m{}s", s / 60, s % 60)
        }
    }
}

#[cfg(test)]
mod tests;
