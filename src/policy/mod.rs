//! Routing policies: YAML in, one immutable `Policy` out.
//!
//! Two stages, shared by `serve` and `policy check`:
//! 1. `yaml::parse` + serde into the `raw` types (shape only, unknown keys
//!    rejected, the first shape error reported with its position);
//! 2. `compile()` checks meaning (references, prices, hashes, env variables)
//!    and collects *every* error before failing.
//!
//! Every error is rendered `file:line:col: path: message`.

pub mod catalog;
mod compile;
mod engine;
pub mod env;
mod estimate;
mod fields;
mod load;
mod models;
pub mod raw;
pub mod shadow;
mod spend;
pub mod yaml;

use std::collections::HashMap;
use std::time::Duration;

pub use compile::compile;
pub use load::{load_file, load_file_offline, load_str, Diagnostic, LoadError};

use crate::classify::{Complexity, Task};
use crate::money::{Nanos, Price};
use crate::secret::Secret;

/// Index of a model in `Policy::models`.
pub type ModelId = usize;

/// A compiled, validated policy. Immutable; a reload builds a new one.
#[derive(Debug)]
pub struct Policy {
    pub max_body_bytes: usize,
    /// Largest `max_tokens` a request may ask for.
    pub max_tokens_cap: u32,
    /// Most messages in one request.
    pub max_messages: u32,
    /// `/metrics` needs no key (`server.metrics: open`); else an admin key.
    pub metrics_open: bool,
    /// Time allowed to receive a request's body.
    pub body_timeout: std::time::Duration,
    pub providers: Vec<Provider>,
    pub models: Vec<Model>,
    pub model_ids: HashMap<String, ModelId>,
    pub aliases: HashMap<String, String>,
    pub routes: Vec<Route>,
    /// `None`: the policy has no `keys:` section.
    pub keys: Option<Vec<Key>>,
    pub retry: Retry,
    /// The price savings are measured against (`baseline:`, default gpt-4).
    pub baseline: Baseline,
    pub ledger: LedgerTarget,
    /// The ledger's crash journal directory (`ledger::journal`).
    pub ledger_journal: Option<String>,
    pub budgets: Vec<Budget>,
    pub rate_limits: Vec<RateLimit>,
    pub cache: Option<CacheConfig>,
    pub state: StateConfig,
    pub circuit: crate::circuit::Config,
    /// The built-in price catalog with what `prices:` imported.
    pub catalog: catalog::Catalog,
    /// `router: { heads }`: the learned router's heads from that file.
    pub router_heads: Option<RouterHeads>,
    /// `shadow:`, router learning; its budget is among `budgets`.
    pub shadow: Option<shadow::Shadow>,
}

/// A heads file the policy names, read and checked when it compiles (so
/// a reload picks up a refitted file, and a bad one keeps the old policy).
#[derive(Debug, Clone)]
pub struct RouterHeads {
    pub path: String,
    pub heads: std::sync::Arc<crate::classify::learned::heads::Heads>,
}

/// Where budgets, rate limits and the cache keep their state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// `None`: in this process's memory.
    pub redis: Option<Secret>,
    /// When Redis is unreachable, admit requests without budget and rate
    /// checks instead of answering 503.
    pub fail_open: bool,
    /// The response cache's own Redis (`state.cache_url`); `None`: `redis`.
    pub cache_redis: Option<Secret>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// How it is named in logs and errors, e.g. `key:*`.
    pub name: String,
    pub scope: Scope,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    pub ttl: Duration,
    pub max_entries: u64,
}

#[derive(Debug, Clone)]
pub struct Baseline {
    pub name: String,
    pub price: Price,
}

/// Where ledger rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerTarget {
    Sqlite(String),
    Postgres(Secret),
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// How it is named in errors, headers and `/admin/budgets`, e.g. `team:web/month`.
    pub name: String,
    pub scope: Scope,
    pub limit: Nanos,
    pub period: Period,
    pub on_exhausted: OnExhausted,
    /// Alert thresholds, in thousandths of the limit.
    pub alert_at: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Global,
    Key(Target),
    Team(Target),
    Model(Target),
}

/// A scope's subject: one name, or each one separately (`"*"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    One(String),
    Each,
}

/// Who a request is, as budgets and rate limits see it. `model: None`
/// before a model is chosen.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub key: &'a str,
    pub team: &'a str,
    pub model: Option<&'a str>,
}

impl Scope {
    /// The subject this scope counts `s` under (`""` for global), or
    /// `None` when it does not apply: scope matching for budgets, rate
    /// limits and the ledger, in one place.
    pub fn subject<'a>(&self, s: Subject<'a>) -> Option<&'a str> {
        let (target, value) = match self {
            Scope::Global => return Some(""),
            Scope::Key(t) => (t, s.key),
            Scope::Team(t) => (t, s.team),
            Scope::Model(t) => (t, s.model?),
        };
        target.admits(value).then_some(value)
    }

    /// The one subject a scope names (`""` for global); `None` for `"*"`.
    pub fn named(&self) -> Option<&str> {
        match self {
            Scope::Global => Some(""),
            Scope::Key(Target::One(n))
            | Scope::Team(Target::One(n))
            | Scope::Model(Target::One(n)) => Some(n),
            _ => None,
        }
    }
}

