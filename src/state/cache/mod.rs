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
//! Backends: moka in memory (bounded by `max_entries`, TTL per entry), or
//! Redis (`SET … PX ttl`; bounded by Redis's own `maxmemory` policy).
//! Failure policy: the cache fails open. A Redis error is a miss on lookup
//! and a skipped store, logged once per outage; requests never fail
//! because of the cache.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::Redis;
use crate::policy::CacheConfig;
use crate::upstream::Usage;

pub type Key = [u8; 32];

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
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
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
        let header = headers
            .get("x-tollgate-cache")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().to_ascii_lowercase());
        let cc = headers
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let deterministic = body.get("temperature").and_then(Value::as_f64) == Some(0.0)
            && body.get("n").and_then(Value::as_u64).unwrap_or(1) <= 1;
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

/// The cache key of a request (its body, as parsed).
pub fn key(team: &str, chain: &[&str], body: &Map<String, Value>) -> Key {
    const IGNORED: &[&str] = &["model", "user", "metadata", "store", "stream_options"];
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let mut h = Sha256::new();
    h.update(b"tollgate-cache-v1\0");
    h.update(team.as_bytes());
    h.update(b"\0");
    for m in chain {
        h.update(m.as_bytes());
        h.update(b"\0");
    }
    // The body's fields in key order, without the ignored ones; `stream`
    // and `include_usage` always present, as booleans.
    let mut keys: Vec<&String> = body
        .keys()
        .filter(|k| !IGNORED.contains(&k.as_str()) && k.as_str() != "stream")
        .collect();
    keys.sort();
    let mut canon = String::new();
    for k in keys {
        canon.push_str(&Value::String(k.clone()).to_string());
        canon.push(':');
        write_sorted(&body[k.as_str()], &mut canon);
        canon.push(',');
    }
    canon.push_str(&format!("include_usage:{include_usage},stream:{stream}"));
    h.update(canon.as_bytes());
    h.finalize().into()
}

fn write_sorted(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_sorted(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_sorted(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub struct Cache {
    ttl: Duration,
    backend: Backend,
}

enum Backend {
    Memory(moka::future::Cache<Key, Arc<Entry>>),
    Redis(Arc<Redis>),
}

impl Cache {
    pub fn memory(cfg: CacheConfig) -> Cache {
        Cache {
            ttl: cfg.ttl,
            backend: Backend::Memory(
                moka::future::Cache::builder()
                    .max_capacity(cfg.max_entries)
                    .time_to_live(cfg.ttl)
                    .build(),
            ),
        }
    }

    pub fn redis(cfg: CacheConfig, redis: Arc<Redis>) -> Cache {
        Cache {
            ttl: cfg.ttl,
            backend: Backend::Redis(redis),
        }
    }

    fn redis_key(k: &Key) -> String {
        format!("tollgate:cache:{}", hex::encode(k))
    }

    /// A hit, or `None` (also when Redis is unreachable: fail open).
    pub async fn get(&self, k: &Key) -> Option<Arc<Entry>> {
        match &self.backend {
            Backend::Memory(c) => c.get(k).await,
            Backend::Redis(r) => {
                let mut conn = r.conn();
                let res: redis::RedisResult<Option<String>> = redis::cmd("GET")
                    .arg(Self::redis_key(k))
                    .query_async(&mut conn)
                    .await;
                r.observe(&res);
                let text = res.ok().flatten()?;
                serde_json::from_str::<Entry>(&text).ok().map(Arc::new)
            }
        }
    }

    pub async fn put(&self, k: Key, e: Entry) {
        match &self.backend {
            Backend::Memory(c) => c.insert(k, Arc::new(e)).await,
            Backend::Redis(r) => {
                let Ok(text) = serde_json::to_string(&e) else {
                    return;
                };
                let mut conn = r.conn();
                let res: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(Self::redis_key(&k))
                    .arg(text)
                    .arg("PX")
                    .arg(self.ttl.as_millis() as u64)
                    .query_async(&mut conn)
                    .await;
                r.observe(&res);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_ignore_field_order_and_bookkeeping_but_not_meaning() {
        let a = json!({"model": "auto", "temperature": 0, "messages": [{"role": "user", "content": "hi"}],
                       "user": "u1", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"a": 1, "b": 2}}}]});
        let b = json!({"tools": [{"function": {"parameters": {"b": 2, "a": 1}, "name": "f"}, "type": "function"}],
                       "messages": [{"content": "hi", "role": "user"}], "temperature": 0, "model": "gpt-4", "user": "u2"});
        let k = |team: &str, chain: &[&str], v: &Value| key(team, chain, v.as_object().unwrap());
        assert_eq!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &b));
        // Another team, chain, tool, parameter or stream mode: another key.
        assert_ne!(k("web", &["gpt-4"], &a), k("data", &["gpt-4"], &a));
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-3.5-turbo"], &a));
        let mut c = a.clone();
        c["tools"][0]["function"]["name"] = json!("g");
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &c));
        let mut d = a.clone();
        d["top_p"] = json!(0.5);
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &d));
        let mut e = a.clone();
        e["stream"] = json!(true);
        assert_ne!(k("web", &["gpt-4"], &a), k("web", &["gpt-4"], &e));
    }

    #[test]
    fn random_reorderings_hash_alike() {
        use rand::seq::SliceRandom;
        let mut rng = rand::rng();
        let fields = [
            ("temperature", json!(0)),
            ("max_tokens", json!(20)),
            ("messages", json!([{"role": "user", "content": "x"}])),
            ("seed", json!(7)),
            ("stop", json!(["\n"])),
            ("response_format", json!({"type": "json_object"})),
        ];
        let reference = key(
            "t",
            &["m"],
            &fields
                .iter()
                .cloned()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        );
        for _ in 0..200 {
            let mut f = fields.to_vec();
            f.shuffle(&mut rng);
            let v: Map<String, Value> = f.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            assert_eq!(key("t", &["m"], &v), reference);
        }
    }

    #[test]
    fn directives() {
        let h = http::HeaderMap::new();
        let det = json!({"temperature": 0});
        assert_eq!(
            Directive::of(&h, det.as_object().unwrap()),
            Directive {
                lookup: true,
                store: true
            }
        );
        assert_eq!(
            Directive::of(&h, &Map::new()),
            Directive {
                lookup: false,
                store: false
            }
        );
        assert_eq!(
            Directive::of(&h, json!({"temperature": 0, "n": 2}).as_object().unwrap()),
            Directive {
                lookup: false,
                store: false
            }
        );
        let mut force = http::HeaderMap::new();
        force.insert("x-tollgate-cache", http::HeaderValue::from_static("force"));
        assert!(Directive::of(&force, json!({"temperature": 1}).as_object().unwrap()).lookup);
        let mut nc = http::HeaderMap::new();
        nc.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        );
        assert_eq!(
            Directive::of(&nc, det.as_object().unwrap()),
            Directive {
                lookup: false,
                store: true
            }
        );
        let mut ns = http::HeaderMap::new();
        ns.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        assert_eq!(
            Directive::of(&ns, det.as_object().unwrap()),
            Directive {
                lookup: false,
                store: false
            }
        );
    }
}
