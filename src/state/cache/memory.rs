//! Cached answers in this process's memory: moka, bounded by
//! `max_entries`, each entry expiring after the policy's TTL.

use std::sync::Arc;

use super::{Entry, Key, ResponseCache};
use crate::policy::CacheConfig;
use crate::state::{Fut, Unavailable};

pub struct MemoryCache(moka::future::Cache<Key, Arc<Entry>>);

impl MemoryCache {
    pub fn new(cfg: CacheConfig) -> MemoryCache {
        MemoryCache(
            moka::future::Cache::builder()
                .max_capacity(cfg.max_entries)
                .time_to_live(cfg.ttl)
                .build(),
        )
    }
}

impl ResponseCache for MemoryCache {
    fn get<'a>(&'a self, k: &'a Key) -> Fut<'a, Result<Option<Arc<Entry>>, Unavailable>> {
        Box::pin(async move { Ok(self.0.get(k).await) })
    }

    fn put(&self, k: Key, e: Entry) -> Fut<'_, Result<(), Unavailable>> {
        Box::pin(async move {
            self.0.insert(k, Arc::new(e)).await;
            Ok(())
        })
    }
}
