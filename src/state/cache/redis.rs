//! Cached answers in Redis, shared by replicas: one JSON value per key
//! (`SET … PX ttl`), bounded by Redis's own `maxmemory` policy.

use std::sync::Arc;
use std::time::Duration;

use super::{Entry, Key, ResponseCache};
use crate::policy::CacheConfig;
use crate::state::{Fut, Redis, Unavailable};

pub struct RedisCache {
    ttl: Duration,
    redis: Arc<Redis>,
}

impl RedisCache {
    pub fn new(cfg: CacheConfig, redis: Arc<Redis>) -> RedisCache {
        RedisCache {
            ttl: cfg.ttl,
            redis,
        }
    }

    fn key(k: &Key) -> String {
        format!("tollgate:cache:{}", hex::encode(k))
    }

    async fn get_once(&self, k: &Key) -> Result<Option<Arc<Entry>>, Unavailable> {
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg(Self::key(k))
            .query_async(&mut conn)
            .await;
        self.redis.observe(&res);
        let text = res.map_err(|_| Unavailable)?;
        Ok(text.and_then(|t| serde_json::from_str::<Entry>(&t).ok().map(Arc::new)))
    }

    async fn put_once(&self, k: Key, e: Entry) -> Result<(), Unavailable> {
        let Ok(text) = serde_json::to_string(&e) else {
            return Ok(());
        };
        let mut conn = self.redis.conn();
        let res: redis::RedisResult<()> = redis::cmd("SET")
            .arg(Self::key(&k))
            .arg(text)
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await;
        self.redis.observe(&res);
        res.map_err(|_| Unavailable)
    }
}

impl ResponseCache for RedisCache {
    fn get<'a>(&'a self, k: &'a Key) -> Fut<'a, Result<Option<Arc<Entry>>, Unavailable>> {
        Box::pin(self.get_once(k))
    }

    fn put(&self, k: Key, e: Entry) -> Fut<'_, Result<(), Unavailable>> {
        Box::pin(self.put_once(k, e))
    }
}
