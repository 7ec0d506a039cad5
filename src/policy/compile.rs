//! Raw policy → runtime `Policy`, collecting every error with its path.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::catalog;
use super::env::expand;
use super::raw::{ByteSize, Comparison, RawModel, RawPolicy, RawPrice, RawProvider};
use super::spend;
use super::{
    Cmp, CmpOp, Device, Key, Model, Policy, Pricing, Provider, ProviderKind, Retry, Route, When,
};
use crate::money::{Nanos, Price};
use crate::secret::Secret;

const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Beyond any model's context today: an absurd `max_tokens` is a 400.
const DEFAULT_MAX_TOKENS: u32 = 1 << 20;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);

/// Collects `(path, message)` pairs.
#[derive(Default)]
pub(super) struct Errors(Vec<(String, String)>);

impl Errors {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push((path.into(), message.into()));
    }

    /// Records the error of `r`, if any, and passes the value on.
    pub(super) fn ok<T>(&mut self, path: impl Into<String>, r: Result<T, String>) -> Option<T> {
        r.map_err(|m| self.add(path, m)).ok()
    }
}

/// Compiles a raw policy. Returns every error found, as `(path, message)`.
pub fn compile(
    raw: RawPolicy,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, Vec<(String, String)>> {
    let mut errs = Errors::default();
    if raw.version != 1 {
        errs.add(
            "version",
            format!("unsupported version {} (expected 1)", raw.version),
        );
    }

    let max_body_bytes = match raw.server.max_body {
        None => DEFAULT_MAX_BODY,
        Some(size) => errs
            .ok("server.max_body", parse_byte_size(&size))
            .unwrap_or(DEFAULT_MAX_BODY),
    };

    let max_tokens_cap = match raw.server.max_tokens {
        Some(0) => {
            errs.add("server.max_tokens", "must be at least 1");
            1
        }
        Some(n) => n,
        None => DEFAULT_MAX_TOKENS,
    };

    let max_messages = match raw.server.max_messages {
        Some(0) => {
            errs.add("server.max_messages", "must be at least 1");
            1
        }
        Some(n) => n,
        None => 2048,
    };

    // Names declared, valid or not: a reference to an invalid entry is not
    // reported again as unknown.
    let provider_names: HashSet<String> = raw.providers.keys().cloned().collect();
    let declared: HashSet<String> = raw.models.keys().cloned().collect();

    let mut providers = Vec::new();
    let mut provider_ids = HashMap::new();
    for (name, p) in raw.providers {
        if let Some(kind) = compile_provider(&name, p, env, &mut errs) {
            provider_ids.insert(name.clone(), providers.len());
            providers.push(Provider { name, kind });
        }
    }

    let mut models = Vec::new();
    let mut model_ids = HashMap::new();
    for (name, m) in raw.models {
        let path = format!("models.{name}");
        let known_provider = provider_names.contains(&m.provider);
        if let Some(model) = compile_model(
            &name,
            m,
            &provider_ids,
            &provider_names,
            &providers,
            base,
            &mut errs,
        ) {
            model_ids.insert(name, models.len());
            models.push(model);
        } else if !known_provider && !errs.0.iter().any(|(p, _)| p.starts_with(&path)) {
            errs.add(path, "invalid model");
        }
    }

    let mut aliases = HashMap::new();
    for (alias, target) in raw.aliases {
        let path = format!("aliases.{alias}");
        if declared.contains(&alias) {
            errs.add(&path, format!("alias `{alias}` has the name of a model"));
        }
        if target != "router" {
            errs.add(
                &path,
                format!("alias target must be `router`, not `{target}`"),
            );
        }
        aliases.insert(alias, target);
    }

    let mut routes = Vec::new();
    let mut route_names = HashSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        if !route_names.insert(r.name.clone()) {
            errs.add(
                format!("{path}.name"),
                format!("duplicate route name `{}`", r.name),
            );
        }
        let mut chain = Vec::new();
        let targets = std::iter::once((format!("{path}.to"), r.to)).chain(
            r.fallback
                .into_iter()
                .enumerate()
                .map(|(j, f)| (format!("{path}.fallback[{j}]"), f)),
        );
        for (p, name) in targets {
            match model_ids.get(&name) {
                Some(&id) if chain.contains(&id) => {
                    errs.add(p, format!("model `{name}` appears twice in this route"))
                }
                Some(&id) => chain.push(id),
                None if declared.contains(&name) => {} // invalid; reported already
                None => errs.add(p, unknown_model(&name, &declared)),
            }
        }
        let when = compile_when(r.when, &path, &declared, &aliases, &mut errs);
        routes.push(Route {
            name: r.name,
            when,
            chain,
        });
    }
    if !aliases.is_empty() && routes.is_empty() {
        errs.add("routes", "aliases are declared but there are no routes");
    }

    let keys = raw.keys.map(|keys| {
        let mut ids = HashSet::new();
        let mut out = Vec::new();
        for (i, k) in keys.into_iter().enumerate() {
            let path = format!("keys[{i}]");
            if !ids.insert(k.id.clone()) {
                errs.add(format!("{path}.id"), format!("duplicate key id `{}`", k.id));
            }
            let hash = errs.ok(format!("{path}.hash"), parse_hash(&k.hash));
            if let Some(models) = &k.models {
                for (j, m) in models.iter().enumerate() {
                    if !declared.contains(m) && !aliases.contains_key(m) {
                        errs.add(
                            format!("{path}.models[{j}]"),
                            format!("`{m}` is neither a model nor an alias"),
                        );
                    }
                }
            }
            if let Some(hash) = hash {
                out.push(Key {
                    id: k.id,
                    team: k.team,
                    hash,
                    models: k.models,
                    admin: k.admin,
                });
            }
        }
        out
    });

    let retry = Retry {
        max_attempts: match raw.retry.max_attempts {
            Some(0) => {
                errs.add("retry.max_attempts", "must be at least 1");
                1
            }
            Some(n) => n,
            None => 3,
        },
        backoff: raw
            .retry
            .backoff
            .and_then(|b| errs.ok("retry.backoff", parse_duration(&b)))
            .unwrap_or(Duration::from_millis(50)),
    };

    let baseline = spend::baseline(raw.baseline, &models, &model_ids, &mut errs);
    let ledger = spend::ledger(raw.ledger, env, &mut errs);
    let budgets = spend::budgets(raw.budgets, &declared, &mut errs);
    let rate_limits = spend::rate_limits(raw.rate_limits, &declared, &mut errs);
    let cache = spend::cache(raw.cache, &mut errs);
    let state = spend::state(raw.state, env, &mut errs);
    let defaults = crate::circuit::Config::default();
    let circuit = crate::circuit::Config {
        failures: match raw.circuit_breaker.failures {
            Some(0) => {
                errs.add("circuit_breaker.failures", "must be at least 1");
                1
            }
            Some(n) => n,
            None => defaults.failures,
        },
        cooldown: raw
            .circuit_breaker
            .cooldown
            .and_then(|c| errs.ok("circuit_breaker.cooldown", parse_duration(&c)))
            .unwrap_or(defaults.cooldown),
    };

    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Policy {
        max_body_bytes,
        max_tokens_cap,
        max_messages,
        providers,
        models,
        model_ids,
        aliases,
        routes,
        keys,
        retry,
        baseline,
        ledger,
        budgets,
        rate_limits,
        cache,
        state,
        circuit,
    })
}

