//! The chat endpoints' part of the attempt loop (`dispatch::Attempt`):
//! Chat Completions, and Responses, which is passed as it is to a
//! provider that speaks it and translated for any other model.

use std::sync::Arc;

use super::dispatch::{Attempt, Unfit};
use super::price::{chat_need, output_bound, shape_of, Need};
use super::settle::Tab;
use super::stop::Overflow;
use crate::gateway::{Backend, Gateway};
use crate::policy::ModelId;
use crate::request::ChatRequest;
use crate::responses::Ask;
use crate::state::bounds::Shape;
use crate::upstream::{Failure, Reply, RetryReason};

/// What a request Chat Completions cannot carry to the model needs.
const RESPONSES: &str = "a model whose provider speaks the Responses API";
/// What a Messages request only a Messages provider can carry needs.
const MESSAGES: &str = "a model whose provider speaks Anthropic's Messages API";
/// What a request Anthropic's Messages API cannot carry needs.
const NOT_MESSAGES: &str = "a model whose provider speaks OpenAI's API (not Anthropic's Messages)";

pub struct Chat<'a> {
    pub chat: &'a ChatRequest,
    /// The classifier's (cl100k) count of the prompt.
    pub prompt_tokens: u32,
    /// For `/v1/responses`: the client's request, for models that speak it.
    pub responses: Option<&'a Arc<Ask>>,
    /// For `/v1/messages`: the client's request, for models that speak it.
    pub messages: Option<&'a Arc<crate::messages::Ask>>,
    shape: Shape,
}

impl<'a> Chat<'a> {
    pub fn new(chat: &'a ChatRequest, prompt_tokens: u32, responses: Option<&'a Arc<Ask>>) -> Self {
        Chat {
            chat,
            prompt_tokens,
            responses,
            messages: None,
            shape: shape_of(chat, responses.map(|a| &**a)),
        }
    }

    /// A `/v1/messages` request: passed as it is to a Messages provider.
    pub fn speaking_messages(mut self, ask: Option<&'a Arc<crate::messages::Ask>>) -> Self {
        self.messages = ask;
        self
    }

    /// The Responses request, when it must be translated for `id`.
    fn translated(&self, gw: &Gateway, id: ModelId) -> Option<&'a Arc<Ask>> {
        self.responses.filter(|_| translates(&gw.backends[id]))
    }
}

impl Attempt for Chat<'_> {
    async fn unfit(&self, gw: &Gateway, id: ModelId) -> Option<Unfit> {
        if let Some((what, field)) = self
            .translated(gw, id)
            .and_then(|a| a.upstream_only.clone())
        {
            return Some(Unfit::Cannot(what, field, RESPONSES));
        }
        let speaks = matches!(&gw.backends[id], Backend::OpenAi(up) if up.speaks_messages());
        match (self.messages, speaks) {
            (Some(ask), false) => {
                if let Some((what, field)) = &ask.upstream_only {
                    return Some(Unfit::Cannot(what.clone(), field.to_string(), MESSAGES));
                }
            }
            (None, true) => {
                if let Some((what, field)) =
                    crate::upstream::anthropic::untranslatable(&self.chat.body)
                {
                    return Some(Unfit::Cannot(what, field, NOT_MESSAGES));
                }
            }
            _ => {}
        }
        overflow(gw, id, self.chat, self.prompt_tokens)
            .await
            .map(Unfit::TooSmall)
    }

    fn need(&self, gw: &Gateway, id: ModelId) -> Need {
        let asked = (self.chat, self.responses.map(|a| &**a));
        chat_need(gw, id, asked, self.prompt_tokens, self.shape)
    }

    /// A Responses request as it is to a provider that speaks it, else its
    /// chat equivalent, with the answer translated back.
    async fn call(&self, gw: &Gateway, id: ModelId, tab: &Tab) -> Result<Reply, Failure> {
        let (chat, cl100k) = (self.chat, self.prompt_tokens);
        let mut on_finish = Some(tab.on_finish());
        let name = gw.model_names[id].clone();
        let backend = &gw.backends[id];
        if let (Some(ask), Backend::OpenAi(up)) = (self.messages, backend) {
            if up.speaks_messages() {
                let body = ask.upstream_body(&gw.policy.models[id].upstream_model);
                let up = up.with_headers(&ask.headers);
                return up.messages(body, ask.stream, name, &mut on_finish).await;
            }
        }
        if let (Some(ask), Backend::OpenAi(up)) = (self.responses, backend) {
            if up.speaks_responses() {
                let body = ask.upstream_body(&gw.policy.models[id].upstream_model);
                return up.responses(body, ask.stream, name, &mut on_finish).await;
            }
        }
        let reply = match backend {
            Backend::OpenAi(up) => {
                let bound = output_bound(gw, id, cl100k, chat.max_tokens);
                let body = chat.upstream_body(&gw.policy.models[id].upstream_model, Some(bound));
                let options = (chat.stream, chat.include_usage);
                up.chat(false, body, options, name, &mut on_finish).await
            }
            #[cfg(feature = "local")]
            Backend::Local(m) => m.chat(chat, name, &mut on_finish).await,
            Backend::Unavailable(why) => Err(Failure::Retry(RetryReason::Unavailable(why.clone()))),
        }?;
        match self.responses {
            None => Ok(reply),
            Some(ask) => crate::responses::from_chat(reply, ask)
                .map_err(|e| Failure::Retry(RetryReason::Malformed(e))),
        }
    }

    fn answered(&self, gw: &Gateway, id: ModelId) -> Option<String> {
        self.translated(gw, id).map(|_| {
            format!(
                "{} answered through Chat Completions (Responses translated)",
                gw.model_names[id]
            )
        })
    }
}

/// Whether a Responses request must be translated for `backend`.
fn translates(backend: &Backend) -> bool {
    !matches!(backend, Backend::OpenAi(up) if up.speaks_responses())
}

/// `Some` when the prompt plus the requested completion (at least one
/// token) does not fit `id`'s declared context. Local models count with
/// their own tokenizer and chat template; OpenAI models with cl100k.
async fn overflow(gw: &Gateway, id: ModelId, chat: &ChatRequest, cl100k: u32) -> Option<Overflow> {
    let context = gw.policy.models[id].context?;
    let prompt = match &gw.backends[id] {
        #[cfg(feature = "local")]
        Backend::Local(m) => match m.count_prompt_tokens(chat).await {
            Ok(n) => u32::try_from(n).unwrap_or(u32::MAX),
            Err(_) => cl100k,
        },
        _ => cl100k,
    };
    let completion = chat.max_tokens.unwrap_or(1).max(1);
    let o = Overflow {
        context,
        prompt,
        completion,
    };
    (o.needed() > u64::from(context)).then_some(o)
}
