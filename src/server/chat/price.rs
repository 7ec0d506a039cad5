//! What a request costs on a model: its price now, and the most it can
//! cost (what a budget reserves).

use crate::classify::counting::Counter;
use crate::gateway::Gateway;
use crate::money::{Nanos, Price};
use crate::policy::{ModelId, Pricing};
use crate::request::ChatRequest;
use crate::state::bounds::{Hold, Shape, Want};
use serde_json::Value;

/// The completion budget assumed when neither `max_tokens` nor the
/// model's context bounds it.
pub const DEFAULT_COMPLETION_CAP: u32 = 4096;

/// The per-token price of `id` now (None: a GPU-hour model not built in).
pub fn price_of(gw: &Gateway, id: ModelId) -> Option<Price> {
    match (&gw.backends[id], gw.policy.models[id].pricing) {
        #[cfg(feature = "local")]
        (crate::gateway::Backend::Local(m), _) => Some(m.price()),
        (_, Pricing::PerToken(p)) => Some(p),
        (_, Pricing::GpuHour { .. } | Pricing::Unknown) => None,
    }
}

/// The price `id` is charged and reserved at: its own, else (a model with
/// no known price) the baseline's, so that budgets still hold.
pub fn charge_price(gw: &Gateway, id: ModelId) -> Price {
    price_of(gw, id).unwrap_or(gw.policy.baseline.price)
}

/// What a request asks of a model, for its reservation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Need {
    /// The prompt by the model's own counter.
    pub counted: u64,
    /// The prompt's byte bound (`Counter::Bytes`).
    pub prompt_cap: u64,
    pub max_tokens: Option<u32>,
    /// Outputs billed: `n`, `best_of`, one per prompt of an array.
    pub choices: u32,
    pub shape: Shape,
}

/// The most a request can cost on `id`, and the tokens it holds: the
/// prompt as the model's counter bounds it (`need.counted`; `cl100k` as
/// the classifier counted), plus the output bound (`output_bound`) once
/// for each of the choices billed; both tightened by what settlements of
/// the same shape have shown (`state::bounds`), never past the prompt's
/// byte bound or what the model can output.
pub fn worst_case(gw: &Gateway, id: ModelId, cl100k: u32, need: Need) -> (Nanos, Hold) {
    let m = &gw.policy.models[id];
    let one = output_bound(gw, id, cl100k, need.max_tokens);
    let most = m
        .max_output
        .or(m.context)
        .unwrap_or(DEFAULT_COMPLETION_CAP)
        .max(one);
    let choices = u64::from(need.choices.max(1));
    let want = Want {
        shape: need.shape,
        bytes: m.counter == Counter::Bytes,
        counted: need.counted,
        cl100k: u64::from(cl100k),
        completion: u64::from(one).saturating_mul(choices),
        prompt_cap: need.prompt_cap,
        completion_cap: u64::from(most).saturating_mul(choices),
    };
    gw.absorb_learnt();
    let hold = gw.bounds.hold(id, want);
    let cost = charge_price(gw, id).cost(hold.prompt, hold.completion);
    (cost, hold)
}

/// A chat request's shape: `Rich` when it is billed beyond its text
/// (non-text content parts, audio output, several choices, or Responses
/// state only its upstream knows).
pub fn shape_of(chat: &ChatRequest, responses: Option<&crate::responses::Ask>) -> Shape {
    let rich_part = |m: &Value| {
        m.get("content")
            .and_then(Value::as_array)
            .is_some_and(|parts| {
                parts.iter().any(|p| {
                    p.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t != "text")
                })
            })
    };
    let audio = chat.body.contains_key("audio")
        || chat
            .body
            .get("modalities")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    let stateful = responses.is_some_and(|a| a.upstream_only.is_some());
    if chat.n > 1 || audio || stateful || chat.messages().iter().any(rich_part) {
        Shape::Rich
    } else {
        Shape::Plain
    }
}

/// The input assumed for a model without `context:` when the upstream
/// adds input the gateway cannot count: the largest context served today.
pub const UNBOUNDED_CONTEXT: u32 = 1_048_576;

/// What a chat request needs of `id` (`cl100k`: the classifier's count).
/// A Responses request whose upstream adds input the gateway cannot see
/// (`Ask::unbounded_input`) is held at the model's whole context.
pub fn chat_need(
    gw: &Gateway,
    id: ModelId,
    (chat, responses): (&ChatRequest, Option<&crate::responses::Ask>),
    cl100k: u32,
    shape: Shape,
) -> Need {
    let mut counted = count_chat(gw, id, chat, cl100k);
    let mut prompt_cap = match gw.policy.models[id].counter {
        Counter::Bytes => counted,
        _ => Counter::Bytes.chat(chat.messages(), chat.body.get("tools")),
    };
    if responses.is_some_and(crate::responses::Ask::unbounded_input) {
        let whole = u64::from(gw.policy.models[id].context.unwrap_or(UNBOUNDED_CONTEXT));
        counted = counted.max(whole);
        prompt_cap = prompt_cap.max(whole);
    }
    Need {
        counted,
        prompt_cap,
        max_tokens: chat.max_tokens,
        choices: chat.n,
        shape,
    }
}

/// The output bound of one choice on `id`: `max_tokens`, else the
/// model's `max_output`, else what is left of its context, else
/// `DEFAULT_COMPLETION_CAP`; never more than `max_output`. Sent upstream
/// when the client set none (`ChatRequest::upstream_body`).
pub fn output_bound(gw: &Gateway, id: ModelId, cl100k: u32, max_tokens: Option<u32>) -> u32 {
    let m = &gw.policy.models[id];
    let left = |c: u32| c.saturating_sub(cl100k).max(1);
    let completion = max_tokens
        .or(m.max_output)
        .unwrap_or_else(|| m.context.map_or(DEFAULT_COMPLETION_CAP, left));
    m.max_output.map_or(completion, |o| completion.min(o))
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
        let need = |max, choices| Need {
            counted: 20,
            // The byte bound, held until settlements verify the count.
            prompt_cap: 20,
            max_tokens: max,
            choices,
            shape: Shape::Plain,
        };
        let completion = |id, max| worst_case(&gw, id, 20, need(max, 1)).1.completion;
        assert_eq!(completion(0, None), 10, "max_output");
        assert_eq!(completion(0, Some(50)), 10, "never more than max_output");
        assert_eq!(completion(0, Some(5)), 5);
        assert_eq!(completion(1, None), 80, "what is left of the context");
        let (cost, hold) = worst_case(&gw, 1, 20, need(Some(7), 1));
        assert_eq!((hold.prompt, hold.completion), (20, 7));
        assert_eq!(cost, Nanos(27_000), "27 tokens at $1/M");
        // n = 4: the prompt once, four outputs.
        let (cost, hold) = worst_case(&gw, 1, 20, need(Some(7), 4));
        assert_eq!((hold.prompt, hold.completion), (20, 28));
        assert_eq!(cost, Nanos(48_000));
    }
}
