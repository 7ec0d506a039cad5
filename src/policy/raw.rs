//! The policy file exactly as written: serde types with unknown keys
//! rejected. Nothing here is checked beyond shape; `compile` does the rest
//! and reports every problem at once.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub version: u32,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub models: BTreeMap<String, RawModel>,
    /// Names clients may send to be routed, e.g. `auto: router`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `None` (no `keys:` section) means anonymous access, allowed only
    /// with `serve --allow-anonymous`.
    pub keys: Option<Vec<RawKey>>,
    #[serde(default)]
    pub retry: RawRetry,
    /// The model whose price the savings are measured against (`gpt-4`).
    pub baseline: Option<String>,
    /// Where the cost ledger goes: `sqlite:PATH`, `postgres://…` or `none`.
    pub ledger: Option<String>,
    /// The crash journal's directory, or `none` (default: next to a
    /// SQLite ledger, none for PostgreSQL).
    pub ledger_journal: Option<String>,
    #[serde(default)]
    pub budgets: Vec<RawBudget>,
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    pub cache: Option<RawCache>,
    /// `memory` (default) or `redis://…`, or `{ url, fail_open }`.
    pub state: Option<RawState>,
    #[serde(default)]
    pub circuit_breaker: RawCircuit,
    /// A price catalog to import (LiteLLM's format), over the built-in one.
    pub prices: Option<RawPrices>,
    /// The learned router's heads, in place of the shipped ones.
    pub router: Option<RawRouter>,
    /// Router learning from live traffic (`policy::shadow`).
    pub shadow: Option<RawShadow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
