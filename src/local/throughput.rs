//! Measured throughput of a local engine, over a sliding window, and the
//! per-token price it implies.
//!
//! Each finished sequence reports its prompt tokens and prefill time, and
//! its generated tokens and decode time (mistralrs measures both). The
//! rates are Σtokens / Σtime over the last `WINDOW` of sequences. Under
//! concurrency, per-sequence times overlap, so these rates are per-stream
//! rates and a lower bound on the engine's aggregate throughput: a price
//! derived from them errs on the side of charging more, never less.
//!
//! `price: { gpu_hour: X }` becomes USD per token as
//! `X / 3600 / (tokens per second)`, in integer nano-dollars.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::money::{Nanos, Price};

const WINDOW: Duration = Duration::from_secs(300);
const MAX_SAMPLES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    prompt_tokens: u64,
    prompt_secs: f64,
    gen_tokens: u64,
    gen_secs: f64,
}

#[derive(Default)]
pub struct Meter {
    samples: Mutex<VecDeque<Sample>>,
}

/// Tokens per second; `None` until something was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub prefill: Option<f64>,
    pub generation: Option<f64>,
}

impl Meter {
    pub fn record(&self, prompt_tokens: u64, prompt_secs: f64, gen_tokens: u64, gen_secs: f64) {
        let now = Instant::now();
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        s.push_back(Sample {
            at: now,
            prompt_tokens,
            prompt_secs: prompt_secs.max(0.0),
            gen_tokens,
            gen_secs: gen_secs.max(0.0),
        });
        while s.len() > MAX_SAMPLES || s.front().is_some_and(|f| now - f.at > WINDOW) {
            s.pop_front();
        }
    }

    pub fn rates(&self) -> Rates {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (mut pt, mut ps, mut gt, mut gs) = (0u64, 0.0, 0u64, 0.0);
        for x in s.iter().filter(|x| now - x.at <= WINDOW) {
            pt += x.prompt_tokens;
            ps += x.prompt_secs;
            gt += x.gen_tokens;
            gs += x.gen_secs;
        }
        let rate = |t: u64, secs: f64| (t > 0 && secs > 0.0).then(|| t as f64 / secs);
        Rates {
            prefill: rate(pt, ps),
            generation: rate(gt, gs),
        }
    }
}

/// The per-token price of a machine that costs `gpu_hour` per hour and
/// runs at `rates`. Unknown rates price at zero until measured.
pub fn price_from_gpu_hour(gpu_hour: Nanos, rates: Rates) -> Price {
    let milli = |rate: Option<f64>| rate.map_or(0, |r| (r * 1000.0).round().max(1.0) as u64);
    crate::money::price_from_gpu_hour(gpu_hour, milli(rates.prefill), milli(rates.generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_tokens_over_time() {
        let m = Meter::default();
        assert_eq!(m.rates(), Rates::default());
        m.record(100, 2.0, 30, 1.0);
        m.record(100, 2.0, 30, 2.0);
        let r = m.rates();
        assert_eq!(r.prefill, Some(50.0));
        assert_eq!(r.generation, Some(20.0));
    }

    #[test]
    fn gpu_hour_becomes_a_per_token_price() {
        // $3.60/h at 100 tok/s: 360,000 tokens per hour → $10 per 1M tokens.
        let p = price_from_gpu_hour(
            Nanos::parse_usd("3.6").unwrap(),
            Rates {
                prefill: Some(1000.0),
                generation: Some(100.0),
            },
        );
        assert_eq!(p.output_per_mtok, Nanos::parse_usd("10").unwrap());
        assert_eq!(p.input_per_mtok, Nanos::parse_usd("1").unwrap());
        assert_eq!(
            price_from_gpu_hour(Nanos(5), Rates::default()),
            Price::default()
        );
    }
}
