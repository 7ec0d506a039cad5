//! The response cache: exact match on a canonical hash of what determines
//! an answer, scoped per team.
//!
//! Key = SHA-256 of the team, the route's chain of models, and the request
//! body without the fields that do not change the answer (`model` is
//! replaced by the chain; `user`, `metadata`, `store` and `stream_options`
//! are dropped; `stream` and whether usage was asked for stay, because the
//! stored bytes differ). Object keys are sorted recursively, so the same
//! request written with its fields in another order hits.
//!
//! Entries are the exact bytes the client got: a JSON body, or every SSE
//! frame of a stream that completed. A hit replays them unchanged.
//!
//! Stores, behind `ResponseCache`: moka in memory (`memory`, bounded by
//! `max_entries`, TTL per entry), or Redis (`redis`, `SET … PX ttl`;
//! bounded by Redis's own `maxmemory` policy). Failure policy, decided by
//! the caller: the cache fails open. An unreachable store is a miss on
//! lookup and a skipped store, logged once per outage and counted;
//! requests never fail because of the cache.

mod key;
mod memory;
mod redis;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use key::key;
pub use memory::MemoryCache;
pub use redis::RedisCache;

use super::{Fut, Unavailable};
use crate::upstream::Usage;

pub type Key = [u8; 32];

/// A store of answers by key.
pub trait ResponseCache: Send + Sync {
    /// The entry under `k`, if any.
    fn get<'a>(&'a self, k: &'a Key) -> Fut<'a, Result<Option<Arc<Entry>>, Unavailable>>;
    fn put(&self, k: Key, e: Entry) -> Fut<'_, Result<(), Unavailable>>;
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub stream: bool,
    /// The policy model that answered.
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// What the answer cost when it was made, in nano-dollars.
    pub cost_nanos: u64,
    /// The bytes the client got (UTF-8: JSON or SSE text).
    pub body: String,
}

impl Entry {
    pub fn usage(&self) -> Usage {
        Usage::new(self.prompt_tokens, self.completion_tokens)
    }

    pub fn body_bytes(&self) -> Bytes {
        Bytes::from(self.body.clone())
    }
}

/// What a request asks of the cache (`x-tollgate-cache`, `Cache-Control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Directive {
    pub lookup: bool,
    pub store: bool,
}

impl Directive {
    /// Deterministic requests (temperature 0, at most one choice) use the
    /// cache; `x-tollgate-cache: force` caches any request, `bypass` none;
    /// `Cache-Control: no-cache` skips the lookup, `no-store` the store.
    pub fn of(headers: &http::HeaderMap, body: &Map<String, Value>) -> Directive {
        let deterministic = body.get("temperature").and_then(Value::as_f64) == Some(0.0)
            && body.get("n").and_then(Value::as_u64).unwrap_or(1) <= 1;
        Directive::with(headers, deterministic)
    }

    /// The directive for a request whose answer is `deterministic` by
    /// nature (embeddings) or not, under the same headers.
    pub fn with(headers: &http::HeaderMap, deterministic: bool) -> Directive {
        let header = headers
            .get("x-tollgate-cache")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase());
        let cc = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let base = match header.as_deref() {
            Some("force") => true,
            Some("bypass") => false,
            _ => deterministic,
        };
        Directive {
            lookup: base && !cc.contains("no-cache") && !cc.contains("no-store"),
            store: base && !cc.contains("no-store"),
        }
    }
}

#[cfg(test)]
mod tests;
