//! The running gateway: one compiled policy plus one backend per model.
//!
//! Built once at startup. A model whose backend cannot run (no API key, a
//! local model that is not built in) becomes `Backend::Unavailable`: the
//! router skips it, and startup logs say which models can answer and why
//! the others cannot.

use std::sync::Arc;

pub mod keys;
mod learn;
mod router;

use anyhow::{bail, Context};

use std::sync::atomic::AtomicU64;

use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::policy::{Policy, ProviderKind};
use crate::state::budgets::{BudgetGuard, Budgets, MemoryBudgets, RedisBudgets};
use crate::state::cache::{MemoryCache, RedisCache, ResponseCache};
use crate::state::limits::{LimitGuard, MemoryLimits, RateLimits, RedisLimits};
use crate::state::{Outages, Redis};
use crate::upstream::http::Http;
use crate::upstream::openai::OpenAiUpstream;

pub enum Backend {
    OpenAi(Box<OpenAiUpstream>),
    #[cfg(feature = "local")]
    Local(Arc<crate::local::LocalModel>),
    Unavailable(String),
}

impl Backend {
    /// False while a local model is still loading.
    pub fn settled(&self) -> bool {
        match self {
            #[cfg(feature = "local")]
            Backend::Local(m) => m.is_loaded_or_failed(),
            _ => true,
        }
    }

    /// What loading found that slows this model down (a local model's
    /// tensor types without a SIMD kernel on this CPU).
    pub fn warning(&self) -> Option<&str> {
        match self {
            #[cfg(feature = "local")]
            Backend::Local(m) => m.warning(),
            _ => None,
        }
    }

    pub fn unavailable_reason(&self) -> Option<String> {
        match self {
            Backend::Unavailable(why) => Some(why.clone()),
            #[cfg(feature = "local")]
            Backend::Local(m) => m.unavailable_reason(),
            Backend::OpenAi(_) => None,
        }
    }

    /// `unavailable_reason` as a client may read it: a local model's load
    /// error (file paths, the host's layout) stays in the log.
    pub fn client_reason(&self) -> Option<String> {
        match self {
            #[cfg(feature = "local")]
            Backend::Local(m) if m.is_loaded_or_failed() => m
                .unavailable_reason()
                .map(|_| "its model failed to load; the gateway's log says why".to_string()),
            _ => self.unavailable_reason(),
        }
    }
}

pub struct Gateway {
    pub policy: Arc<Policy>,
    pub backends: Vec<Backend>,
    /// Names sent in `model` fields, shared by every reply.
    pub model_names: Vec<Arc<str>>,
    pub anonymous: bool,
    /// Each key's place in `policy.keys`, id and team, by its hash.
    pub key_index: keys::Index,
    pub clock: Clock,
    pub budgets: Arc<BudgetGuard>,
    /// What settlements have shown of each model's billing.
    pub bounds: Arc<crate::state::bounds::Bounds>,
    pub limits: Arc<LimitGuard>,
    /// `None` without `cache:` in the policy.
    pub cache: Option<Arc<dyn ResponseCache>>,
    /// `Some` with `state: redis://…`.
    pub redis: Option<Arc<Redis>>,
    /// `None` with `ledger: none`.
    pub ledger: Option<Arc<Ledger>>,
    pub counters: Arc<Counters>,
    pub requests: Arc<crate::telemetry::RequestMetrics>,
    /// One circuit breaker per model.
    pub breakers: Vec<Arc<crate::circuit::Breaker>>,
    /// Work that outlives a request (budget settlements in Redis, cache
    /// stores, token corrections); graceful shutdown waits for it.
    pub tasks: TaskTracker,
    /// The learned router in use: `Options::router` with the policy's
    /// `router: { heads }` when it names some.
    router: Option<Arc<crate::classify::Router>>,
    opts: Options,
    /// The loaded local engines, reused by a reload.
    #[cfg(feature = "local")]
    registry: std::sync::Mutex<crate::local::Registry>,
}

/// Event counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub budget_alerts: AtomicU64,
    pub budget_rejections: AtomicU64,
    pub budget_downgrades: AtomicU64,
    pub rate_limited: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Requests charged on a local count: no valid usage came back.
    pub usage_estimated: AtomicU64,
    /// Router learning: outcomes written, sampled requests without one.
    pub shadow_outcomes: AtomicU64,
    pub shadow_failures: AtomicU64,
    /// Requests admitted unchecked or refused because Redis was down.
    pub outages: Outages,
}

#[derive(Clone, Default)]
pub struct Options {
    pub allow_anonymous: bool,
    /// Time for budgets and the ledger (tests move a manual clock).
    pub clock: Clock,
    /// The learned router; `None`: the keyword classifier.
    pub router: Option<Arc<crate::classify::Router>>,
}

