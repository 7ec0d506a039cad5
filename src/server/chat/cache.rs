//! Cache: a hit is replayed as it was sent and costs nothing; a miss says
//! under which key the answer is stored. The cache fails open: a store
//! that cannot be reached is a miss and a skipped store, counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Map, Value};

use super::settle::Tab;
use crate::gateway::Gateway;
use crate::policy::ModelId;
use crate::state::cache::{self, Directive, Entry, Key};
use crate::upstream::SseStream;

pub enum Lookup {
    Hit(Arc<Entry>),
    Miss(Plan),
}

/// What the answer does with the cache.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Where to store the answer, if it is stored.
    pub store: Option<Key>,
    /// `x-tollgate-cache` and the ledger: `off`, `bypass` or `miss`.
    pub state: &'static str,
}

/// `endpoint` keeps other endpoints' answers apart (`""` for chat).
pub async fn run(
    gw: &Gateway,
    team: &str,
    chain: &[ModelId],
    d: Directive,
    body: &Map<String, Value>,
    endpoint: &str,
) -> Lookup {
    let Some(c) = &gw.cache else {
        return Lookup::Miss(Plan {
            store: None,
            state: "off",
        });
    };
    if !d.lookup && !d.store {
        return Lookup::Miss(Plan {
            store: None,
            state: "bypass",
        });
    }
    let mut names: Vec<&str> = chain.iter().map(|id| &*gw.model_names[*id]).collect();
    if !endpoint.is_empty() {
        names.insert(0, endpoint);
    }
    let key = cache::key(team, &names, body);
    if d.lookup {
        match c.get(&key).await {
            Ok(Some(e)) => {
                gw.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Lookup::Hit(e);
            }
            Ok(None) => {}
            Err(_) => {
                gw.counters
                    .outages
                    .cache_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        gw.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
    }
    Lookup::Miss(Plan {
        store: d.store.then_some(key),
        state: "miss",
    })
}

/// Stores an answer in the background.
pub fn store(gw: &Arc<Gateway>, key: Key, entry: Entry) {
    if let Some(cache) = gw.cache.clone() {
        let g = gw.clone();
        gw.tasks.spawn(async move {
            if cache.put(key, entry).await.is_err() {
                g.counters
                    .outages
                    .cache_skipped
                    .fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Passes a stream through, keeping its frames; when it has ended after
/// `[DONE]` (or a Responses `response.completed`) with no error event, they are stored as one entry. The tab has
/// closed by then (the inner stream closes it as it ends) and says what
/// the answer cost.
pub fn capture(gw: &Arc<Gateway>, key: Key, model: String, tab: Tab, s: SseStream) -> SseStream {
    struct Capture {
        inner: SseStream,
        frames: Vec<u8>,
        complete: bool,
        failed: bool,
    }
    let gw = gw.clone();
    let state = Capture {
        inner: s,
        frames: Vec::new(),
        complete: false,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut c| {
        let (gw, tab, model) = (gw.clone(), tab.clone(), model.clone());
        async move {
            let Some(f) = c.inner.next().await else {
                if c.complete && !c.failed {
                    let (usage, cost) = tab.outcome();
                    let entry = Entry {
                        stream: true,
                        model,
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        cost_nanos: cost.0,
                        body: String::from_utf8_lossy(&c.frames).into_owned(),
                    };
                    store(&gw, key, entry);
                }
                return None;
            };
            if f.starts_with(b"data: {\"error\"") || f.starts_with(b"event: error\n") {
                c.failed = true;
            }
            if !c.failed {
                c.frames.extend_from_slice(&f);
                c.complete = f.as_ref() == b"data: [DONE]\n\n"
                    || f.starts_with(b"event: response.completed\n");
            }
            Some((f, c))
        }
    }))
}
