//! Classify: what the request is (task, complexity, `strong_score`).
//! A request that goes straight to the model it names has no routing
//! decision to make: the keyword classifier fills the ledger's fields;
//! routed requests ask the learned router when one is loaded.

use crate::classify::{classify_with, Class, Texts};
use crate::gateway::Gateway;
use crate::request::ChatRequest;
use crate::route::is_routed;

pub fn run(gw: &Gateway, chat: &ChatRequest, prompt_tokens: u32) -> Class {
    let texts = Texts::of(chat);
    let router = gw.router().filter(|_| is_routed(&gw.policy, &chat.model));
    classify_with(router, &texts.conversation(chat, prompt_tokens))
}
