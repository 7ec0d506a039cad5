//! Money as integers: nano-dollars (`$1 = 1_000_000_000`), never floats.
//!
//! Prices are written in YAML as decimal USD per 1M tokens. They are parsed
//! from their decimal text exactly (no float arithmetic), so `0.15` is
//! 150_000_000 nano-dollars per 1M tokens, not 149_999_999.

use std::fmt;

/// An amount of US dollars in nano-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

pub const NANOS_PER_USD: u64 = 1_000_000_000;

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Parses a decimal USD amount such as `30`, `0.002` or `1.5e-3`.
    /// Fails on negatives, more precision than a nano-dollar, or overflow.
    pub fn parse_usd(text: &str) -> Result<Nanos, String> {
        let bad = || format!("`{text}` is not a USD amount with at most 9 decimal places");
        let (mantissa, exp) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i32>().map_err(|_| bad())?),
            None => (text, 0),
        };
        if mantissa.starts_with('-') {
            return Err(format!("`{text}` is negative"));
        }
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // digits × 10^(exp − frac.len()) dollars = digits × 10^(9 + exp − frac.len()) nanos.
        let digits: u128 = format!("{int}{frac}").parse().map_err(|_| bad())?;
        let shift = 9 + exp - frac.len() as i32;
        let nanos = if shift >= 0 {
            10u128
                .checked_pow(shift as u32)
                .and_then(|p| digits.checked_mul(p))
        } else {
            let p = 10u128.checked_pow((-shift) as u32).ok_or_else(bad)?;
            if digits % p != 0 {
                return Err(bad());
            }
            Some(digits / p)
        };
        nanos
            .and_then(|n| u64::try_from(n).ok())
            .map(Nanos)
            .ok_or_else(bad)
    }

    pub fn saturating_add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Nanos {
    /// Formats as USD with all nine decimals trimmed of trailing zeros
    /// (`0.00042`), which is what the cost headers carry.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / NANOS_PER_USD;
        let frac = self.0 % NANOS_PER_USD;
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let s = format!("{frac:09}");
        write!(f, "{whole}.{}", s.trim_end_matches('0'))
    }
}

/// A per-token price: nano-dollars per 1M input and output tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Price {
    pub input_per_mtok: Nanos,
    pub output_per_mtok: Nanos,
}

impl Price {
    /// The cost of a request, rounded up to the next nano-dollar so that a
    /// stream of tiny requests can never be free.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Nanos {
        let total = prompt_tokens as u128 * self.input_per_mtok.0 as u128
            + completion_tokens as u128 * self.output_per_mtok.0 as u128;
        let nanos = total.div_ceil(1_000_000);
        Nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(Nanos::parse_usd("30"), Ok(Nanos(30_000_000_000)));
        assert_eq!(Nanos::parse_usd("30.0"), Ok(Nanos(30_000_000_000)));
        assert_eq!(Nanos::parse_usd("0.15"), Ok(Nanos(150_000_000)));
        assert_eq!(Nanos::parse_usd("1.5e-3"), Ok(Nanos(1_500_000)));
        assert_eq!(Nanos::parse_usd("1e-9"), Ok(Nanos(1)));
        assert!(Nanos::parse_usd("1e-10").is_err());
        assert!(Nanos::parse_usd("-1").is_err());
        assert!(Nanos::parse_usd("abc").is_err());
        assert!(Nanos::parse_usd("1e30").is_err());
    }

    #[test]
    fn cost_rounds_up_per_request() {
        let gpt4 = Price {
            input_per_mtok: Nanos::parse_usd("30").unwrap(),
            output_per_mtok: Nanos::parse_usd("60").unwrap(),
        };
        // 1000 prompt tokens at $30/M = $0.03; 500 completion at $60/M = $0.03.
        assert_eq!(gpt4.cost(1000, 500), Nanos(60_000_000));
        let cheap = Price {
            input_per_mtok: Nanos(1),
            output_per_mtok: Nanos(0),
        };
        assert_eq!(cheap.cost(1, 0), Nanos(1));
    }

    #[test]
    fn cost_properties_hold_for_random_prices_and_usages() {
        use rand::Rng;
        let mut rng = rand::rng();
        for _ in 0..10_000 {
            let p = Price {
                input_per_mtok: Nanos(rng.random_range(0..200 * NANOS_PER_USD)),
                output_per_mtok: Nanos(rng.random_range(0..200 * NANOS_PER_USD)),
            };
            let (a, b) = (
                rng.random_range(0..200_000u64),
                rng.random_range(0..200_000u64),
            );
            let (c, d) = (
                rng.random_range(0..200_000u64),
                rng.random_range(0..200_000u64),
            );
            let whole = p.cost(a + b, c + d).0;
            let parts = p.cost(a, c).0 + p.cost(b, d).0;
            // Rounding up per request: splitting never costs less, and at
            // most one nano-dollar more per extra request.
            assert!(
                parts >= whole && parts <= whole + 1,
                "{p:?} {a} {b} {c} {d}"
            );
            // More tokens never cost less.
            assert!(p.cost(a + 1, c).0 >= p.cost(a, c).0);
            assert!(p.cost(a, c + 1).0 >= p.cost(a, c).0);
            // The exact value, from the decimal definition.
            let exact = u128::from(a) * u128::from(p.input_per_mtok.0)
                + u128::from(c) * u128::from(p.output_per_mtok.0);
            assert_eq!(u128::from(p.cost(a, c).0), exact.div_ceil(1_000_000));
            // Display and parse round-trip.
            let n = Nanos(rng.random_range(0..u64::MAX / 4));
            assert_eq!(Nanos::parse_usd(&n.to_string()), Ok(n));
        }
    }

    #[test]
    fn displays_trimmed_usd() {
        assert_eq!(Nanos(60_000_000).to_string(), "0.06");
        assert_eq!(Nanos(3 * NANOS_PER_USD).to_string(), "3");
        assert_eq!(Nanos(1).to_string(), "0.000000001");
    }
}
