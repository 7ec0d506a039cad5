//! The cells of a report: money, shares and savings as text.

use crate::ledger::Group;
use crate::money::Nanos;

/// Baseline − cost, signed, as USD text.
pub fn savings(g: &Group) -> String {
    let s = i128::from(g.baseline_cost.0) - i128::from(g.cost.0);
    let abs = Nanos(u64::try_from(s.unsigned_abs()).unwrap_or(u64::MAX));
    if s < 0 {
        format!("-{abs}")
    } else {
        abs.to_string()
    }
}

/// Savings as a percentage of the baseline, one decimal ("" when no baseline).
pub fn savings_pct(g: &Group) -> String {
    if g.baseline_cost.0 == 0 {
        return String::new();
    }
    let s = i128::from(g.baseline_cost.0) - i128::from(g.cost.0);
    // Tenths of a percent, rounded half away from zero, in integers.
    let tenths = (s * 2000 / i128::from(g.baseline_cost.0) + s.signum()) / 2;
    format!(
        "{}{}.{}",
        if tenths < 0 { "-" } else { "" },
        tenths.abs() / 10,
        tenths.abs() % 10
    )
}

pub(super) fn hit_rate(g: &Group) -> String {
    if g.requests == 0 {
        return String::new();
    }
    let tenths = (g.cache_hits * 2000 / g.requests).div_ceil(2);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// USD with at most 6 decimals, for tables people read.
pub(super) fn usd(n: Nanos) -> String {
    let micros = (n.0 + 500) / 1000;
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

pub(super) const HEAD: [&str; 11] = [
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "baseline_usd",
    "savings_usd",
    "savings_pct",
    "cache_hit_pct",
    "cached_prompt_pct",
    "caching_saved_usd",
    "quality_retained_pct",
];

pub(super) fn cells(g: &Group, exact: bool) -> Vec<String> {
    let money = |n: Nanos| if exact { n.to_string() } else { usd(n) };
    let sv = if exact {
        savings(g)
    } else {
        let s = i128::from(g.baseline_cost.0) - i128::from(g.cost.0);
        let u = usd(Nanos(u64::try_from(s.unsigned_abs()).unwrap_or(u64::MAX)));
        if s < 0 {
            format!("-{u}")
        } else {
            u
        }
    };
    vec![
        g.requests.to_string(),
        g.prompt_tokens.to_string(),
        g.completion_tokens.to_string(),
        money(g.cost),
        money(g.baseline_cost),
        sv,
        savings_pct(g),
        hit_rate(g),
        cached_share(g),
        money(caching_saved(g)),
        quality_retained(g),
    ]
}

/// The share of prompt tokens the providers served from their prompt
/// caches, one decimal ("" without prompt tokens).
pub fn cached_share(g: &Group) -> String {
    if g.prompt_tokens == 0 {
        return String::new();
    }
    let tenths = (u128::from(g.cached_tokens) * 2000 / u128::from(g.prompt_tokens)).div_ceil(2);
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// What caching saved: answers replayed from the gateway's cache, and
/// prompt tokens billed at the providers' cached rate.
pub fn caching_saved(g: &Group) -> Nanos {
    g.cache_saved.saturating_add(g.prompt_cache_saved)
}

/// The router's estimated quality retained against the baseline, one
/// decimal ("" without scored requests).
pub fn quality_retained(g: &Group) -> String {
    g.quality_retained_tenths()
        .map_or_else(String::new, |t| format!("{}.{}", t / 10, t % 10))
}
