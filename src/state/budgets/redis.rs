//! Budgets in Redis, for replicas: the same contract as the in-memory
//! store, each call one atomic Lua script (one round trip), so the
//! no-overspend guarantee holds across every gateway sharing Redis.
//!
//! A bucket is a hash `{spent, reserved, alerted}` at
//! `tollgate:budget:<budget id>:<period start>:<subject>`, expiring a day
//! after its period ends. Amounts are nano-dollars; Lua compares them as
//! doubles, exact up to 2^53 (about $9 million per bucket).
//!
//! An unreachable Redis is `Unavailable`; what that means for the request
//! is decided above the stores (`state::unreachable`).

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::{Alert, BucketKey, Budgets, Held, Status};
use crate::clock::{period_bounds, Clock, Millis};
use crate::money::Nanos;
use crate::policy::Budget;
use crate::state::{Fut, Redis, Unavailable};

const DAY_MS: i64 = 86_400_000;

pub struct RedisBudgets {
    defs: Vec<Budget>,
    ids: Vec<String>,
    clock: Clock,
    redis: Arc<Redis>,
}

impl RedisBudgets {
    pub fn new(defs: Vec<Budget>, clock: Clock, redis: Arc<Redis>) -> RedisBudgets {
        // A budget is identified by its name (scope and period), so it
        // keeps its spending across restarts, reloads and limit changes.
        let ids = defs
            .iter()
            .map(|d| hex::encode(&Sha256::digest(d.name.as_bytes())[..8]))
            .collect();
        RedisBudgets {
            defs,
            ids,
            clock,
            redis,
        }
    }

    fn key(&self, k: &BucketKey) -> String {
        format!(
            "tollgate:budget:{}:{}:{}",
            self.ids[k.budget], k.start, k.subject
        )
    }

    fn ttl_ms(&self, k: &BucketKey) -> i64 {
        let (_, end) = period_bounds(self.defs[k.budget].period, k.start);
        if end == i64::MAX {
            0
        } else {
            (end - self.clock.now()).max(0) + DAY_MS
        }
    }

    /// Reserves `amount` in every bucket of `keys`, all or none. The
    /// script also leaves a short-lived token naming the hold; when the
    /// call fails (a timeout: the script may still have run, late), the
    /// hold is cancelled through that token, so an answer lost on the way
    /// back never holds budget until the period ends.
    async fn reserve_once(&self, keys: &[BucketKey], amount: u64) -> Result<Held, Unavailable> {
        let token = format!("tollgate:budget:hold:{:016x}", rand::random::<u64>());
        let mut inv = RESERVE.prepare_invoke();
        inv.arg(amount);
        for k in keys {
            inv.key(self.key(k));
            inv.arg(self.defs[k.budget].limit.0).arg(self.ttl_ms(k));
        }
        inv.arg(&token).arg(HOLD_TOKEN_MS);
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<Vec<i64>> = inv.invoke_async(&mut conn).await;
        self.redis.observe(&res);
        if res.is_err() {
            self.cancel(keys, amount, &token).await;
        }
        let out = res.map_err(|_| Unavailable)?;
        let at = |i: usize| u64::try_from(out.get(i).copied().unwrap_or(0)).unwrap_or(0);
        if out.first() == Some(&1) {
            return Ok(Held::Yes {
                remaining: Nanos(at(1)),
            });
        }
        Ok(Held::No {
            bucket: usize::try_from(at(1).saturating_sub(1)).unwrap_or(0),
            available: Nanos(at(2)),
        })
    }

