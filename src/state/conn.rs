//! Shared request state: rate limits, budgets and the response cache,
//! each in this process's memory (default) or in Redis for replicas.
//!
//! Failure policy when Redis is unreachable (each store's module says the
//! same for itself):
//! - rate limits and budgets **fail closed**: the request gets 503
//!   `state_unavailable` with `Retry-After`, because admitting it could
//!   overspend or overrun a limit. `state: { url, fail_open: true }` flips
//!   this: requests are admitted unchecked and each such admission is
//!   logged (and counted).
//! - the cache **fails open**: a lookup is a miss, a store is skipped.
//!
//! Nothing crashes: every Redis call has a short timeout, the connection
//! manager reconnects in the background, and the next request after Redis
//! returns is served normally. `/readyz` reports the store's health.

pub mod cache;
pub mod limits;
pub mod redis_budgets;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one Redis call may take before the store counts as down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// A Redis connection shared by the stores; reconnects by itself.
pub struct Redis {
    conn: ConnectionManager,
    healthy: AtomicBool,
}

impl Redis {
    /// Connects lazily: startup never waits for Redis.
    pub fn connect(url: &str) -> anyhow::Result<Redis> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| anyhow::anyhow!("Redis connection manager: {e}"))?;
        Ok(Redis {
            conn,
            healthy: AtomicBool::new(true),
        })
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Records the outcome of a call; logs transitions only.
    pub fn observe<T>(&self, r: &redis::RedisResult<T>) {
        let ok = r.is_ok();
        let was = self.healthy.swap(ok, Ordering::Relaxed);
        match (was, r) {
            (true, Err(e)) => {
                tracing::error!(error = %e, "Redis is unreachable; budgets and rate limits fail closed unless fail_open, the cache misses")
            }
            (false, Ok(_)) => tracing::info!("Redis is reachable again"),
            _ => {}
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// PING, for `/readyz`.
    pub async fn ping(&self) -> bool {
        let mut c = self.conn();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        self.observe(&r);
        r.is_ok()
    }
}

/// The store could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;
