//! The Redis connection the shared stores use.

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
        if url.starts_with("rediss://") {
            // rustls needs one process-wide crypto provider; ring is the
            // one the rest of the gateway builds (a second call is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
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

    /// Whether this Redis may evict keys (a `maxmemory` with a policy
    /// other than `noeviction`): budget spend and rate-limit windows held
    /// there could then vanish. `None` when it cannot be told (`CONFIG`
    /// refused, as managed services do) or there is no risk.
    pub async fn eviction_risk(&self) -> Option<String> {
        let mut c = self.conn();
        let get = |name: &'static str| redis::cmd("CONFIG").arg("GET").arg(name).clone();
        let policy: Vec<String> = get("maxmemory-policy").query_async(&mut c).await.ok()?;
        let memory: Vec<String> = get("maxmemory").query_async(&mut c).await.ok()?;
        let policy = policy.get(1)?;
        let limited = memory.get(1).is_some_and(|m| m != "0");
        (limited && policy != "noeviction").then(|| {
            format!(
                "this Redis may evict keys (maxmemory-policy {policy}): budget spend held there could be \
                 forgotten. Set maxmemory-policy noeviction, and give the cache its own Redis (state.cache_url)"
            )
        })
    }

    /// PING, for `/readyz`.
    pub async fn ping(&self) -> bool {
        let mut c = self.conn();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
        self.observe(&r);
        r.is_ok()
    }
}