    /// Undoes the hold `token` names, if the reserve script made it (on
    /// the same connection, so after the script if it ran at all). Tried
    /// a few times while Redis recovers; past the token's life the hold
    /// stays until its bucket expires (counted in the ledger either way).
    async fn cancel(&self, keys: &[BucketKey], amount: u64, token: &str) {
        for attempt in 0..3u32 {
            let mut inv = CANCEL.prepare_invoke();
            inv.arg(token).arg(amount);
            for k in keys {
                inv.key(self.key(k));
            }
            let mut conn = self.redis.conn();
            let res: redis::RedisResult<i64> = inv.invoke_async(&mut conn).await;
            match res {
                Ok(1) => {
                    tracing::warn!("a budget reservation whose answer was lost was cancelled");
                    return;
                }
                Ok(_) => return,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await
                }
            }
        }
        tracing::error!(
            "cannot cancel a budget reservation whose answer was lost; it is held until its period ends"
        );
    }

    async fn settle_once(
        &self,
        holds: Vec<BucketKey>,
        amount: u64,
        actual: u64,
    ) -> Result<Vec<Alert>, Unavailable> {
        let mut inv = SETTLE.prepare_invoke();
        inv.arg(amount).arg(actual);
        for k in &holds {
            let def = &self.defs[k.budget];
            let thresholds: Vec<String> = def.alert_at.iter().map(u32::to_string).collect();
            inv.key(self.key(k));
            inv.arg(def.limit.0).arg(thresholds.join(","));
        }
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<Vec<i64>> = inv.invoke_async(&mut conn).await;
        self.redis.observe(&res);
        let out = res.map_err(|_| Unavailable)?;
        // Pairs (bucket index, threshold) then the spent of each bucket.
        let mut alerts = Vec::new();
        let crossings = usize::try_from(out.first().copied().unwrap_or(0)).unwrap_or(0);
        for c in 0..crossings {
            let i = usize::try_from(out[1 + 2 * c] - 1).unwrap_or(0);
            let threshold = u32::try_from(out[2 + 2 * c]).unwrap_or(0);
            let k = &holds[i];
            let def = &self.defs[k.budget];
            let spent = out.get(1 + 2 * crossings + i).copied().unwrap_or(0);
            alerts.push(Alert {
                budget: def.name.clone(),
                subject: k.subject.clone(),
                threshold_permille: threshold,
                spent: Nanos(u64::try_from(spent).unwrap_or(0)),
                limit: def.limit,
            });
        }
        Ok(alerts)
    }

    /// The least money left among `keys` (after reservations).
    async fn remaining_once(&self, keys: &[BucketKey]) -> Result<Option<Nanos>, Unavailable> {
        if keys.is_empty() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        for k in keys {
            pipe.cmd("HMGET")
                .arg(self.key(k))
                .arg("spent")
                .arg("reserved");
        }
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<Vec<(Option<u64>, Option<u64>)>> =
            pipe.query_async(&mut conn).await;
        self.redis.observe(&res);
        let rows = res.map_err(|_| Unavailable)?;
        Ok(keys
            .iter()
            .zip(rows)
            .map(|(k, (s, r))| {
                Nanos(
                    self.defs[k.budget]
                        .limit
                        .0
                        .saturating_sub(s.unwrap_or(0).saturating_add(r.unwrap_or(0))),
                )
            })
            .min())
    }

    /// Every bucket of the current periods (SCAN), plus named budgets
    /// without one yet.
    async fn status_at(&self, now: Millis) -> Result<Vec<Status>, Unavailable> {
        let mut out = Vec::new();
        let mut conn = self.redis.conn();
        for (i, def) in self.defs.iter().enumerate() {
            let start = period_bounds(def.period, now).0;
            let prefix = format!("tollgate:budget:{}:{start}:", self.ids[i]);
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let res: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}*"))
                    .arg("COUNT")
                    .arg(500)
                    .query_async(&mut conn)
                    .await;
                self.redis.observe(&res);
                let (next, batch) = res.map_err(|_| Unavailable)?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            if let (true, Some(n)) = (keys.is_empty(), def.scope.named()) {
                keys.push(format!("{prefix}{n}"));
            }
            keys.sort();
            for key in keys {
                let res: redis::RedisResult<(Option<u64>, Option<u64>)> = redis::cmd("HMGET")
                    .arg(&key)
                    .arg("spent")
                    .arg("reserved")
                    .query_async(&mut conn)
                    .await;
                self.redis.observe(&res);
                let (spent, reserved) = res.map_err(|_| Unavailable)?;
                let subject = key.strip_prefix(&prefix).unwrap_or("");
                out.push(Status::of(
                    def,
                    subject,
                    start,
                    spent.unwrap_or(0),
                    reserved.unwrap_or(0),
                ));
            }
        }
        Ok(out)
    }
}

