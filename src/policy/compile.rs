//! Raw policy → runtime `Policy`, collecting every error with its path.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::fields::{
    parse_byte_size, parse_cmp, parse_duration, parse_hash, parse_names, unknown_model, Errors,
};
use super::models::{compile_model, compile_provider};
use super::raw::RawPolicy;
use super::spend;
use super::{Key, Policy, Provider, Retry, Route, When};

const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Time allowed to receive a request's body, unless `server.body_timeout`.
const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Beyond any model's context today: an absurd `max_tokens` is a 400.
const DEFAULT_MAX_TOKENS: u32 = 1 << 20;

/// The catalog a policy's `prices:` imports over the built-in one.
fn prices(
    raw: Option<super::raw::RawPrices>,
    base: &Path,
    errs: &mut Errors,
) -> super::catalog::Catalog {
    let Some(p) = raw else {
        return super::catalog::Catalog::default();
    };
    let path = super::fields::resolve(base, &p.file);
    let read = std::fs::read(&path)
        .map_err(|e| vec![format!("cannot read `{path}`: {e}")])
        .and_then(|b| super::catalog::import(&b, &path, p.sha256.as_deref()));
    match read {
        Ok(i) => super::catalog::Catalog::with(i),
        Err(list) => {
            for e in list.iter().take(20) {
                errs.add("prices", e);
            }
            if list.len() > 20 {
                errs.add("prices", format!("and {} more", list.len() - 20));
            }
            super::catalog::Catalog::default()
        }
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

    let metrics_open = match raw.server.metrics.as_deref() {
        None | Some("admin") => false,
        Some("open") => true,
        Some(other) => {
            errs.add(
                "server.metrics",
                format!("unknown value `{other}` (expected admin or open)"),
            );
            false
        }
    };

    let body_timeout = match raw.server.body_timeout.as_deref() {
        Some(t) => errs
            .ok("server.body_timeout", parse_duration(t))
            .unwrap_or(DEFAULT_BODY_TIMEOUT),
        None => DEFAULT_BODY_TIMEOUT,
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

    let catalog = prices(raw.prices, base, &mut errs);
    let router_heads = raw.router.and_then(|r| {
        let path = super::fields::resolve(base, &r.heads);
        match crate::classify::learned::heads::Heads::read(Path::new(&path)) {
            Ok(h) => Some(super::RouterHeads {
                path,
                heads: std::sync::Arc::new(h),
            }),
            Err(e) => {
                errs.add("router.heads", e);
                None
            }
        }
    });
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
            (base, &catalog),
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
            // Paths are written only for an error: a policy may hold
            // 100,000 keys.
            let path = || format!("keys[{i}]");
            if !ids.insert(k.id.clone()) {
                errs.add(
                    format!("{}.id", path()),
                    format!("duplicate key id `{}`", k.id),
                );
            }
            let hash = parse_hash(&k.hash)
                .map_err(|m| errs.add(format!("{}.hash", path()), m))
                .ok();
            if let Some(models) = &k.models {
                for (j, m) in models.iter().enumerate() {
                    if !declared.contains(m) && !aliases.contains_key(m) {
                        errs.add(
                            format!("{}.models[{j}]", path()),
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

    let baseline = spend::baseline(raw.baseline, &models, &model_ids, &catalog, &mut errs);
    let ledger = spend::ledger(raw.ledger, env, &mut errs);
    let ledger_journal = spend::journal(raw.ledger_journal, &ledger, env, &mut errs);
    let mut budgets = spend::budgets(raw.budgets, &declared, &mut errs);
    let key_ids: Vec<String> = keys.iter().flatten().map(|k| k.id.clone()).collect();
    let around = super::shadow::Around {
        model_ids: &model_ids,
        models: &models,
        baseline: &baseline.name,
        key_ids: &key_ids,
        routes: &routes,
    };
    let (shadow, shadow_budget) = super::shadow::compile(raw.shadow, &around, &mut errs);
    if let Some(b) = shadow_budget {
        if budgets.iter().any(|o| o.name == b.name) {
            errs.add(
                "shadow",
                format!("a budget for {} is already declared", b.name),
            );
        }
        budgets.push(b);
    }
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
        metrics_open,
        body_timeout,
        providers,
        models,
        model_ids,
        aliases,
        routes,
        keys,
        retry,
        baseline,
        ledger,
        ledger_journal,
        budgets,
        rate_limits,
        cache,
        state,
        circuit,
        catalog,
        router_heads,
        shadow,
    })
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
