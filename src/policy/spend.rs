//! The money parts of a policy: `baseline:`, `ledger:` and `budgets:`.

use std::collections::{HashMap, HashSet};

use super::catalog;
use super::env::expand;
use super::fields::{parse_duration, Errors};
use super::raw::{RawBudget, RawCache, RawRateLimit, RawScope, RawState};
use super::{
    Baseline, Budget, CacheConfig, LedgerTarget, Model, ModelId, OnExhausted, Period, Pricing,
    RateLimit, Scope, StateConfig, Target,
};
use crate::money::Nanos;
use crate::secret::Secret;

/// The ledger file when the policy names none.
pub const DEFAULT_LEDGER: &str = "tollgate-ledger.sqlite";

/// The baseline: a per-token model of the policy, else a model whose list
/// price is built in. Default `gpt-4`.
pub(super) fn baseline(
    name: Option<String>,
    models: &[Model],
    ids: &HashMap<String, ModelId>,
    cat: &catalog::Catalog,
    errs: &mut Errors,
) -> Baseline {
    let name = name.unwrap_or_else(|| "gpt-4".to_string());
    let price = match ids.get(&name).map(|id| models[*id].pricing) {
        Some(Pricing::PerToken(p)) => Some(p),
        Some(Pricing::GpuHour { .. }) => {
            errs.add(
                "baseline",
                format!("`{name}` is priced per GPU hour; the baseline needs a per-token price"),
            );
            None
        }
        Some(Pricing::Unknown) => {
            errs.add(
                "baseline",
                format!("`{name}` has no price; the baseline needs one"),
            );
            None
        }
        None => match cat.lookup(&name) {
            Some(k) => Some(k.price),
            None => {
                errs.add(
                    "baseline",
                    format!("`{name}` is neither a model of this policy nor a model with a built-in price"),
                );
                None
            }
        },
    };
    Baseline {
        name,
        price: price.unwrap_or_default(),
    }
}

pub(super) fn ledger(
    text: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> LedgerTarget {
    let Some(text) = text else {
        return LedgerTarget::Sqlite(DEFAULT_LEDGER.to_string());
    };
    let Some(text) = errs.ok("ledger", expand(&text, env)) else {
        return LedgerTarget::None;
    };
    if text == "none" {
        LedgerTarget::None
    } else if let Some(path) = text.strip_prefix("sqlite:") {
        let path = path.trim_start_matches("//");
        if path.is_empty() {
            errs.add(
                "ledger",
                "`sqlite:` needs a file path, e.g. sqlite:ledger.sqlite",
            );
        }
        LedgerTarget::Sqlite(path.to_string())
    } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        LedgerTarget::Postgres(Secret::new(text))
    } else {
        errs.add(
            "ledger",
            "expected `sqlite:PATH`, `postgres://USER@HOST/DB` or `none`",
        );
        LedgerTarget::None
    }
}

/// The crash journal: `none`, a directory, or by default `<file>.journal`
/// beside a SQLite ledger (PostgreSQL: none unless named, since replicas
/// need one each).
pub(super) fn journal(
    text: Option<String>,
    ledger: &LedgerTarget,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> Option<String> {
    match text {
        None => match ledger {
            LedgerTarget::Sqlite(path) => Some(format!("{path}.journal")),
            _ => None,
        },
        Some(t) => match errs.ok("ledger_journal", expand(&t, env))? {
            t if t == "none" => None,
            t if t.is_empty() => {
                errs.add("ledger_journal", "expected a directory or `none`");
                None
            }
            t => Some(t),
        },
    }
}

pub(super) fn budgets(
    raw: Vec<RawBudget>,
    models: &HashSet<String>,
    errs: &mut Errors,
) -> Vec<Budget> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, b) in raw.into_iter().enumerate() {
        let path = format!("budgets[{i}]");
        let scope = scope(b.scope, &format!("{path}.scope"), models, errs);
        let limit = errs.ok(
            format!("{path}.limit_usd"),
            Nanos::parse_usd(&b.limit_usd.to_string()),
        );
        let period = errs.ok(
            format!("{path}.period"),
            period(b.period.as_deref(), Period::Month),
        );
        let on_exhausted = match b.on_exhausted.as_deref() {
            None | Some("reject") => Some(OnExhausted::Reject),
            Some("downgrade") => Some(OnExhausted::Downgrade),
            Some(other) => {
                errs.add(
                    format!("{path}.on_exhausted"),
                    format!("unknown action `{other}` (expected reject or downgrade)"),
                );
                None
            }
        };
        let mut alert_at = Vec::new();
        for (j, a) in b.alert_at.iter().enumerate() {
            match a.as_f64() {
                Some(f) if f > 0.0 && f <= 1.0 => alert_at.push((f * 1000.0).round() as u32),
                _ => errs.add(
                    format!("{path}.alert_at[{j}]"),
                    "must be a fraction of the limit in (0, 1]",
                ),
            }
        }
        alert_at.sort_unstable();
        let (Some(scope), Some(limit), Some(period), Some(on_exhausted)) =
            (scope, limit, period, on_exhausted)
        else {
            continue;
        };
        let name = format!("{}/{}", scope_name(&scope), period_name(period));
        if !names.insert(name.clone()) {
            errs.add(&path, format!("a budget for {name} is already declared"));
        }
        out.push(Budget {
            name,
            scope,
            limit,
            period,
            on_exhausted,
            alert_at,
        });
    }
    out
}

