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

use std::collections::HashMap;

use crate::money::{Nanos, Price};

pub use litellm::{import, Imported};

const OPENAI: &str = "openai.com/api/pricing";
const OPENAI_DOCS: &str = "platform.openai.com/docs/models";
const ANTHROPIC: &str = "docs.anthropic.com/en/docs/about-claude/pricing";

/// One built-in entry. Rates in µ$ per 1M tokens (0: the part is billed
/// as plain input or output).
struct Row {
    name: &'static str,
    provider: &'static str,
    input: u64,
    output: u64,
    cached: u64,
    cache_write: u64,
    audio_in: u64,
    audio_out: u64,
    context: u32,
    max_output: u32,
    source: &'static str,
    as_of: &'static str,
}

/// An OpenAI text model: (name, input, output, cached input, context,
/// max output (0: the context), as of).
const fn oa(
    n: &'static str,
    i: u64,
    o: u64,
    c: u64,
    ctx: u32,
    out: u32,
    as_of: &'static str,
) -> Row {
    Row {
        name: n,
        provider: "openai",
        input: i,
        output: o,
        cached: c,
        cache_write: 0,
        audio_in: 0,
        audio_out: 0,
        context: ctx,
        max_output: out,
        source: OPENAI,
        as_of,
    }
}

/// An Anthropic model: (name, input, output, cache write (5 minutes),
/// cache read, max output, as of); every one has a 200K context.
const fn an(n: &'static str, i: u64, o: u64, w: u64, r: u64, out: u32, as_of: &'static str) -> Row {
    Row {
        name: n,
        provider: "anthropic",
        input: i,
        output: o,
        cached: r,
        cache_write: w,
        audio_in: 0,
        audio_out: 0,
        context: 200_000,
        max_output: out,
        source: ANTHROPIC,
        as_of,
    }
}

const fn audio(mut r: Row, audio_in: u64, audio_out: u64) -> Row {
    r.audio_in = audio_in;
    r.audio_out = audio_out;
    r.source = OPENAI_DOCS;
    r
}

const G5: &str = "2025-08-07";
const G41: &str = "2025-04-14";
const O3: &str = "2025-06-10";
const LEGACY: &str = "2024-08-06";
const C45: &str = "2025-10-15";
const DEC_2024: &str = "2024-12-17";
const O3MINI: &str = "2025-01-31";

#[rustfmt::skip]
const BUILT_IN: &[Row] = &[
    oa("gpt-5", 1_250_000, 10_000_000, 125_000, 400_000, 128_000, G5),
    oa("gpt-5-mini", 250_000, 2_000_000, 25_000, 400_000, 128_000, G5),
    oa("gpt-5-nano", 50_000, 400_000, 5_000, 400_000, 128_000, G5),
    oa("gpt-5-chat-latest", 1_250_000, 10_000_000, 125_000, 128_000, 16_384, G5),
    oa("gpt-4.1", 2_000_000, 8_000_000, 500_000, 1_047_576, 32_768, G41),
    oa("gpt-4.1-mini", 400_000, 1_600_000, 100_000, 1_047_576, 32_768, G41),
    oa("gpt-4.1-nano", 100_000, 400_000, 25_000, 1_047_576, 32_768, G41),
    oa("gpt-4o", 2_500_000, 10_000_000, 1_250_000, 128_000, 16_384, LEGACY),
    oa("gpt-4o-mini", 150_000, 600_000, 75_000, 128_000, 16_384, LEGACY),
    audio(oa("gpt-4o-audio-preview", 2_500_000, 10_000_000, 0, 128_000, 16_384, DEC_2024), 40_000_000, 80_000_000),
    audio(oa("gpt-4o-mini-audio-preview", 150_000, 600_000, 0, 128_000, 16_384, DEC_2024), 10_000_000, 20_000_000),
    oa("o1", 15_000_000, 60_000_000, 7_500_000, 200_000, 100_000, DEC_2024),
    oa("o1-mini", 1_100_000, 4_400_000, 550_000, 128_000, 65_536, O3MINI),
    oa("o1-pro", 150_000_000, 600_000_000, 0, 200_000, 100_000, "2025-03-19"),
    oa("o3", 2_000_000, 8_000_000, 500_000, 200_000, 100_000, O3),
    oa("o3-pro", 20_000_000, 80_000_000, 0, 200_000, 100_000, O3),
    oa("o3-mini", 1_100_000, 4_400_000, 550_000, 200_000, 100_000, O3MINI),
    oa("o4-mini", 1_100_000, 4_400_000, 275_000, 200_000, 100_000, "2025-04-16"),
    oa("gpt-4-turbo", 10_000_000, 30_000_000, 0, 128_000, 4_096, "2024-04-09"),
    oa("gpt-4", 30_000_000, 60_000_000, 0, 8_192, 0, LEGACY),
    oa("gpt-4-32k", 60_000_000, 120_000_000, 0, 32_768, 0, LEGACY),
    oa("gpt-3.5-turbo", 500_000, 1_500_000, 0, 16_385, 0, LEGACY),
    oa("gpt-3.5-turbo-16k", 3_000_000, 4_000_000, 0, 16_385, 0, LEGACY),
    oa("text-embedding-3-small", 20_000, 0, 0, 8_191, 0, LEGACY),
    oa("text-embedding-3-large", 130_000, 0, 0, 8_191, 0, LEGACY),
    oa("text-embedding-ada-002", 100_000, 0, 0, 8_191, 0, LEGACY),
    an("claude-opus-4-5", 5_000_000, 25_000_000, 6_250_000, 500_000, 64_000, "2025-11-24"),
    an("claude-opus-4-1", 15_000_000, 75_000_000, 18_750_000, 1_500_000, 32_000, "2025-08-05"),
    an("claude-opus-4", 15_000_000, 75_000_000, 18_750_000, 1_500_000, 32_000, C45),
    an("claude-sonnet-4-5", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, "2025-09-29"),
    an("claude-sonnet-4", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, C45),
    an("claude-3-7-sonnet", 3_000_000, 15_000_000, 3_750_000, 300_000, 64_000, C45),
    an("claude-haiku-4-5", 1_000_000, 5_000_000, 1_250_000, 100_000, 64_000, C45),
    an("claude-3-5-haiku", 800_000, 4_000_000, 1_000_000, 80_000, 8_192, C45),
    an("claude-3-haiku", 250_000, 1_250_000, 300_000, 30_000, 4_096, C45),
];

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
