//! Rate limits: requests and tokens per minute, per key, team or model.
//!
//! GCRA everywhere: a limit of N per minute admits a burst of N, then one
//! more every 60/N seconds. In memory it is `governor`'s keyed limiter; in
//! Redis one Lua script checks every applicable limit and consumes from
//! all of them only when all admit, on Redis's clock (so replicas agree).
//!
//! Tokens: the prompt tokens counted at admission are taken up front; when
//! the real usage is known, the completion (and any prompt difference) is
//! taken too (`correct`), so the next requests see it. In memory that
//! correction is best effort: governor cannot take more than is left.
//!
//! Failure policy (Redis): unreachable → `Unavailable`; the caller answers
//! 503 unless the state is configured `fail_open`.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{Redis, Unavailable};
use crate::policy::{RateLimit, Scope, Target};

type Keyed = DefaultKeyedRateLimiter<String, StateInformationMiddleware>;

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

#[derive(Debug, Clone, Default)]
pub struct Verdict {
    pub requests: Option<Window>,
    pub tokens: Option<Window>,
}

#[derive(Debug, Clone)]
pub enum Refusal {
    /// Over a limit: retry after the given time (`None`: never, the
    /// request alone exceeds the limit).
    Limited {
        limit: String,
        kind: Kind,
        retry_after: Option<Duration>,
        verdict: Verdict,
    },
    Unavailable,
}

/// Who a decision is about. `model: None` checks the key/team/global
/// limits (at admission); `Some` checks only that model's limits.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a str,
    pub team: &'a str,
    pub model: Option<&'a str>,
}

pub struct Limits {
    defs: Vec<RateLimit>,
    backend: Backend,
    /// Whether any limit is on a model, on a key/team/global, on tokens:
    /// lets the request path skip lookups that cannot match.
    model_scoped: bool,
    request_scoped: bool,
    tokens: bool,
    /// Made once: creating a quanta clock runs CPUID (it showed up as 15%
    /// of gateway CPU when made per request).
    clock: DefaultClock,
}

enum Backend {
    Memory(Vec<(Option<Keyed>, Option<Keyed>)>),
    Redis(Arc<Redis>),
}

fn quota(per_minute: u32) -> Option<Quota> {
    NonZeroU32::new(per_minute).map(Quota::per_minute)
}

impl Limits {
    pub fn memory(defs: Vec<RateLimit>) -> Limits {
        let limiters = defs
            .iter()
            .map(|d| {
                let make = |n: Option<u32>| {
                    n.and_then(quota).map(|q| {
                        DefaultKeyedRateLimiter::<String>::keyed(q)
                            .with_middleware::<StateInformationMiddleware>()
                    })
                };
                (make(d.requests_per_minute), make(d.tokens_per_minute))
            })
            .collect();
        Limits::with(defs, Backend::Memory(limiters))
    }

    fn with(defs: Vec<RateLimit>, backend: Backend) -> Limits {
        let model_scoped = defs.iter().any(|d| matches!(d.scope, Scope::Model(_)));
        let request_scoped = defs.iter().any(|d| !matches!(d.scope, Scope::Model(_)));
        let tokens = defs.iter().any(|d| d.tokens_per_minute.is_some());
        Limits {
            defs,
            backend,
            model_scoped,
            request_scoped,
            tokens,
            clock: DefaultClock::default(),
        }
    }

    pub fn counts_tokens(&self) -> bool {
        self.tokens
    }

    /// The token correction, done at once in memory (`true`); Redis needs
    /// I/O, so `false` asks the caller to run `correct` in the background.
    pub fn correct_now(&self, s: Subject<'_>, model: Option<&str>, extra: u32) -> bool {
        let Backend::Memory(l) = &self.backend else {
            return false;
        };
        let mut subjects = vec![s];
        if let Some(m) = model {
            subjects.push(Subject {
                model: Some(m),
                ..s
            });
        }
        for s in subjects {
            self.take_memory(l, &self.applicable(s), extra);
        }
        true
    }

    pub fn redis(defs: Vec<RateLimit>, redis: Arc<Redis>) -> Limits {
        Limits::with(defs, Backend::Redis(redis))
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// (limit index, subject value) of every limit that applies.
    fn applicable(&self, s: Subject<'_>) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for (i, d) in self.defs.iter().enumerate() {
            let (target, value) = match (&d.scope, s.model) {
                (Scope::Global, None) => (&Target::Each, ""),
                (Scope::Key(t), None) => (t, s.key),
                (Scope::Team(t), None) => (t, s.team),
                (Scope::Model(t), Some(m)) => (t, m),
                _ => continue,
            };
            if match target {
                Target::Each => true,
                Target::One(n) => n == value,
            } {
                out.push((i, value.to_string()));
            }
        }
        out
    }

