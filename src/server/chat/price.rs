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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_output_bound_is_max_tokens_else_max_output_else_the_context_left() {
        let yaml = "version: 1\nledger: none\nproviders:\n  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }\nmodels:\n  a: { provider: up, price: { input: 1, output: 1 }, context: 100, max_output: 10, tokenizer: cl100k }\n  b: { provider: up, price: { input: 1, output: 1 }, context: 100, tokenizer: cl100k }\n";
        let p =
            crate::policy::load_str("t.yaml", yaml, std::path::Path::new("."), &|_| None).unwrap();
        let opts = crate::gateway::Options {
            allow_anonymous: true,
            ..Default::default()
        };
        let gw = Gateway::new(p, &opts).unwrap();
        let completion = |id, max| worst_case(&gw, id, 20, 20, max).1.completion;
        assert_eq!(completion(0, None), 10, "max_output");
        assert_eq!(completion(0, Some(50)), 10, "never more than max_output");
        assert_eq!(completion(0, Some(5)), 5);
        assert_eq!(completion(1, None), 80, "what is left of the context");
        let (cost, hold) = worst_case(&gw, 1, 20, 20, Some(7));
        assert_eq!((hold.prompt, hold.completion), (20, 7));
        assert_eq!(cost, Nanos(27_000), "27 tokens at $1/M");
    }
}