fn compile_provider(
    name: &str,
    p: RawProvider,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> Option<ProviderKind> {
    let path = format!("providers.{name}");
    let not_for = |errs: &mut Errors, field: &str, present: bool, kind: &str| {
        if present {
            errs.add(
                format!("{path}.{field}"),
                format!("`{field}` does not apply to kind `{kind}`"),
            );
        }
    };
    match p.kind.as_str() {
        "openai" => {
            not_for(errs, "device", p.device.is_some(), "openai");
            let base_url = match p.base_url {
                None => Some("https://api.openai.com/v1".to_string()),
                Some(u) => errs
                    .ok(format!("{path}.base_url"), expand(&u, env))
                    .and_then(|u| {
                        errs.ok(format!("{path}.base_url"), check_url(&u))
                            .map(|()| u)
                    }),
            };
            let api_key = match p.api_key {
                None => Some(None),
                Some(k) => errs
                    .ok(format!("{path}.api_key"), expand(&k, env))
                    .map(|k| (!k.is_empty()).then(|| Secret::new(k))),
            };
            let mut duration = |field: &str, v: Option<String>, default: Duration| match v {
                None => Some(default),
                Some(t) => errs.ok(format!("{path}.{field}"), parse_duration(&t)),
            };
            let timeout = duration("timeout", p.timeout, DEFAULT_TIMEOUT);
            let connect_timeout = duration(
                "connect_timeout",
                p.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            );
            let total_timeout = duration("total_timeout", p.total_timeout, DEFAULT_TOTAL_TIMEOUT);
            Some(ProviderKind::OpenAi {
                base_url: base_url?.trim_end_matches('/').to_string(),
                api_key: api_key?,
                timeout: timeout?,
                connect_timeout: connect_timeout?,
                total_timeout: total_timeout?,
            })
        }
        "local" => {
            not_for(errs, "base_url", p.base_url.is_some(), "local");
            not_for(errs, "api_key", p.api_key.is_some(), "local");
            not_for(errs, "timeout", p.timeout.is_some(), "local");
            not_for(
                errs,
                "connect_timeout",
                p.connect_timeout.is_some(),
                "local",
            );
            not_for(errs, "total_timeout", p.total_timeout.is_some(), "local");
            let device = match p.device.as_deref() {
                None | Some("auto") => Some(Device::Auto),
                Some("cpu") => Some(Device::Cpu),
                Some(d) => match d.strip_prefix("cuda:").map(str::parse::<usize>) {
                    Some(Ok(n)) => Some(Device::Cuda(n)),
                    _ => {
                        errs.add(
                            format!("{path}.device"),
                            format!("unknown device `{d}` (expected auto, cpu or cuda:N)"),
                        );
                        None
                    }
                },
            };
            Some(ProviderKind::Local { device: device? })
        }
        other => {
            errs.add(
                format!("{path}.kind"),
                format!("unknown provider kind `{other}` (expected openai or local)"),
            );
            None
        }
    }
}

fn compile_model(
    name: &str,
    m: RawModel,
    provider_ids: &HashMap<String, usize>,
    provider_names: &HashSet<String>,
    providers: &[Provider],
    base: &Path,
    errs: &mut Errors,
) -> Option<Model> {
    let path = format!("models.{name}");
    if name == "router" || name.is_empty() {
        errs.add(&path, format!("`{name}` is not allowed as a model name"));
    }
    let provider = provider_ids.get(&m.provider).copied();
    if provider.is_none() && !provider_names.contains(&m.provider) {
        errs.add(
            format!("{path}.provider"),
            format!("unknown provider `{}`", m.provider),
        );
    }
    // An invalid provider still lets the rest of the model be checked.
    let local = provider.is_some_and(|p| matches!(providers[p].kind, ProviderKind::Local { .. }))
        || m.file.is_some() && provider.is_none();
    let upstream_model = m.upstream_model.unwrap_or_else(|| name.to_string());
    let known = if local {
        None
    } else {
        catalog::lookup(&upstream_model)
    };
    let pricing = match (m.price, known) {
        (Some(p), _) => compile_price(p, &format!("{path}.price"), local, errs),
        (None, Some(k)) => Some(Pricing::PerToken(k.price)),
        (None, None) => {
            errs.add(
                format!("{path}.price"),
                "every model needs a price (use `{ input: 0, output: 0 }` for free; \
                 OpenAI's gpt-4, gpt-4-32k, gpt-3.5-turbo, gpt-3.5-turbo-16k, gpt-4o and \
                 gpt-4o-mini have their list prices built in)",
            );
            None
        }
    };
    let file = match (local, m.file) {
        (true, None) => {
            errs.add(
                format!("{path}.file"),
                "a local model needs `file:` (a GGUF path)",
            );
            None
        }
        (true, Some(f)) => Some(resolve(base, &f)),
        (false, Some(_)) => {
            errs.add(format!("{path}.file"), "only local models take `file:`");
            None
        }
        (false, None) => None,
    };
    let chat_template = m.chat_template.map(|t| {
        if !(t.ends_with(".jinja") || t.ends_with(".json")) {
            errs.add(
                format!("{path}.chat_template"),
                "must be a path to a .jinja or .json template file",
            );
        }
        resolve(base, &t)
    });
    if !local && (m.max_concurrency.is_some() || m.max_queue.is_some()) {
        errs.add(
            &path,
            "max_concurrency and max_queue apply to local models only",
        );
    }
    if m.max_concurrency == Some(0) {
        errs.add(format!("{path}.max_concurrency"), "must be at least 1");
    }
    if m.context == Some(0) {
        errs.add(format!("{path}.context"), "must be at least 1");
    }
    Some(Model {
        name: name.to_string(),
        provider: provider?,
        upstream_model,
        pricing: pricing?,
        context: m.context.or(known.map(|k| k.context)),
        file,
        chat_template,
        max_concurrency: m.max_concurrency.unwrap_or(4),
        max_queue: m.max_queue.unwrap_or(64),
    })
}

fn compile_price(p: RawPrice, path: &str, local: bool, errs: &mut Errors) -> Option<Pricing> {
    let mut usd = |field: &str, n: Option<serde_json::Number>| {
        n.map(|n| errs.ok(format!("{path}.{field}"), Nanos::parse_usd(&n.to_string())))
    };
    let input = usd("input", p.input);
    let output = usd("output", p.output);
    let gpu_hour = usd("gpu_hour", p.gpu_hour);
    match (input, output, gpu_hour) {
        (Some(i), Some(o), None) => Some(Pricing::PerToken(Price {
            input_per_mtok: i?,
            output_per_mtok: o?,
        })),
        (None, None, Some(g)) if local => Some(Pricing::GpuHour(g?)),
        (None, None, Some(_)) => {
            errs.add(
                format!("{path}.gpu_hour"),
                "gpu_hour pricing applies to local models only",
            );
            None
        }
        _ => {
            errs.add(
                path,
                "give both `input` and `output` (USD per 1M tokens), or `gpu_hour` alone",
            );
            None
        }
    }
}

fn compile_when(
    w: super::raw::RawWhen,
    route: &str,
    declared: &HashSet<String>,
    aliases: &HashMap<String, String>,
    errs: &mut Errors,
) -> When {
    let path = format!("{route}.when");
    let model = w.model.map(|m| {
        let names = m.into_vec();
        for (j, n) in names.iter().enumerate() {
            if !declared.contains(n) && !aliases.contains_key(n) {
                errs.add(
                    format!("{path}.model[{j}]"),
                    format!("`{n}` is neither a model nor an alias"),
                );
            }
        }
        names
    });
    let task = w
        .task
        .map(|t| parse_names(errs, &format!("{path}.task"), t.into_vec()));
    let complexity = w
        .complexity
        .map(|c| parse_names(errs, &format!("{path}.complexity"), c.into_vec()));
    let strong_score = w
        .strong_score
        .and_then(|c| errs.ok(format!("{path}.strong_score"), parse_cmp(c)))
        .and_then(|c| {
            if (0.0..=1.0).contains(&c.value) {
                Some(c)
            } else {
                errs.add(
                    format!("{path}.strong_score"),
                    "strong_score is between 0 and 1",
                );
                None
            }
        });
    let prompt_tokens = w
        .prompt_tokens
        .and_then(|c| errs.ok(format!("{path}.prompt_tokens"), parse_cmp(c)));
    When {
        model,
        task,
        complexity,
        strong_score,
        prompt_tokens,
    }
}

fn parse_names<T: std::str::FromStr<Err = String>>(
    errs: &mut Errors,
    path: &str,
    names: Vec<String>,
) -> Vec<T> {
    names
        .into_iter()
        .enumerate()
        .filter_map(|(j, n)| errs.ok(format!("{path}[{j}]"), n.parse()))
        .collect()
}

fn unknown_model(name: &str, declared: &HashSet<String>) -> String {
    let mut known: Vec<&str> = declared.iter().map(String::as_str).collect();
    known.sort_unstable();
    format!(
        "unknown model `{name}` (declared: {})",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

fn resolve(base: &Path, file: &str) -> String {
    let p = Path::new(file);
    if p.is_absolute() || p.exists() {
        file.to_string()
    } else {
        // Relative to the working directory if it exists there (the usual
        // `tollgate serve` from the repo root), else to the policy file.
        let beside = base.join(p);
        if beside.exists() {
            beside.display().to_string()
        } else {
            file.to_string()
        }
    }
}

fn check_url(u: &str) -> Result<(), String> {
    if u.starts_with("http://") || u.starts_with("https://") {
        Ok(())
    } else {
        Err(format!("`{u}` is not an http(s) URL"))
    }
}

fn parse_cmp(c: Comparison) -> Result<Cmp, String> {
    let text = match c {
        Comparison::Number(n) => format!(">= {n}"),
        Comparison::Text(t) => t,
    };
    let t = text.trim();
    let (op, rest) = [
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("==", CmpOp::Eq),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ]
    .into_iter()
    .find_map(|(s, op)| t.strip_prefix(s).map(|r| (op, r)))
    .ok_or_else(|| format!("`{t}` is not a comparison like \">= 0.6\""))?;
    let value = rest
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("`{t}` is not a comparison like \">= 0.6\""))?;
    Ok(Cmp { op, value })
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30s: {e}"))
}

fn parse_byte_size(size: &ByteSize) -> Result<usize, String> {
    let n = match size {
        ByteSize::Bytes(n) => *n,
        ByteSize::Text(t) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let mult = match unit.trim() {
                "" | "B" => 1,
                "KiB" | "K" => 1 << 10,
                "MiB" | "M" => 1 << 20,
                "GiB" | "G" => 1 << 30,
                u => return Err(format!("unknown size unit `{u}` (use B, KiB, MiB)")),
            };
            num.parse::<u64>()
                .map_err(|_| format!("`{t}` is not a size like 1MiB"))?
                * mult
        }
    };
    if n == 0 {
        return Err("must be more than 0 bytes".into());
    }
    usize::try_from(n).map_err(|_| "too large".into())
}

fn parse_hash(h: &str) -> Result<[u8; 32], String> {
    let hex_part = h
        .strip_prefix("sha256:")
        .ok_or("key hashes start with `sha256:` (use `tollgate key new`)")?;
    let bytes = hex::decode(hex_part).map_err(|_| "not a hex SHA-256 digest".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "a SHA-256 digest has 64 hex digits".to_string())
}
