//! What a request costs on a model: its price now, and the most it can
//! cost (what a budget reserves).

use crate::classify::counting::Counter;
use crate::gateway::Gateway;
use crate::money::{Nanos, Price};
use crate::policy::{ModelId, Pricing};
use crate::request::ChatRequest;
use crate::state::bounds::Hold;

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

/// The most a request can cost on `id`, and the tokens it holds: the
/// prompt as the model's counter bounds it (`counted`; `cl100k` as the
/// classifier counted), plus the output bound: `max_tokens`, else the
/// model's `max_output`, else what is left of its context (after the
/// cl100k count, as the context check counts), else
/// `DEFAULT_COMPLETION_CAP` (never more than `max_output`); both
/// tightened by what settlements have shown (`state::bounds`).
pub fn worst_case(
    gw: &Gateway,
    id: ModelId,
    counted: u64,
    cl100k: u32,
    max_tokens: Option<u32>,
) -> (Nanos, Hold) {
    let m = &gw.policy.models[id];
    let left = |c: u32| c.saturating_sub(cl100k).max(1);
    let completion = max_tokens
        .or(m.max_output)
        .unwrap_or_else(|| m.context.map_or(DEFAULT_COMPLETION_CAP, left));
    let completion = m.max_output.map_or(completion, |o| completion.min(o));
    let bytes = m.counter == Counter::Bytes;
    let hold = gw
        .bounds
        .hold(id, bytes, counted, u64::from(cl100k), u64::from(completion));
    let cost = price_of(gw, id).map_or(Nanos::ZERO, |p| p.cost(hold.prompt, hold.completion));
    (cost, hold)
}

/// `id`'s count of a chat prompt for its reservation (`cl100k`: the
/// classifier's count, reused when the model counts with cl100k).
pub fn count_chat(gw: &Gateway, id: ModelId, chat: &ChatRequest, cl100k: u32) -> u64 {
    let tools = chat.body.get("tools");
    match &gw.policy.models[id].counter {
        Counter::Cl100k => {
            u64::from(cl100k) + tools.map_or(0, |t| Counter::Cl100k.text(&t.to_string()))
        }
        c => c.chat(chat.messages(), tools),
    }
}
