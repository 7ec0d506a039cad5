//! The running gateway: one compiled policy plus one backend per model.
//!
//! Built once at startup. A model whose backend cannot run (no API key, a
//! local model that is not built in) becomes `Backend::Unavailable`: the
//! router skips it, and startup logs say which models can answer and why
//! the others cannot.

use std::sync::Arc;

use anyhow::{bail, Context};

use std::sync::atomic::AtomicU64;

use tokio_util::task::TaskTracker;

use crate::budget::{BudgetStore, Budgets};
use crate::clock::{period_bounds, Clock};
use crate::ledger::{Dim, Ledger, Query};
use crate::policy::{LedgerTarget, Policy, ProviderKind, Scope, Target};
use crate::state::cache::Cache;
use crate::state::limits::Limits;
use crate::state::redis_budgets::RedisBudgets;
use crate::state::Redis;
use crate::upstream::openai::OpenAiUpstream;

pub enum Backend {
    OpenAi(OpenAiUpstream),
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

    pub fn unavailable_reason(&self) -> Option<String> {
        match self {
            Backend::Unavailable(why) => Some(why.clone()),
            #[cfg(feature = "local")]
            Backend::Local(m) => m.unavailable_reason(),
            Backend::OpenAi(_) => None,
        }
    }
}

pub struct Gateway {
    pub policy: Arc<Policy>,
    pub backends: Vec<Backend>,
    /// Names sent in `model` fields, shared by every reply.
    pub model_names: Vec<Arc<str>>,
    pub anonymous: bool,
    pub clock: Clock,
    pub budgets: Arc<BudgetStore>,
    pub limits: Arc<Limits>,
    /// `None` without `cache:` in the policy.
    pub cache: Option<Arc<Cache>>,
    /// `Some` with `state: redis://…`.
    pub redis: Option<Arc<Redis>>,
    /// `None` with `ledger: none`.
    pub ledger: Option<Arc<Ledger>>,
    pub counters: Counters,
    pub requests: crate::telemetry::RequestMetrics,
    /// One circuit breaker per model.
    pub breakers: Vec<crate::circuit::Breaker>,
    /// Work that outlives a request (budget settlements in Redis, cache
    /// stores, token corrections); graceful shutdown waits for it.
    pub tasks: TaskTracker,
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
    /// Requests admitted unchecked because Redis was down (`fail_open`).
    pub unchecked: AtomicU64,
    /// Requests refused because Redis was down (fail closed).
    pub state_unavailable: AtomicU64,
}

#[derive(Clone, Default)]
pub struct Options {
    pub allow_anonymous: bool,
    /// Time for budgets and the ledger (tests move a manual clock).
    pub clock: Clock,
}

impl Gateway {
    pub fn new(policy: Policy, opts: &Options) -> anyhow::Result<Gateway> {
        let anonymous = policy.keys.is_none();
        if anonymous && !opts.allow_anonymous {
            bail!(
                "the policy has no `keys:` section, so anyone could call it; \
                 add keys (see `tollgate key new`) or pass --allow-anonymous"
            );
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(1024)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        #[cfg(feature = "local")]
        let mut locals = crate::local::Registry::default();
        let mut backends = Vec::with_capacity(policy.models.len());
        for model in &policy.models {
            let provider = policy.provider_of(model);
            let backend = match &provider.kind {
                ProviderKind::OpenAi {
                    base_url,
                    api_key: Some(key),
                    timeout,
                } => match OpenAiUpstream::new(http.clone(), base_url, key, *timeout) {
                    Ok(u) => Backend::OpenAi(u),
                    Err(why) => bail!("provider `{}`: {why}", provider.name),
                },
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
        let model_names = policy
            .models
            .iter()
            .map(|m| Arc::from(m.name.as_str()))
            .collect();
        let local = Budgets::new(policy.budgets.clone(), opts.clock.clone());
        let (budgets, limits, cache, redis) = match &policy.state.redis {
            None => {
                seed_budgets(&local, &policy.ledger, &opts.clock);
                (
                    BudgetStore::Memory(local),
                    Limits::memory(policy.rate_limits.clone()),
                    policy.cache.map(Cache::memory),
                    None,
                )
            }
            Some(url) => {
                let r = Arc::new(Redis::connect(url.expose())?);
                (
                    BudgetStore::Redis {
                        redis: RedisBudgets::new(
                            policy.budgets.clone(),
                            opts.clock.clone(),
                            r.clone(),
                        ),
                        local,
                        fail_open: policy.state.fail_open,
                    },
                    Limits::redis(policy.rate_limits.clone(), r.clone()),
                    policy.cache.map(|c| Cache::redis(c, r.clone())),
                    Some(r),
                )
            }
        };
        let breakers = (0..policy.models.len())
            .map(|_| crate::circuit::Breaker::new(policy.circuit))
            .collect();
        let ledger = Ledger::start(policy.ledger.clone()).context("starting the ledger writer")?;
        Ok(Gateway {
            policy: Arc::new(policy),
            backends,
            model_names,
            anonymous,
            clock: opts.clock.clone(),
            budgets: Arc::new(budgets),
            limits: Arc::new(limits),
            cache: cache.map(Arc::new),
            redis,
            ledger,
            counters: Counters::default(),
            requests: crate::telemetry::RequestMetrics::default(),
            breakers,
            tasks: TaskTracker::new(),
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

/// Loads what the ledger already holds for each budget's current period,
/// so a restart does not hand out a fresh budget. A ledger that cannot be
/// read is logged and the budgets start empty.
fn seed_budgets(budgets: &Budgets, target: &LedgerTarget, clock: &Clock) {
    if budgets.is_empty() {
        return;
    }
    let mut store = match crate::ledger::open(target) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the ledger; budgets start from zero this period");
            return;
        }
    };
    let now = clock.now();
    for (i, b) in budgets.defs().iter().enumerate() {
        let (from, _) = period_bounds(b.period, now);
        let (dim, only) = match &b.scope {
            Scope::Global => (None, None),
            Scope::Key(t) => (Some(Dim::Key), Some(t)),
            Scope::Team(t) => (Some(Dim::Team), Some(t)),
            Scope::Model(t) => (Some(Dim::Model), Some(t)),
        };
        let q = Query {
            from,
            to: i64::MAX,
            by: dim.into_iter().collect(),
        };
        match store.report(&q) {
            Ok(groups) => {
                for g in groups {
                    let subject = g.keys.first().cloned().unwrap_or_default();
                    let wanted = match only {
                        None | Some(Target::Each) => true,
                        Some(Target::One(n)) => *n == subject,
                    };
                    if wanted {
                        budgets.seed(i, &subject, g.cost);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(budget = %b.name, error = %format!("{e:#}"), "cannot read the ledger for a budget")
            }
        }
    }
}