    /// Takes one request and `tokens` tokens from every applicable limit.
    pub async fn admit(&self, s: Subject<'_>, tokens: u32) -> Result<Verdict, Refusal> {
        let relevant = if s.model.is_some() {
            self.model_scoped
        } else {
            self.request_scoped
        };
        if !relevant {
            return Ok(Verdict::default());
        }
        let hits = self.applicable(s);
        if hits.is_empty() {
            return Ok(Verdict::default());
        }
        match &self.backend {
            Backend::Memory(l) => self.admit_memory(l, &hits, tokens),
            Backend::Redis(r) => self.admit_redis(r, &hits, tokens, true).await,
        }
    }

    /// Takes `extra` more tokens (the completion, once usage is known).
    pub async fn correct(&self, s: Subject<'_>, extra: u32) {
        if extra == 0 {
            return;
        }
        let hits: Vec<_> = self
            .applicable(s)
            .into_iter()
            .filter(|(i, _)| self.defs[*i].tokens_per_minute.is_some())
            .collect();
        if hits.is_empty() {
            return;
        }
        match &self.backend {
            Backend::Memory(l) => self.take_memory(l, &hits, extra),
            Backend::Redis(r) => {
                let _ = self.admit_redis_tokens_only(r, &hits, extra).await;
            }
        }
    }

    /// Takes `extra` tokens from each hit's token limiter, best effort:
    /// what fits, in burst-sized steps (governor cannot overdraw).
    fn take_memory(
        &self,
        l: &[(Option<Keyed>, Option<Keyed>)],
        hits: &[(usize, String)],
        extra: u32,
    ) {
        for (i, subject) in hits {
            let (Some(t), Some(limit)) = (&l[*i].1, self.defs[*i].tokens_per_minute) else {
                continue;
            };
            let mut left = extra;
            while left > 0 {
                let Some(n) = NonZeroU32::new(left.min(limit)) else {
                    break;
                };
                if !matches!(t.check_key_n(subject, n), Ok(Ok(_))) {
                    break;
                }
                left -= n.get();
            }
        }
    }

    fn admit_memory(
        &self,
        l: &[(Option<Keyed>, Option<Keyed>)],
        hits: &[(usize, String)],
        tokens: u32,
    ) -> Result<Verdict, Refusal> {
        let clock = &self.clock;
        let mut v = Verdict::default();
        for (i, subject) in hits {
            let def = &self.defs[*i];
            if let (Some(rl), Some(limit)) = (&l[*i].0, def.requests_per_minute) {
                match rl.check_key(subject) {
                    Ok(snap) => tighten(
                        &mut v.requests,
                        window(limit, snap.remaining_burst_capacity()),
                    ),
                    Err(not_until) => {
                        return Err(Refusal::Limited {
                            limit: def.name.clone(),
                            kind: Kind::Requests,
                            retry_after: Some(not_until.wait_time_from(clock.now())),
                            verdict: Verdict {
                                requests: Some(window(limit, 0)),
                                ..v
                            },
                        })
                    }
                }
            }
            if let (Some(tl), Some(limit), Some(n)) =
                (&l[*i].1, def.tokens_per_minute, NonZeroU32::new(tokens))
            {
                match tl.check_key_n(subject, n) {
                    Ok(Ok(snap)) => tighten(
                        &mut v.tokens,
                        window(limit, snap.remaining_burst_capacity()),
                    ),
                    Ok(Err(not_until)) => {
                        return Err(Refusal::Limited {
                            limit: def.name.clone(),
                            kind: Kind::Tokens,
                            retry_after: Some(not_until.wait_time_from(clock.now())),
                            verdict: Verdict {
                                tokens: Some(window(limit, 0)),
                                ..v
                            },
                        })
                    }
                    Err(_) => {
                        return Err(Refusal::Limited {
                            limit: def.name.clone(),
                            kind: Kind::Tokens,
                            retry_after: None,
                            verdict: v,
                        })
                    }
                }
            }
        }
        Ok(v)
    }

