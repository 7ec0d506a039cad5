//! Money as integers: nano-dollars (`$1 = 1_000_000_000`), never floats.
//!
//! Prices are written in YAML as decimal USD per 1M tokens. They are parsed
//! from their decimal text exactly (no float arithmetic), so `0.15` is
//! 150_000_000 nano-dollars per 1M tokens, not 149_999_999.

use std::fmt;

/// An amount of US dollars in nano-dollars.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
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
            if !digits.is_multiple_of(p) {
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

/// The per-token price of a machine that costs `gpu_hour` per hour and
/// runs at `prefill` and `generation` tokens per second, given in integer
/// milli-tokens per second so the money math stays integer. A rate of
/// zero (not yet measured) prices at zero.
pub fn price_from_gpu_hour(gpu_hour: Nanos, prefill_milli: u64, generation_milli: u64) -> Price {
    // nanos per 1M tokens = gpu_hour / 3600 s × 1e6 / (tokens/s)
    let per_mtok = |milli: u64| -> Nanos {
        if milli == 0 {
            return Nanos::ZERO;
        }
        let n = (u128::from(gpu_hour.0) * 1_000_000 * 1000).div_ceil(3600 * u128::from(milli));
        Nanos(u64::try_from(n).unwrap_or(u64::MAX))
    };
    Price::new(per_mtok(prefill_milli), per_mtok(generation_milli))
}

/// A per-token price: nano-dollars per 1M input and output tokens, and
/// the rates some providers bill parts of them at (`None`: billed as any
/// input or output): input served from or written to the provider's
/// prompt cache, and audio in and out. `upstream::Usage::cost` applies it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Price {
    #[serde(rename = "input")]
    pub input_per_mtok: Nanos,
    #[serde(rename = "output")]
    pub output_per_mtok: Nanos,
    #[serde(rename = "cached_input", skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<Nanos>,
    #[serde(rename = "cache_write", skip_serializing_if = "Option::is_none")]
    pub cache_write_per_mtok: Option<Nanos>,
    #[serde(rename = "audio_input", skip_serializing_if = "Option::is_none")]
    pub audio_input_per_mtok: Option<Nanos>,
    #[serde(rename = "audio_output", skip_serializing_if = "Option::is_none")]
    pub audio_output_per_mtok: Option<Nanos>,
}

impl Price {
    pub fn new(input_per_mtok: Nanos, output_per_mtok: Nanos) -> Price {
        Price {
            input_per_mtok,
            output_per_mtok,
            ..Price::default()
        }
    }

    /// This price as the ledger keeps it beside a row: nano-dollars per
    /// 1M tokens, by part (`{"input":..,"output":..,"cached_input":..}`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

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
mod tests;