fn scope(s: RawScope, path: &str, models: &HashSet<String>, errs: &mut Errors) -> Option<Scope> {
    let target = |v: String| {
        if v == "*" {
            Target::Each
        } else {
            Target::One(v)
        }
    };
    let given = [
        s.key.is_some(),
        s.team.is_some(),
        s.model.is_some(),
        s.global.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        errs.add(
            path,
            "name exactly one of key, team, model (a name or \"*\" for each) or global: true",
        );
        return None;
    }
    if let Some(m) = &s.model {
        if m != "*" && !models.contains(m) {
            errs.add(format!("{path}.model"), format!("unknown model `{m}`"));
            return None;
        }
    }
    match (s.key, s.team, s.model, s.global) {
        (Some(k), ..) => Some(Scope::Key(target(k))),
        (_, Some(t), ..) => Some(Scope::Team(target(t))),
        (_, _, Some(m), _) => Some(Scope::Model(target(m))),
        (.., Some(true)) => Some(Scope::Global),
        _ => {
            errs.add(format!("{path}.global"), "must be true");
            None
        }
    }
}

/// A budget period's name, or `default` when none is given.
pub(super) fn period(name: Option<&str>, default: Period) -> Result<Period, String> {
    match name {
        None => Ok(default),
        Some("day") => Ok(Period::Day),
        Some("week") => Ok(Period::Week),
        Some("month") => Ok(Period::Month),
        Some("total") => Ok(Period::Total),
        Some(other) => Err(format!(
            "unknown period `{other}` (expected day, week, month or total)"
        )),
    }
}

pub fn scope_name(s: &Scope) -> String {
    let t = |kind: &str, t: &Target| match t {
        Target::One(n) => format!("{kind}:{n}"),
        Target::Each => format!("{kind}:*"),
    };
    match s {
        Scope::Global => "global".to_string(),
        Scope::Key(x) => t("key", x),
        Scope::Team(x) => t("team", x),
        Scope::Model(x) => t("model", x),
    }
}

pub fn period_name(p: Period) -> &'static str {
    match p {
        Period::Day => "day",
        Period::Week => "week",
        Period::Month => "month",
        Period::Total => "total",
    }
}

pub(super) fn rate_limits(
    raw: Vec<RawRateLimit>,
    models: &HashSet<String>,
    errs: &mut Errors,
) -> Vec<RateLimit> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let path = format!("rate_limits[{i}]");
        let scope = scope(r.scope, &format!("{path}.scope"), models, errs);
        if r.requests_per_minute.is_none() && r.tokens_per_minute.is_none() {
            errs.add(&path, "give requests_per_minute, tokens_per_minute or both");
        }
        for (field, v) in [
            ("requests_per_minute", r.requests_per_minute),
            ("tokens_per_minute", r.tokens_per_minute),
        ] {
            if v == Some(0) {
                errs.add(format!("{path}.{field}"), "must be at least 1");
            }
        }
        if let Some(scope) = scope {
            out.push(RateLimit {
                name: scope_name(&scope),
                scope,
                requests_per_minute: r.requests_per_minute,
                tokens_per_minute: r.tokens_per_minute,
            });
        }
    }
    out
}

pub(super) fn cache(raw: Option<RawCache>, errs: &mut Errors) -> Option<CacheConfig> {
    let raw = raw?;
    match raw.mode.as_deref() {
        None | Some("exact") => {}
        Some("off") => return None,
        Some(other) => {
            errs.add(
                "cache.mode",
                format!("unknown mode `{other}` (expected exact or off)"),
            );
            return None;
        }
    }
    let ttl = match raw.ttl {
        None => std::time::Duration::from_secs(3600),
        Some(t) => errs.ok("cache.ttl", parse_duration(&t))?,
    };
    if raw.max_entries == Some(0) {
        errs.add("cache.max_entries", "must be at least 1 (or `mode: off`)");
    }
    Some(CacheConfig {
        ttl,
        max_entries: raw.max_entries.unwrap_or(10_000),
    })
}

pub(super) fn state(
    raw: Option<RawState>,
    env: &dyn Fn(&str) -> Option<String>,
    errs: &mut Errors,
) -> StateConfig {
    let (url, fail_open, cache_url) = match raw {
        None => (None, false, None),
        Some(RawState::Url(u)) => (Some(u), false, None),
        Some(RawState::Full {
            url,
            fail_open,
            cache_url,
        }) => (Some(url), fail_open, cache_url),
    };
    let redis_url = |field: &str, u: Option<String>, errs: &mut Errors| {
        let u = u.and_then(|u| errs.ok(field, expand(&u, env)));
        match u.as_deref() {
            None | Some("memory") | Some("") => None,
            Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
                Some(Secret::new(u.to_string()))
            }
            Some(_) => {
                errs.add(
                    field,
                    "expected `memory` or a `redis://HOST:PORT/DB` (or `rediss://`) URL",
                );
                None
            }
        }
    };
    let redis = redis_url("state", url, errs);
    let cache_redis = redis_url("state.cache_url", cache_url, errs);
    if cache_redis.is_some() && redis.is_none() {
        errs.add(
            "state.cache_url",
            "needs the state itself in Redis (`url: redis://…`)",
        );
    }
    StateConfig {
        redis,
        fail_open,
        cache_redis,
    }
}
