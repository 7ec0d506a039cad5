//! List prices and context windows of the cloud models most policies
//! name, so a policy can write `gpt-4.1: { provider: openai }` and get
//! them. Each entry says where its price came from and as of when.
//!
//! Lookup order: a policy's own `price:` / `context:` always win; then a
//! catalog the policy imports (`prices: { file }`, LiteLLM's format, see
//! `litellm`); then the built-in table below.
//!
//! Prices are USD per 1M tokens, kept as integers of micro-dollars here so
//! no float is involved.

mod litellm;
mod table;

use std::collections::HashMap;

use crate::money::{Nanos, Price};

pub use litellm::{import, Imported};
use table::{Row, BUILT_IN};

/// What is known about a model by its upstream name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub name: String,
    pub provider: String,
    pub price: Price,
    pub context: Option<u32>,
    pub max_output: Option<u32>,
    /// Where the price came from, and the date it was read as of.
    pub source: String,
    pub as_of: String,
}

fn micro(v: u64) -> Nanos {
    Nanos(v * 1000)
}

fn opt(v: u64) -> Option<Nanos> {
    (v > 0).then(|| micro(v))
}

impl Row {
    fn known(&self) -> Known {
        Known {
            name: self.name.to_string(),
            provider: self.provider.to_string(),
            price: Price {
                input_per_mtok: micro(self.input),
                output_per_mtok: micro(self.output),
                cached_input_per_mtok: opt(self.cached),
                cache_write_per_mtok: opt(self.cache_write),
                audio_input_per_mtok: opt(self.audio_in),
                audio_output_per_mtok: opt(self.audio_out),
            },
            context: Some(self.context),
            max_output: (self.max_output > 0).then_some(self.max_output),
            source: self.source.to_string(),
            as_of: self.as_of.to_string(),
        }
    }
}

/// The built-in table plus what a policy imported.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    imported: HashMap<String, Known>,
}

impl Catalog {
    pub fn with(imported: Imported) -> Catalog {
        Catalog {
            imported: imported.entries,
        }
    }

    /// By exact name, or by the name without a date or `-latest` suffix
    /// (`gpt-4-0613`, `gpt-4o-2024-08-06`, `claude-sonnet-4-20250514`,
    /// `claude-3-7-sonnet-latest`); an imported entry before a built-in.
    pub fn lookup(&self, upstream_model: &str) -> Option<Known> {
        let names = [Some(upstream_model), undated(upstream_model)];
        for n in names.into_iter().flatten() {
            if let Some(k) = self.imported.get(n) {
                return Some(k.clone());
            }
        }
        names.into_iter().flatten().find_map(built_in)
    }

    /// Every entry, imported ones over built-ins of the same name, by name.
    pub fn all(&self) -> Vec<Known> {
        let mut out: HashMap<String, Known> = BUILT_IN
            .iter()
            .map(|r| (r.name.to_string(), r.known()))
            .collect();
        out.extend(self.imported.iter().map(|(n, k)| (n.clone(), k.clone())));
        let mut v: Vec<Known> = out.into_values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// A built-in entry by its upstream name (or that name undated).
pub fn lookup(upstream_model: &str) -> Option<Known> {
    Catalog::default().lookup(upstream_model)
}

fn built_in(name: &str) -> Option<Known> {
    BUILT_IN.iter().find(|r| r.name == name).map(Row::known)
}

fn undated(name: &str) -> Option<&str> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(head) = name.strip_suffix("-latest") {
        return Some(head);
    }
    // -YYYY-MM-DD
    if name.len() > 11 {
        let (head, tail) = name.split_at(name.len() - 11);
        let p: Vec<&str> = tail.split('-').collect();
        if p.len() == 4 && p[0].is_empty() && digits(p[1], 4) && digits(p[2], 2) && digits(p[3], 2)
        {
            return Some(head);
        }
    }
    // -MMDD or -YYYYMMDD
    let (head, tail) = name.rsplit_once('-')?;
    (digits(tail, 4) || digits(tail, 8)).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prices_in_nanos() {
        let gpt4 = lookup("gpt-4").unwrap();
        assert_eq!(gpt4.price.input_per_mtok, Nanos(30 * 1_000_000_000));
        assert_eq!(gpt4.context, Some(8_192));
        // 1,000 prompt + 500 completion tokens on gpt-4o-mini:
        // 1000 × $0.15/1M + 500 × $0.60/1M = $0.00045.
        let mini = lookup("gpt-4o-mini").unwrap();
        assert_eq!(mini.price.cost(1_000, 500), Nanos(450_000));
        assert_eq!(lookup("gpt-5-unknown"), None);
        // Dated snapshots have their family's price and context.
        assert_eq!(lookup("gpt-4-0613"), Some(gpt4));
        assert_eq!(lookup("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(lookup("gpt-4-32k-0613").unwrap().context, Some(32_768));
        assert_eq!(lookup("gpt-4-9999x"), None);
        let sonnet = lookup("claude-sonnet-4-20250514").unwrap();
        assert_eq!(sonnet.name, "claude-sonnet-4");
        assert_eq!(
            sonnet.price.cache_write_per_mtok,
            Some(Nanos(3_750_000_000))
        );
        assert_eq!(
            lookup("claude-3-7-sonnet-latest").unwrap().name,
            "claude-3-7-sonnet"
        );
    }

    #[test]
    fn every_entry_is_dated_sourced_and_priced_sanely() {
        for k in Catalog::default().all() {
            assert!(
                k.as_of.len() == 10 && k.as_of.starts_with("202"),
                "{}",
                k.name
            );
            assert!(!k.source.is_empty(), "{}", k.name);
            let p = k.price;
            assert!(p.input_per_mtok.0 > 0, "{}", k.name);
            for part in [p.cached_input_per_mtok, p.cache_write_per_mtok] {
                // A cache read is cheaper than input; a write dearer.
                assert!(part.is_none_or(|c| c.0 > 0), "{}", k.name);
            }
            assert!(p.cached_input_per_mtok.is_none_or(|c| c < p.input_per_mtok));
            assert!(
                k.max_output.is_none_or(|o| Some(o) <= k.context),
                "{}",
                k.name
            );
        }
    }
}