impl Gateway {
    /// The learned router, when one is loaded.
    pub fn router(&self) -> Option<&crate::classify::Router> {
        self.router.as_deref()
    }

    pub fn new(policy: Policy, opts: &Options) -> anyhow::Result<Gateway> {
        Gateway::build(policy, opts, None)
    }

    /// A gateway for a new policy that keeps this one's state where the
    /// new policy does not change it: loaded local models (same file,
    /// template and device), budgets and rate limits with the same
    /// definitions (so their spending and buckets carry over), the cache,
    /// the Redis connection, the ledger writer, circuit breakers of models
    /// with the same name, and every counter. A changed budget set is
    /// rebuilt and, in memory, reloads the period's spending from the
    /// ledger. On error nothing changes: the caller keeps this gateway.
    pub fn reload(&self, policy: Policy) -> anyhow::Result<Gateway> {
        if policy.ledger != self.policy.ledger {
            bail!("`ledger:` changed; a new ledger needs a restart (rows in flight go to the old one)");
        }
        Gateway::build(policy, &self.opts, Some(self))
    }

    fn build(policy: Policy, opts: &Options, prev: Option<&Gateway>) -> anyhow::Result<Gateway> {
        let anonymous = policy.keys.is_none();
        if anonymous && !opts.allow_anonymous {
            bail!(
                "the policy has no `keys:` section, so anyone could call it; \
                 add keys (see `tollgate key new`) or pass --allow-anonymous"
            );
        }
        for w in policy.warnings() {
            tracing::warn!("{w}");
        }
        let router = router::router_for(&policy, opts)?;
        // One HTTP client (connection pool) per provider: the connect
        // timeout is a client setting.
        let mut clients = std::collections::HashMap::new();
        #[cfg(feature = "local")]
        let mut locals = prev
            .and_then(|p| p.registry.lock().ok().map(|r| r.clone()))
            .unwrap_or_default();
        let mut backends = Vec::with_capacity(policy.models.len());
        for model in &policy.models {
            let provider = policy.provider_of(model);
            let backend = match &provider.kind {
                ProviderKind::OpenAi {
                    base_url,
                    api_key: Some(key),
                    timeout,
                    connect_timeout,
                    total_timeout,
                    chat_only,
                    anthropic,
                } => {
                    let http = match clients.get(&model.provider) {
                        Some(c) => Http::clone(c),
                        None => {
                            let c =
                                Http::new(*connect_timeout).context("building the HTTP client")?;
                            clients.insert(model.provider, c.clone());
                            c
                        }
                    };
                    let made = match anthropic {
                        Some(version) => OpenAiUpstream::anthropic(
                            http,
                            base_url,
                            key,
                            version,
                            (*timeout, *total_timeout),
                        ),
                        None => OpenAiUpstream::new(http, base_url, key, *timeout, *total_timeout)
                            .map(|u| u.chat_only(*chat_only)),
                    };
                    match made {
                        Ok(u) => Backend::OpenAi(Box::new(u)),
                        Err(why) => bail!("provider `{}`: {why}", provider.name),
                    }
                }
                ProviderKind::OpenAi { api_key: None, .. } => Backend::Unavailable(format!(
                    "provider `{}` has no API key (its api_key expanded to nothing)",
                    provider.name
                )),
                #[cfg(feature = "local")]
                ProviderKind::Local { device } => Backend::Local(locals.get(model, *device)?),
                #[cfg(not(feature = "local"))]
                ProviderKind::Local { .. } => Backend::Unavailable(
                    "this tollgate was built without the `local` feature".into(),
                ),
            };
            backends.push(backend);
        }
        let model_names: Vec<Arc<str>> = policy
            .models
            .iter()
            .map(|m| Arc::from(m.name.as_str()))
            .collect();
        let same_state = prev.filter(|p| p.policy.state == policy.state);
        let redis = match (
            &policy.state.redis,
            same_state.and_then(|p| p.redis.clone()),
        ) {
            (None, _) => None,
            (Some(_), Some(r)) => Some(r),
            (Some(url), None) => Some(Arc::new(Redis::connect(url.expose())?)),
        };
        // The ledger first: a rebuilt in-memory budget seeds from it.
        let same_ledger = |p: &&Gateway| {
            (&p.policy.ledger, &p.policy.ledger_journal) == (&policy.ledger, &policy.ledger_journal)
        };
        let ledger = match prev.filter(same_ledger) {
            Some(p) => p.ledger.clone(),
            None => Ledger::start(
                policy.ledger.clone(),
                policy.ledger_journal.as_deref().map(std::path::Path::new),
            )
            .context("starting the ledger writer")?,
        };
        let budgets = match same_state.filter(|p| p.policy.budgets == policy.budgets) {
            Some(p) => p.budgets.clone(),
            None => {
                if let Some(l) = &ledger {
                    l.flush(std::time::Duration::from_secs(5));
                }
                let defs = policy.budgets.clone();
                let store: Arc<dyn Budgets> = match &redis {
                    None => {
                        let m = MemoryBudgets::new(defs.clone(), opts.clock.clone());
                        m.seed_from_ledger(&policy.ledger);
                        Arc::new(m)
                    }
                    Some(r) => Arc::new(RedisBudgets::new(
                        defs.clone(),
                        opts.clock.clone(),
                        r.clone(),
                    )),
                };
                Arc::new(BudgetGuard::new(defs, opts.clock.clone(), store))
            }
        };
        let limits = match same_state.filter(|p| p.policy.rate_limits == policy.rate_limits) {
            Some(p) => p.limits.clone(),
            None => {
                let defs = policy.rate_limits.clone();
                let store: Arc<dyn RateLimits> = match &redis {
                    None => Arc::new(MemoryLimits::new(defs.clone())),
                    Some(r) => Arc::new(RedisLimits::new(defs.clone(), r.clone())),
                };
                Arc::new(LimitGuard::new(defs, store))
            }
        };
        let cache = match same_state.filter(|p| p.policy.cache == policy.cache) {
            Some(p) => p.cache.clone(),
            None => {
                let cache_redis = match &policy.state.cache_redis {
                    Some(url) => Some(Arc::new(Redis::connect(url.expose())?)),
                    None => redis.clone(),
                };
                policy.cache.map(|c| -> Arc<dyn ResponseCache> {
                    match cache_redis {
                        None => Arc::new(MemoryCache::new(c)),
                        Some(r) => Arc::new(RedisCache::new(c, r)),
                    }
                })
            }
        };
        let breakers = model_names
            .iter()
            .map(|name| {
                prev.and_then(|p| {
                    let i = p.policy.model_ids.get(&**name)?;
                    (p.policy.circuit == policy.circuit).then(|| p.breakers[*i].clone())
                })
                .unwrap_or_else(|| Arc::new(crate::circuit::Breaker::new(policy.circuit)))
            })
            .collect();
        let bounds = Arc::new(crate::state::bounds::Bounds::new(policy.models.len()));
        Ok(Gateway {
            key_index: keys::index(policy.keys.as_deref().unwrap_or_default()),
            policy: Arc::new(policy),
            bounds,
            backends,
            model_names,
            anonymous,
            clock: opts.clock.clone(),
            budgets,
            limits,
            cache,
            redis,
            ledger,
            counters: prev.map_or_else(Arc::default, |p| p.counters.clone()),
            requests: prev.map_or_else(Arc::default, |p| p.requests.clone()),
            breakers,
            tasks: prev.map_or_else(TaskTracker::new, |p| p.tasks.clone()),
            router,
            opts: opts.clone(),
            #[cfg(feature = "local")]
            registry: std::sync::Mutex::new(locals),
        })
    }