/// `shadow:` (compiled by `shadow`).
pub struct RawShadow {
    /// The share of routed requests sampled, in [0, 1].
    pub sample: f64,
    /// Default: the policy's baseline model.
    pub strong: Option<String>,
    /// Default: the first model of the policy's catch-all route (one
    /// without `when`).
    pub weak: Option<String>,
    pub judge: String,
    pub budget_usd: f64,
    /// day (default), week, month or total.
    pub period: Option<String>,
    /// The JSON lines file outcomes are appended to (default
    /// `router-outcomes.jsonl`). It holds the prompts.
    pub outcomes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    /// A heads file written by `tollgate route fit`.
    pub heads: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrices {
    pub file: String,
    /// The file's SHA-256 (hex); a file that differs is refused.
    pub sha256: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuit {
    /// Consecutive upstream failures that open a model's circuit (default 5).
    pub failures: Option<u32>,
    /// How long an open circuit keeps the model out of routing (default 30s).
    pub cooldown: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawState {
    Url(String),
    Full {
        url: String,
        #[serde(default)]
        fail_open: bool,
        /// The response cache's own Redis (one that may evict), so an
        /// eviction can never drop budget spend; default: `url`.
        cache_url: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub scope: RawScope,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// `exact` or `off`.
    pub mode: Option<String>,
    /// How long an answer is kept, e.g. `1h`.
    pub ttl: Option<String>,
    /// Most answers kept in memory (the Redis backend relies on Redis's
    /// own eviction).
    pub max_entries: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub scope: RawScope,
    pub limit_usd: serde_json::Number,
    /// `day`, `week`, `month` (calendar, UTC) or `total`.
    pub period: Option<String>,
    /// `reject` (default) or `downgrade`.
    pub on_exhausted: Option<String>,
    /// Fractions of the limit at which to alert, e.g. `[0.8]`.
    #[serde(default)]
    pub alert_at: Vec<serde_json::Number>,
}

/// One of `key`, `team`, `model` (a name, or `"*"` for each one
/// separately) or `global: true`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScope {
    pub key: Option<String>,
    pub team: Option<String>,
    pub model: Option<String>,
    pub global: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Largest accepted request body, e.g. `1MiB` or a byte count.
    pub max_body: Option<ByteSize>,
    /// Largest `max_tokens` a request may ask for (default 1,048,576).
    pub max_tokens: Option<u32>,
    /// Most messages in one request (default 2,048).
    pub max_messages: Option<u32>,
    /// Who may read `/metrics`: `admin` (default: an admin key) or `open`
    /// (anyone who can reach the port, for a scraper without a key).
    pub metrics: Option<String>,
    /// Time allowed to receive a request's body (default 30s).
    pub body_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Time allowed until the upstream's first byte, e.g. `60s`.
    pub timeout: Option<String>,
    /// Time allowed to open the connection (default 10s).
    pub connect_timeout: Option<String>,
    /// Time allowed for the whole answer, streams included (default 10m).
    pub total_timeout: Option<String>,
    /// For `kind: local`: `auto`, `cpu` or `cuda:N`.
    pub device: Option<String>,
    /// For `kind: openai`: the server speaks Chat Completions but not the
    /// Responses API (`/v1/responses` is translated for it).
    pub chat_only: Option<bool>,
    /// For `kind: anthropic`: the `anthropic-version` header (default
    /// 2023-06-01).
    pub anthropic_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: String,
    /// The name sent upstream, when it differs from the policy's name.
    pub upstream_model: Option<String>,
    pub price: Option<RawPrice>,
    pub context: Option<u32>,
    /// For local models: the GGUF file.
    pub file: Option<String>,
    /// For local models: a `.jinja` or `.json` chat template file.
    pub chat_template: Option<String>,
    pub max_concurrency: Option<u32>,
    pub max_queue: Option<u32>,
    /// How its prompts are counted for budgets: `cl100k`, `o200k`,
    /// `bytes`, or a `tokenizer.json` file.
    pub tokenizer: Option<String>,
    /// The most it answers when a request sets no output bound.
    pub max_output: Option<u32>,
    /// For local models on a GPU: the paged-attention KV cache.
    pub kv_cache: Option<RawKvCache>,
    /// For local models: sequences whose KV cache is kept for prompts that
    /// share their prefix (0 turns it off; default 16).
    pub prefix_cache: Option<u32>,
}

/// One of `memory_gb`, `memory_fraction` (of the GPU's free memory) or
/// `context_tokens`; `block_size` 8, 16 or 32; `dtype` auto or f8e4m3.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKvCache {
    pub memory_gb: Option<serde_json::Number>,
    pub memory_fraction: Option<serde_json::Number>,
    pub context_tokens: Option<u32>,
    pub block_size: Option<u32>,
    pub dtype: Option<String>,
}

/// USD per 1M tokens, or the hourly price of the machine a local model runs on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub input: Option<serde_json::Number>,
    pub output: Option<serde_json::Number>,
    /// Input the provider served from its prompt cache (default: `input`).
    pub cached_input: Option<serde_json::Number>,
    /// Input written to the provider's prompt cache (default: `input`).
    pub cache_write: Option<serde_json::Number>,
    /// Audio in and out (default: `input` and `output`).
    pub audio_input: Option<serde_json::Number>,
    pub audio_output: Option<serde_json::Number>,
    pub gpu_hour: Option<serde_json::Number>,
    /// With gpu_hour: the tokens per second expected, for offline estimates.
    pub prefill_per_s: Option<serde_json::Number>,
    pub generation_per_s: Option<serde_json::Number>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    #[serde(default)]
    pub when: RawWhen,
    pub to: String,
    #[serde(default)]
    pub fallback: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWhen {
    /// The model or alias the client asked for.
    pub model: Option<OneOrMany>,
    pub task: Option<OneOrMany>,
    pub complexity: Option<OneOrMany>,
    /// A comparison such as `">= 0.6"`.
    pub strong_score: Option<Comparison>,
    /// A comparison such as `"> 3000"`.
    pub prompt_tokens: Option<Comparison>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `">= 0.6"`, or a bare number meaning `>=`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Comparison {
    Number(serde_json::Number),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: String,
    pub team: String,
    /// `sha256:<64 hex digits>`, as printed by `tollgate key new`.
    pub hash: String,
    /// Models and aliases this key may use; all when absent.
    pub models: Option<Vec<String>>,
    /// May call `/admin/*` and `/dashboard`.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Upstream attempts per request, across the fallback chain.
    pub max_attempts: Option<u32>,
    /// First backoff between attempts, doubled each time, with jitter.
    pub backoff: Option<String>,
}