impl Target {
    pub fn admits(&self, value: &str) -> bool {
        match self {
            Target::Each => true,
            Target::One(n) => n == value,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExhausted {
    Reject,
    Downgrade,
}

#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
}

#[derive(Debug)]
pub enum ProviderKind {
    OpenAi {
        base_url: String,
        /// `None` when the key expanded to nothing: its models are unavailable.
        api_key: Option<Secret>,
        /// Until the first byte of the answer.
        timeout: Duration,
        connect_timeout: Duration,
        total_timeout: Duration,
        /// Speaks Chat Completions but not the Responses API.
        chat_only: bool,
        /// `kind: anthropic`: speaks Anthropic's Messages API, with this
        /// `anthropic-version`.
        anthropic: Option<String>,
    },
    Local {
        device: Device,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Auto,
    Cpu,
    Cuda(usize),
}

#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub provider: usize,
    pub upstream_model: String,
    pub pricing: Pricing,
    pub context: Option<u32>,
    pub file: Option<String>,
    pub chat_template: Option<String>,
    pub max_concurrency: u32,
    pub max_queue: u32,
    /// Counts its prompts for budget reservations.
    pub counter: crate::classify::counting::Counter,
    /// The most it answers when a request sets no output bound.
    pub max_output: Option<u32>,
    /// Local models on a GPU: paged attention with this KV cache.
    pub kv_cache: Option<KvCache>,
    /// Local models: sequences kept for prefix reuse (0: off).
    pub prefix_cache: u32,
}

/// The paged-attention KV cache of a local model (`kv_cache:`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvCache {
    pub memory: KvMemory,
    /// Tokens per block: 8, 16 or 32.
    pub block_size: u32,
    /// Keep the cache in FP8 (E4M3) instead of the model's dtype.
    pub f8: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KvMemory {
    Megabytes(u32),
    /// A share of the GPU memory left after loading the weights.
    Fraction(f32),
    /// Room for this many tokens (all sequences together).
    Tokens(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pricing {
    PerToken(Price),
    /// USD per hour of the machine; per-token cost comes from measured
    /// throughput while serving, and from `expected` for offline estimates.
    GpuHour {
        per_hour: Nanos,
        expected: Throughput,
    },
    /// No price in the policy or any catalog: charged at the baseline's
    /// price, marked `unpriced`, and warned about.
    Unknown,
}

/// Tokens per second a local model is expected to reach (milli-tokens, so
/// prices stay integer): the offline commands' basis for its cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throughput {
    pub prefill_milli: u64,
    pub generation_milli: u64,
}

impl Throughput {
    /// The last measured figures (README, `bench/local.sh`: the test model
    /// on a 2-core CPU, one request): 40.4 prefill, 26.7 generation.
    pub const MEASURED: Throughput = Throughput {
        prefill_milli: 40_400,
        generation_milli: 26_700,
    };
}

impl Pricing {
    /// The per-token price, or for a GPU-hour model the estimate from its
    /// expected throughput; `true` when it is an estimate.
    pub fn estimate(&self) -> (Price, bool) {
        match *self {
            Pricing::PerToken(p) => (p, false),
            Pricing::Unknown => (Price::default(), true),
            Pricing::GpuHour { per_hour, expected } => (
                crate::money::price_from_gpu_hour(
                    per_hour,
                    expected.prefill_milli,
                    expected.generation_milli,
                ),
                true,
            ),
        }
    }
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub when: When,
    pub chain: Vec<ModelId>,
}

#[derive(Debug, Default)]
pub struct When {
    pub model: Option<Vec<String>>,
    pub task: Option<Vec<Task>>,
    pub complexity: Option<Vec<Complexity>>,
    pub strong_score: Option<Cmp>,
    pub prompt_tokens: Option<Cmp>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cmp {
    pub op: CmpOp,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Cmp {
    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            CmpOp::Lt => x < self.value,
            CmpOp::Le => x <= self.value,
            CmpOp::Gt => x > self.value,
            CmpOp::Ge => x >= self.value,
            CmpOp::Eq => x == self.value,
        }
    }
}

#[derive(Debug)]
pub struct Key {
    pub id: String,
    pub team: String,
    pub hash: [u8; 32],
    pub models: Option<Vec<String>>,
    pub admin: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Duration,
}

impl Policy {
    pub fn model(&self, name: &str) -> Option<&Model> {
        self.model_ids.get(name).map(|&i| &self.models[i])
    }

    pub fn provider_of(&self, model: &Model) -> &Provider {
        &self.providers[model.provider]
    }
}
