//! OpenAI's list prices and context windows for the models most policies
//! name, so a policy can write `gpt-4: { provider: openai }` and get both.
//! A `price:` or `context:` in the policy always wins.
//!
//! Prices are USD per 1M tokens (input, output) from OpenAI's pricing page;
//! kept as integers of milli-dollars here so no float is involved.

use crate::money::{Nanos, Price};

/// (name, input m$/1M, output m$/1M, context tokens)
const KNOWN: &[(&str, u64, u64, u32)] = &[
    ("gpt-4", 30_000, 60_000, 8_192),
    ("gpt-4-32k", 60_000, 120_000, 32_768),
    ("gpt-3.5-turbo", 500, 1_500, 16_385),
    ("gpt-3.5-turbo-16k", 3_000, 4_000, 16_385),
    ("gpt-4o", 2_500, 10_000, 128_000),
    ("gpt-4o-mini", 150, 600, 128_000),
];

/// What is known about an OpenAI model by its upstream name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub price: Price,
    pub context: u32,
}

pub fn lookup(upstream_model: &str) -> Option<Known> {
    KNOWN
        .iter()
        .find(|(n, ..)| *n == upstream_model)
        .map(|&(_, input, output, context)| Known {
            price: Price {
                input_per_mtok: Nanos(input * 1_000_000),
                output_per_mtok: Nanos(output * 1_000_000),
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
    }
}
