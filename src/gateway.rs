//! The running gateway: one compiled policy plus one backend per model.
//!
//! Built once at startup. A model whose backend cannot run (no API key, a
//! local model that is not built in) becomes `Backend::Unavailable`: the
//! router skips it, and startup logs say which models can answer and why
//! the others cannot.

use std::sync::Arc;

use anyhow::{bail, Context};

use crate::policy::{Policy, ProviderKind};
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
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub allow_anonymous: bool,
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
        Ok(Gateway {
            policy: Arc::new(policy),
            backends,
            model_names,
            anonymous,
        })
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
