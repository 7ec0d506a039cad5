//! Rate limits in Redis, for replicas: GCRA as Lua scripts on Redis's
//! clock; every applicable limit is checked and consumed in one script
//! call (one round trip), all or nothing.

use std::sync::Arc;
use std::time::Duration;

use super::{tighten, window, Hit, Kind, Limited, RateLimits, Verdict};
use crate::policy::RateLimit;
use crate::state::{Fut, Redis, Unavailable};

pub struct RedisLimits {
    defs: Vec<RateLimit>,
    redis: Arc<Redis>,
}

impl RedisLimits {
    pub fn new(defs: Vec<RateLimit>, redis: Arc<Redis>) -> RedisLimits {
        RedisLimits { defs, redis }
    }

    fn key(h: &Hit, kind: Kind) -> String {
        let k = match kind {
            Kind::Requests => 'r',
            Kind::Tokens => 't',
        };
        format!("tollgate:rl:{}:{k}:{}", h.limit, h.subject)
    }

    async fn admit_once(
        &self,
        hits: &[Hit],
        tokens: u32,
    ) -> Result<Result<Verdict, Limited>, Unavailable> {
        let mut inv = GCRA.prepare_invoke();
        let mut meta = Vec::new();
        for h in hits {
            let def = &self.defs[h.limit];
            if let Some(limit) = def.requests_per_minute {
                inv.key(Self::key(h, Kind::Requests)).arg(limit).arg(1);
                meta.push((h.limit, Kind::Requests, limit));
            }
            if let (Some(limit), true) = (def.tokens_per_minute, tokens > 0) {
                inv.key(Self::key(h, Kind::Tokens)).arg(limit).arg(tokens);
                meta.push((h.limit, Kind::Tokens, limit));
            }
        }
        if meta.is_empty() {
            return Ok(Ok(Verdict::default()));
        }
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<Vec<i64>> = inv.invoke_async(&mut conn).await;
        self.redis.observe(&res);
        let out = res.map_err(|_| Unavailable)?;
        let at = |i: usize| out.get(i).copied().unwrap_or(0);
        if at(0) == 1 {
            let mut v = Verdict::default();
            for (j, (_, kind, limit)) in meta.iter().enumerate() {
                let w = super::Window {
                    limit: *limit,
                    remaining: u32::try_from(at(1 + 2 * j).max(0)).unwrap_or(0),
                    reset: Duration::from_millis(u64::try_from(at(2 + 2 * j).max(0)).unwrap_or(0)),
                };
                match kind {
                    Kind::Requests => tighten(&mut v.requests, w),
                    Kind::Tokens => tighten(&mut v.tokens, w),
                }
            }
            return Ok(Ok(v));
        }
        let failed = usize::try_from(at(1) - 1).unwrap_or(0);
        let (i, kind, limit) = meta.get(failed).copied().unwrap_or((0, Kind::Requests, 0));
        let w = Some(window(limit, 0));
        let verdict = match kind {
            Kind::Requests => Verdict {
                requests: w,
                tokens: None,
            },
            Kind::Tokens => Verdict {
                requests: None,
                tokens: w,
            },
        };
        Ok(Err(Limited {
            limit: self.defs[i].name.clone(),
            kind,
            retry_after: u64::try_from(out.get(2).copied().unwrap_or(-1))
                .ok()
                .map(Duration::from_millis),
            verdict,
        }))
    }

    async fn take_once(&self, hits: &[Hit], extra: u32) -> Result<(), Unavailable> {
        let mut inv = TAKE.prepare_invoke();
        let mut any = false;
        for h in hits {
            if let Some(limit) = self.defs[h.limit].tokens_per_minute {
                inv.key(Self::key(h, Kind::Tokens)).arg(limit).arg(extra);
                any = true;
            }
        }
        if !any {
            return Ok(());
        }
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
        self.redis.observe(&res);
        res.map(|_| ()).map_err(|_| Unavailable)
    }
}

impl RateLimits for RedisLimits {
    fn admit<'a>(
        &'a self,
        hits: &'a [Hit],
        tokens: u32,
    ) -> Fut<'a, Result<Result<Verdict, Limited>, Unavailable>> {
        Box::pin(self.admit_once(hits, tokens))
    }

    fn take<'a>(&'a self, hits: &'a [Hit], extra: u32) -> Fut<'a, Result<(), Unavailable>> {
        Box::pin(self.take_once(hits, extra))
    }

    fn is_local(&self) -> bool {
        false
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
