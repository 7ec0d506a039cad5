//! OpenAI's list prices and context windows for the models most policies
//! name, so a policy can write `gpt-4: { provider: openai }` and get both.
//! A `price:` or `context:` in the policy always wins.
//!
//! Prices are USD per 1M tokens (input, output, and cached input for the
//! models OpenAI caches prompts for) from OpenAI's pricing page; kept as
//! integers of milli-dollars here so no float is involved.

use crate::money::{Nanos, Price};

/// (name, input m$/1M, output m$/1M, cached input m$/1M (0: no prompt
/// caching), context tokens)
const KNOWN: &[(&str, u64, u64, u64, u32)] = &[
    ("gpt-4", 30_000, 60_000, 0, 8_192),
    ("gpt-4-32k", 60_000, 120_000, 0, 32_768),
    ("gpt-3.5-turbo", 500, 1_500, 0, 16_385),
    ("gpt-3.5-turbo-16k", 3_000, 4_000, 0, 16_385),
    ("gpt-4o", 2_500, 10_000, 1_250, 128_000),
    ("gpt-4o-mini", 150, 600, 75, 128_000),
];

/// What is known about an OpenAI model by its upstream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub price: Price,
    pub context: u32,
}

/// By exact name, or by the name without a date suffix (`gpt-4-0613`,
/// `gpt-4o-2024-08-06`, `gpt-3.5-turbo-0125`).
pub fn lookup(upstream_model: &str) -> Option<Known> {
    exact(upstream_model).or_else(|| exact(undated(upstream_model)?))
}

fn undated(name: &str) -> Option<&str> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYY-MM-DD
    if name.len() > 11 {
        let (head, tail) = name.split_at(name.len() - 11);
        let p: Vec<&str> = tail.split('-').collect();
        if p.len() == 4 && p[0].is_empty() && digits(p[1], 4) && digits(p[2], 2) && digits(p[3], 2)
        {
            return Some(head);
        }
    }
    // -MMDD
    let (head, tail) = name.rsplit_once('-')?;
    digits(tail, 4).then_some(head)
}

fn exact(upstream_model: &str) -> Option<Known> {
    KNOWN
        .iter()
        .find(|(n, ..)| *n == upstream_model)
        .map(|&(_, input, output, cached, context)| Known {
            price: Price {
                input_per_mtok: Nanos(input * 1_000_000),
                output_per_mtok: Nanos(output * 1_000_000),
                cached_input_per_mtok: (cached > 0).then(|| Nanos(cached * 1_000_000)),
            },
            context,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prices_in_nanos() {
        let gpt4 = lookup("gpt-4").unwrap();
        assert_eq!(gpt4.price.input_per_mtok, Nanos(30 * 1_000_000_000));
        assert_eq!(gpt4.context, 8_192);
        // 1,000 prompt + 500 completion tokens on gpt-4o-mini:
        // 1000 × $0.15/1M + 500 × $0.60/1M = $0.00045.
        let mini = lookup("gpt-4o-mini").unwrap();
        assert_eq!(mini.price.cost(1_000, 500), Nanos(450_000));
        assert_eq!(lookup("gpt-5-unknown"), None);
        // Dated snapshots have their family's price and context.
        assert_eq!(lookup("gpt-4-0613"), Some(gpt4));
        assert_eq!(lookup("gpt-4o-mini-2024-07-18"), Some(mini));
        assert_eq!(lookup("gpt-4-32k-0613").unwrap().context, 32_768);
        assert_eq!(lookup("gpt-4-9999x"), None);
    }
}
