//! What a request costs on a model: its price now, and the most it can
//! cost (what a budget reserves).

use crate::gateway::Gateway;
use crate::money::{Nanos, Price};
use crate::policy::{ModelId, Pricing};

/// The completion budget assumed when neither `max_tokens` nor the
/// model's context bounds it.
pub const DEFAULT_COMPLETION_CAP: u32 = 4096;

/// The per-token price of `id` now (None: a GPU-hour model not built in).
pub fn price_of(gw: &Gateway, id: ModelId) -> Option<Price> {
    match (&gw.backends[id], gw.policy.models[id].pricing) {
        #[cfg(feature = "local")]
        (crate::gateway::Backend::Local(m), _) => Some(m.price()),
        (_, Pricing::PerToken(p)) => Some(p),
        (_, Pricing::GpuHour { .. }) => None,
    }
}

/// The most a request can cost on `id`: its prompt, plus `max_tokens` (or
/// what is left of the context, or `DEFAULT_COMPLETION_CAP`) of output.
pub fn worst_case(gw: &Gateway, id: ModelId, prompt: u32, max_tokens: Option<u32>) -> Nanos {
    let Some(price) = price_of(gw, id) else {
        return Nanos::ZERO;
    };
    let completion = max_tokens.unwrap_or_else(|| {
        gw.policy.models[id]
            .context
            .map_or(DEFAULT_COMPLETION_CAP, |c| c.saturating_sub(prompt).max(1))
    });
    price.cost(u64::from(prompt), u64::from(completion))
}
