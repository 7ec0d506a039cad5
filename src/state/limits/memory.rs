//! Rate limits in this process's memory: `governor`'s keyed GCRA
//! limiters, one for requests and one for tokens per limit.

use std::num::NonZeroU32;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{tighten, window, Hit, Kind, Limited, RateLimits, Verdict};
use crate::policy::RateLimit;
use crate::state::{Fut, Unavailable};

type Keyed = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

pub struct MemoryLimits {
    defs: Vec<RateLimit>,
    /// Per limit: its request limiter and its token limiter.
    limiters: Vec<(Option<Keyed>, Option<Keyed>)>,
    /// Made once: creating a quanta clock runs CPUID (it showed up as 15%
    /// of gateway CPU when made per request).
    clock: DefaultClock,
}

impl MemoryLimits {
    pub fn new(defs: Vec<RateLimit>) -> MemoryLimits {
        let make = |n: Option<u32>| {
            n.and_then(NonZeroU32::new).map(|n| {
                DefaultKeyedRateLimiter::<String>::keyed(Quota::per_minute(n))
                    .with_middleware::<StateInformationMiddleware>()
            })
        };
        let limiters = defs
            .iter()
            .map(|d| (make(d.requests_per_minute), make(d.tokens_per_minute)))
            .collect();
        MemoryLimits {
            defs,
            limiters,
            clock: DefaultClock::default(),
        }
    }

    fn admit_now(&self, hits: &[Hit], tokens: u32) -> Result<Verdict, Limited> {
        let mut v = Verdict::default();
        for h in hits {
            let def = &self.defs[h.limit];
            let (requests, token_limiter) = &self.limiters[h.limit];
            let refused = |kind, retry_after, verdict| Limited {
                limit: def.name.clone(),
                kind,
                retry_after,
                verdict,
            };
            if let (Some(rl), Some(limit)) = (requests, def.requests_per_minute) {
                match rl.check_key(&h.subject) {
                    Ok(snap) => tighten(
                        &mut v.requests,
                        window(limit, snap.remaining_burst_capacity()),
                    ),
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(self.clock.now());
                        let verdict = Verdict {
                            requests: Some(window(limit, 0)),
                            ..v
                        };
                        return Err(refused(Kind::Requests, Some(wait), verdict));
                    }
                }
            }
            if let (Some(tl), Some(limit), Some(n)) = (
                token_limiter,
                def.tokens_per_minute,
                NonZeroU32::new(tokens),
            ) {
                match tl.check_key_n(&h.subject, n) {
                    Ok(Ok(snap)) => tighten(
                        &mut v.tokens,
                        window(limit, snap.remaining_burst_capacity()),
                    ),
                    Ok(Err(not_until)) => {
                        let wait = not_until.wait_time_from(self.clock.now());
                        let verdict = Verdict {
                            tokens: Some(window(limit, 0)),
                            ..v
                        };
                        return Err(refused(Kind::Tokens, Some(wait), verdict));
                    }
                    Err(_) => return Err(refused(Kind::Tokens, None, v)),
                }
            }
        }
        Ok(v)
    }

    /// Takes `extra` tokens from each hit's token limiter, best effort:
    /// what fits, in burst-sized steps (governor cannot overdraw).
    fn take_now(&self, hits: &[Hit], extra: u32) {
        for h in hits {
            let (Some(t), Some(limit)) = (
                &self.limiters[h.limit].1,
                self.defs[h.limit].tokens_per_minute,
            ) else {
                continue;
            };
            let mut left = extra;
            while let Some(n) = NonZeroU32::new(left.min(limit)) {
                if !matches!(t.check_key_n(&h.subject, n), Ok(Ok(_))) {
                    break;
                }
                left -= n.get();
            }
        }
    }
}

impl RateLimits for MemoryLimits {
    fn admit<'a>(
        &'a self,
        hits: &'a [Hit],
        tokens: u32,
    ) -> Fut<'a, Result<Result<Verdict, Limited>, Unavailable>> {
        Box::pin(std::future::ready(Ok(self.admit_now(hits, tokens))))
    }

    fn take<'a>(&'a self, hits: &'a [Hit], extra: u32) -> Fut<'a, Result<(), Unavailable>> {
        self.take_now(hits, extra);
        Box::pin(std::future::ready(Ok(())))
    }

    fn is_local(&self) -> bool {
        true
    }
}