impl Budgets for RedisBudgets {
    fn reserve<'a>(
        &'a self,
        keys: &'a [BucketKey],
        amount: u64,
    ) -> Fut<'a, Result<Held, Unavailable>> {
        Box::pin(self.reserve_once(keys, amount))
    }

    fn settle(
        &self,
        keys: Vec<BucketKey>,
        reserved: u64,
        actual: u64,
    ) -> Fut<'_, Result<Vec<Alert>, Unavailable>> {
        Box::pin(self.settle_once(keys, reserved, actual))
    }

    fn remaining<'a>(
        &'a self,
        keys: &'a [BucketKey],
    ) -> Fut<'a, Result<Option<Nanos>, Unavailable>> {
        Box::pin(self.remaining_once(keys))
    }

    fn status(&self, now: Millis) -> Fut<'_, Result<Vec<Status>, Unavailable>> {
        Box::pin(self.status_at(now))
    }

    fn is_local(&self) -> bool {
        false
    }
}

/// How long a reservation's token lives: the window in which a reserve
/// whose answer was lost can still be cancelled.
const HOLD_TOKEN_MS: i64 = 10_000;

/// ARGV[1]: amount; per key i: ARGV[2i]: limit, ARGV[2i+1]: ttl ms (0:
/// none); then the hold's token key and its life in ms. All buckets admit
/// → reserve in all, set the token, {1, least left after it}; else {0, i,
/// available}.
static RESERVE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 'spent', 'reserved')
  local used = tonumber(v[1] or '0') + tonumber(v[2] or '0')
  if used + amount > limit then
    local available = limit - used
    if available < 0 then available = 0 end
    return {0, i, available}
  end
end
local least = -1
for i = 1, #KEYS do
  local reserved = redis.call('HINCRBY', KEYS[i], 'reserved', amount)
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
  local left = tonumber(ARGV[2 * i]) - spent - reserved
  if left < 0 then left = 0 end
  if least < 0 or left < least then least = left end
  local ttl = tonumber(ARGV[2 * i + 1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
local n = #KEYS
redis.call('SET', ARGV[2 * n + 2], ARGV[1], 'PX', tonumber(ARGV[2 * n + 3]))
return {1, least}
",
    )
});

/// ARGV[1]: a hold's token, ARGV[2]: its amount; KEYS: its buckets. If the
/// token exists, the hold is returned to every bucket and the token
/// removed: 1; else 0 (the reserve never ran, or refused).
static CANCEL: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('DEL', ARGV[1]) == 0 then return 0 end
local amount = tonumber(ARGV[2])
for i = 1, #KEYS do
  local left = redis.call('HINCRBY', KEYS[i], 'reserved', -amount)
  if left < 0 then redis.call('HSET', KEYS[i], 'reserved', 0) end
end
return 1
",
    )
});

/// ARGV[1]: reserved, ARGV[2]: actual; per key i: ARGV[2i+1]: limit,
/// ARGV[2i+2]: alert thresholds in permille, comma-separated. Returns
/// {n, (i, threshold) × n, spent_1, …}.
static SETTLE: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local reserved = tonumber(ARGV[1])
local actual = tonumber(ARGV[2])
local crossed = {}
local spents = {}
for i = 1, #KEYS do
  local held = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if held > reserved then held = reserved end
  redis.call('HINCRBY', KEYS[i], 'reserved', -held)
  local spent = redis.call('HINCRBY', KEYS[i], 'spent', actual)
  local limit = tonumber(ARGV[2 * i + 1])
  local alerted = tonumber(redis.call('HGET', KEYS[i], 'alerted') or '0')
  local n = 0
  for th in string.gmatch(ARGV[2 * i + 2], '[^,]+') do
    n = n + 1
    if n > alerted and spent * 1000 >= limit * tonumber(th) then
      crossed[#crossed + 1] = i
      crossed[#crossed + 1] = tonumber(th)
      alerted = n
    end
  end
  redis.call('HSET', KEYS[i], 'alerted', alerted)
  spents[i] = spent
end
local out = {#crossed / 2}
for _, v in ipairs(crossed) do out[#out + 1] = v end
for _, v in ipairs(spents) do out[#out + 1] = v end
return out
",
    )
});