    /// One script call: every (limit, kind) applicable, all or nothing.
    async fn admit_redis(
        &self,
        r: &Redis,
        hits: &[(usize, String)],
        tokens: u32,
        count_request: bool,
    ) -> Result<Verdict, Refusal> {
        let mut keys = Vec::new();
        let mut args: Vec<u64> = Vec::new();
        let mut meta = Vec::new();
        for (i, subject) in hits {
            let def = &self.defs[*i];
            if let (Some(limit), true) = (def.requests_per_minute, count_request) {
                keys.push(format!("tollgate:rl:{i}:r:{subject}"));
                args.extend([u64::from(limit), 1]);
                meta.push((*i, Kind::Requests, limit));
            }
            if let (Some(limit), true) = (def.tokens_per_minute, tokens > 0) {
                keys.push(format!("tollgate:rl:{i}:t:{subject}"));
                args.extend([u64::from(limit), u64::from(tokens)]);
                meta.push((*i, Kind::Tokens, limit));
            }
        }
        if keys.is_empty() {
            return Ok(Verdict::default());
        }
        let mut inv = GCRA.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for a in &args {
            inv.arg(a);
        }
        let mut conn = r.conn();
        let res: redis::RedisResult<Vec<i64>> = inv.invoke_async(&mut conn).await;
        r.observe(&res);
        let out = res.map_err(|_| Refusal::Unavailable)?;
        let mut v = Verdict::default();
        if out.first() == Some(&1) {
            for (j, (_, kind, limit)) in meta.iter().enumerate() {
                let remaining =
                    u32::try_from(out.get(1 + 2 * j).copied().unwrap_or(0).max(0)).unwrap_or(0);
                let reset_ms =
                    u64::try_from(out.get(2 + 2 * j).copied().unwrap_or(0).max(0)).unwrap_or(0);
                let w = Window {
                    limit: *limit,
                    remaining,
                    reset: Duration::from_millis(reset_ms),
                };
                match kind {
                    Kind::Requests => tighten(&mut v.requests, w),
                    Kind::Tokens => tighten(&mut v.tokens, w),
                }
            }
            return Ok(v);
        }
        let failed = usize::try_from(out.get(1).copied().unwrap_or(1) - 1).unwrap_or(0);
        let retry_ms = out.get(2).copied().unwrap_or(-1);
        let (i, kind, limit) = meta.get(failed).copied().unwrap_or((0, Kind::Requests, 0));
        let w = Some(window(limit, 0));
        Err(Refusal::Limited {
            limit: self.defs[i].name.clone(),
            kind,
            retry_after: u64::try_from(retry_ms).ok().map(Duration::from_millis),
            verdict: match kind {
                Kind::Requests => Verdict {
                    requests: w,
                    tokens: None,
                },
                Kind::Tokens => Verdict {
                    requests: None,
                    tokens: w,
                },
            },
        })
    }

    async fn admit_redis_tokens_only(
        &self,
        r: &Redis,
        hits: &[(usize, String)],
        extra: u32,
    ) -> Result<(), Unavailable> {
        let mut inv = TAKE.prepare_invoke();
        let mut any = false;
        for (i, subject) in hits {
            if let Some(limit) = self.defs[*i].tokens_per_minute {
                inv.key(format!("tollgate:rl:{i}:t:{subject}"));
                inv.arg(limit).arg(extra);
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        let mut conn = r.conn();
        let res: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
        r.observe(&res);
        res.map(|_| ()).map_err(|_| Unavailable)
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

/// GCRA over every key, on Redis's clock. KEYS[i]: a limiter's TAT (ms);
/// ARGV[2i-1]: its limit per minute, ARGV[2i]: the cost. Returns
/// {1, remaining_1, reset_ms_1, …} when all admit (and consumes), else
/// {0, failing index, retry_ms (-1: never)}.
static GCRA: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tats = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local cost = tonumber(ARGV[2 * i])
  local interval = 60000 / limit
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + cost * interval
  local allow_at = new_tat - 60000
  if cost > limit then return {0, i, -1} end
  if allow_at > now then return {0, i, math.ceil(allow_at - now)} end
  tats[i] = new_tat
end
local out = {1}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local interval = 60000 / limit
  local ahead = tats[i] - now
  redis.call('SET', KEYS[i], string.format('%.3f', tats[i]), 'PX', math.ceil(ahead) + 1000)
  out[#out + 1] = math.floor((60000 - ahead) / interval)
  out[#out + 1] = math.ceil(ahead)
end
return out
",
    )
});

/// Takes ARGV[2i] more units from each key without a check (usage known
/// after the fact), never moving a TAT beyond one full window ahead.
static TAKE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i - 1])
  local cost = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tat = math.min(tat + cost * 60000 / limit, now + 60000)
  redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return 1
",
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_text_reads_like_openai() {
        assert_eq!(reset_text(Duration::from_millis(20)), "20ms");
        assert_eq!(reset_text(Duration::from_millis(1500)), "2s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
    }

    #[tokio::test]
    async fn memory_limits_admit_a_burst_then_refuse() {
        let def = RateLimit {
            name: "key:*".into(),
            scope: Scope::Key(Target::Each),
            requests_per_minute: Some(3),
            tokens_per_minute: Some(100),
        };
        let l = Limits::memory(vec![def]);
        let s = Subject {
            key: "k",
            team: "t",
            model: None,
        };
        for left in [2, 1, 0] {
            let v = l.admit(s, 10).await.unwrap();
            assert_eq!(v.requests.unwrap().remaining, left);
        }
        match l.admit(s, 10).await {
            Err(Refusal::Limited {
                kind: Kind::Requests,
                retry_after: Some(d),
                ..
            }) => {
                assert!(
                    d <= Duration::from_secs(20) && d > Duration::from_secs(15),
                    "{d:?}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Another key has its own bucket; a request over the token limit
        // can never pass.
        let other = Subject { key: "k2", ..s };
        match l.admit(other, 101).await {
            Err(Refusal::Limited {
                kind: Kind::Tokens,
                retry_after: None,
                ..
            }) => {}
            r => panic!("{r:?}"),
        }
    }
}