    /// Waits for background work, then writes every queued ledger row
    /// (graceful shutdown).
    pub async fn shutdown(&self) {
        self.tasks.close();
        self.tasks.wait().await;
        if let Some(l) = self.ledger.clone() {
            if tokio::task::spawn_blocking(move || l.close())
                .await
                .is_err()
            {
                tracing::error!("closing the ledger failed");
            }
        }
    }

    /// Writes every queued ledger row, blocking (tests and tools).
    pub fn close(&self) {
        if let Some(l) = &self.ledger {
            l.close();
        }
    }

    /// Logs which models can answer, once at startup.
    pub fn log_availability(&self) {
        if self.anonymous {
            tracing::warn!("ANONYMOUS ACCESS: the policy has no keys, so every caller is accepted without authentication (--allow-anonymous)");
        }
        let (mut available, mut loading) = (0, 0);
        for (model, backend) in self.policy.models.iter().zip(&self.backends) {
            match backend.unavailable_reason() {
                None => {
                    available += 1;
                    tracing::info!(model = %model.name, "model available");
                }
                Some(why) if !backend.settled() => {
                    loading += 1;
                    tracing::info!(model = %model.name, state = %why, "model loading; routes skip it until it is loaded");
                }
                Some(why) => {
                    tracing::warn!(model = %model.name, reason = %why, "model unavailable; routes skip it")
                }
            }
        }
        if available == 0 && loading == 0 {
            tracing::warn!("no model is available: every chat request will get 503");
        }
    }

    /// True once every local model has finished loading (or failed to:
    /// a model that cannot load is reported at startup and skipped, it
    /// does not hold readiness forever).
    pub fn ready(&self) -> bool {
        self.backends.iter().all(Backend::settled)
    }
}
