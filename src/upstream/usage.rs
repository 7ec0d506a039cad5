//! What a model server says it billed, and what that costs.

use crate::money::{Nanos, Price};

/// Token counts as reported by the model server. `prompt_tokens` and
/// `completion_tokens` are totals; the other counts are parts of them,
/// each billed at its own rate where the price has one (`Usage::cost`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Of `prompt_tokens`, those the provider served from its prompt
    /// cache (billed at the model's cached-input rate).
    pub cached_tokens: u64,
    /// Of `prompt_tokens`, those written to the provider's prompt cache
    /// (Anthropic's `cache_creation_input_tokens`).
    pub cache_write_tokens: u64,
    /// Of `prompt_tokens`, audio input.
    pub audio_prompt_tokens: u64,
    /// Of `completion_tokens`, hidden reasoning (billed as output).
    pub reasoning_tokens: u64,
    /// Of `completion_tokens`, audio output.
    pub audio_completion_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Usage {
        Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        }
    }

    /// Reads an OpenAI `usage` object: Chat Completions' names, or the
    /// Responses API's (`input_tokens`, `output_tokens`, which include
    /// reasoning tokens), with the parts from `prompt_tokens_details` /
    /// `input_tokens_details` (cached, audio) and
    /// `completion_tokens_details` / `output_tokens_details` (reasoning,
    /// audio); a part is never more than its total.
    pub fn from_json(v: &serde_json::Value) -> Option<Usage> {
        let n = |a: &str, b: &str| v.get(a).or_else(|| v.get(b))?.as_u64();
        let prompt_tokens = n("prompt_tokens", "input_tokens")?;
        let completion_tokens = n("completion_tokens", "output_tokens")?;
        let part = |a: &str, b: &str, field: &str| {
            v.get(a)
                .or_else(|| v.get(b))
                .and_then(|d| d.get(field)?.as_u64())
                .unwrap_or(0)
        };
        let prompt = |f| part("prompt_tokens_details", "input_tokens_details", f);
        let completion = |f| part("completion_tokens_details", "output_tokens_details", f);
        Some(Usage {
            prompt_tokens,
            completion_tokens,
            cached_tokens: prompt("cached_tokens").min(prompt_tokens),
            cache_write_tokens: 0,
            audio_prompt_tokens: prompt("audio_tokens").min(prompt_tokens),
            reasoning_tokens: completion("reasoning_tokens").min(completion_tokens),
            audio_completion_tokens: completion("audio_tokens").min(completion_tokens),
        })
    }

    /// What this usage costs at `p`, rounded up to the next nano-dollar:
    /// cached, cache-write and audio input each at their rate (input's
    /// where the price has none), audio output at its rate, the rest at
    /// input and output. Reasoning tokens are output.
    pub fn cost(&self, p: &Price) -> Nanos {
        let mut left = self.prompt_tokens;
        let mut take = |n: u64| {
            let t = n.min(left);
            left -= t;
            t
        };
        let cached = take(self.cached_tokens);
        let write = take(self.cache_write_tokens);
        let audio_in = take(self.audio_prompt_tokens);
        let audio_out = self.audio_completion_tokens.min(self.completion_tokens);
        let rate = |r: Option<Nanos>, or: Nanos| u128::from(r.unwrap_or(or).0);
        let (i, o) = (p.input_per_mtok, p.output_per_mtok);
        let total = u128::from(left) * u128::from(i.0)
            + u128::from(cached) * rate(p.cached_input_per_mtok, i)
            + u128::from(write) * rate(p.cache_write_per_mtok, i)
            + u128::from(audio_in) * rate(p.audio_input_per_mtok, i)
            + u128::from(self.completion_tokens - audio_out) * u128::from(o.0)
            + u128::from(audio_out) * rate(p.audio_output_per_mtok, o);
        Nanos(u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX))
    }

    /// What the cached part saved against billing it as plain input.
    pub fn cache_saving(&self, p: &Price) -> Nanos {
        let plain = Usage {
            cached_tokens: 0,
            ..*self
        };
        Nanos(plain.cost(p).0.saturating_sub(self.cost(p).0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_part_is_billed_at_its_own_rate() {
        // gpt-4o: $2.5/M input, $1.25/M cached, $10/M output; 2,006 prompt
        // tokens of which 1,920 cached, 300 completion tokens.
        let p = Price {
            cached_input_per_mtok: Some(Nanos(1_250_000_000)),
            ..Price::new(Nanos(2_500_000_000), Nanos(10_000_000_000))
        };
        let u = Usage {
            cached_tokens: 1920,
            ..Usage::new(2006, 300)
        };
        // 86 × 2.5 + 1920 × 1.25 + 300 × 10 = 215 + 2400 + 3000 = 5615 µ$.
        assert_eq!(u.cost(&p), Nanos(5_615_000));
        assert_eq!(u.cache_saving(&p), Nanos(2_400_000));
        assert_eq!(Usage::new(2006, 300).cost(&p), p.cost(2006, 300));
        // Without a cached rate, cached input is billed as input.
        let plain = Price::new(p.input_per_mtok, p.output_per_mtok);
        assert_eq!(u.cost(&plain), plain.cost(2006, 300));
        // Audio in and out at theirs; reasoning is output.
        let audio = Price {
            audio_input_per_mtok: Some(Nanos(40_000_000_000)),
            audio_output_per_mtok: Some(Nanos(80_000_000_000)),
            ..plain
        };
        let spoken = Usage {
            audio_prompt_tokens: 100,
            audio_completion_tokens: 70,
            reasoning_tokens: 5,
            ..Usage::new(120, 80)
        };
        // 20 × 2.5 + 100 × 40 + 10 × 10 + 70 × 80 = 9,750 µ$.
        assert_eq!(spoken.cost(&audio), Nanos(9_750_000));
        // Parts never count twice, whatever the upstream claims.
        let absurd = Usage {
            cached_tokens: 5000,
            cache_write_tokens: 5000,
            ..Usage::new(10, 0)
        };
        assert!(absurd.cost(&p) <= Usage::new(10, 0).cost(&p));
    }

    #[test]
    fn reads_every_part_of_chat_and_responses_usage() {
        let chat = serde_json::json!({"prompt_tokens": 120, "completion_tokens": 80,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 70}});
        let u = Usage::from_json(&chat).unwrap();
        assert_eq!(
            (
                u.audio_prompt_tokens,
                u.audio_completion_tokens,
                u.reasoning_tokens
            ),
            (100, 70, 3)
        );
        let responses = serde_json::json!({"input_tokens": 2006, "output_tokens": 300,
            "input_tokens_details": {"cached_tokens": 1920},
            "output_tokens_details": {"reasoning_tokens": 192}});
        let u = Usage::from_json(&responses).unwrap();
        assert_eq!((u.cached_tokens, u.reasoning_tokens), (1920, 192));
    }
}
