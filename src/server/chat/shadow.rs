//! Router learning from live traffic (`shadow:` in the policy, see
//! `policy::shadow`): for a sampled share of routed chat requests that the
//! strong or the weak model answered, the other one answers too, a judge
//! grades both on a fixed rubric, and the outcome line is appended where
//! `tollgate route fit` reads it.
//!
//! The client is never kept waiting and its answer never changes: a JSON
//! answer is copied as it goes out, a stream's text is collected as its
//! chunks pass, and the learning starts on the gateway's task tracker once
//! the answer is complete (a cut or broken stream teaches nothing). The
//! calls are made as the caller `router-learning`, through the same
//! attempt loop, budget reservation and ledger as any request, under the
//! shadow block's own budget.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::dispatch::{self, Answer, Job};
use super::settle::{Close, Fact, Tab};
use crate::classify::{tokens, Class};
use crate::gateway::Gateway;
use crate::policy::shadow::KEY;
use crate::policy::ModelId;
use crate::request::ChatRequest;
use crate::server::auth::Caller;
use crate::upstream::{Reply, SseStream};

mod judge;

/// A request picked for learning: what the other side and the judge need.
struct Sampled {
    chat: ChatRequest,
    class: Class,
    answered: ModelId,
}

/// Picks the request for learning (the policy's share of routed chat
/// requests answered by its strong or weak model) and taps its answer;
/// the answer goes on to the client unchanged.
pub(super) fn tap(gw: &Arc<Gateway>, chat: &ChatRequest, class: &Class, answer: Answer) -> Answer {
    let Some(s) = &gw.policy.shadow else {
        return answer;
    };
    // A judge grades text: tool calls and several choices are not sampled.
    let text_only = || {
        !["tools", "functions", "n"]
            .iter()
            .any(|k| chat.body.get(*k).is_some_and(|v| !v.is_null() && v != 1))
    };
    let picked = (answer.model == s.strong || answer.model == s.weak)
        && crate::route::is_routed(&gw.policy, &chat.model)
        && text_only()
        && rand::random::<f64>() < s.sample;
    if !picked {
        return answer;
    }
    let picked = Sampled {
        chat: chat.clone(),
        class: class.clone(),
        answered: answer.model,
    };
    match answer.reply {
        Reply::Json { ref body, .. } => {
            start(gw, picked, judge::answer_text(body));
            answer
        }
        Reply::Stream(s) => Answer {
            reply: Reply::Stream(collect(gw.clone(), picked, s)),
            ..answer
        },
    }
}

/// Passes a chat stream's frames on as they are, keeping the text of its
/// content deltas; when it has ended with `[DONE]`, learning starts.
fn collect(gw: Arc<Gateway>, picked: Sampled, s: SseStream) -> SseStream {
    struct State {
        inner: SseStream,
        text: String,
        done: bool,
        picked: Option<Sampled>,
        gw: Arc<Gateway>,
    }
    let state = State {
        inner: s,
        text: String::new(),
        done: false,
        picked: Some(picked),
        gw,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        let Some(frame) = st.inner.next().await else {
            if st.done {
                if let Some(p) = st.picked.take() {
                    start(&st.gw, p, std::mem::take(&mut st.text));
                }
            }
            return None;
        };
        read_frame(&frame, &mut st.text, &mut st.done);
        Some((frame, st))
    }))
}

/// The content delta of one SSE frame, appended to `text` until it holds
/// what the judge is shown (`judge::MAX_PART`, cut there): a long stream
/// keeps no more than that and one chunk.
fn read_frame(frame: &Bytes, text: &mut String, done: &mut bool) {
    let Some(data) = frame.strip_prefix(b"data: ") else {
        return;
    };
    let data = data.trim_ascii_end();
    if data == b"[DONE]" {
        *done = true;
        return;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
            if text.len() < judge::MAX_PART {
                text.push_str(t);
            }
        }
    }
}

fn start(gw: &Arc<Gateway>, picked: Sampled, text: String) {
    let g = gw.clone();
    gw.tasks.spawn(async move {
        let counters = &g.counters;
        match learn(&g, picked, text).await {
            Ok(()) => {
                counters
                    .shadow_outcomes
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err(why) => {
                counters
                    .shadow_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(reason = %why, "router learning: no outcome for a sampled request");
            }
        }
    });
}

/// The other side's answer, the judge's grades, the outcome line.
async fn learn(gw: &Arc<Gateway>, picked: Sampled, answered_text: String) -> Result<(), String> {
    if answered_text.trim().is_empty() {
        return Err("the answer had no text to judge".into());
    }
    let s = gw
        .policy
        .shadow
        .clone()
        .ok_or("shadow learning is no longer configured")?;
    let caller = Caller {
        key_id: Arc::from(KEY),
        team: Arc::from(KEY),
        key: None,
    };
    let other = if picked.answered == s.strong {
        s.weak
    } else {
        s.strong
    };
    let mut body = picked.chat.body.clone();
    body.remove("stream");
    body.remove("stream_options");
    body.insert("model".into(), json!(gw.policy.models[other].name));
    let other_chat = parse(&Value::Object(body))?;
    let other_text = call(gw, &caller, &other_chat, other, &picked.class).await?;
    let (strong_text, weak_text) = if picked.answered == s.strong {
        (answered_text, other_text)
    } else {
        (other_text, answered_text)
    };
    let strong_first = rand::random::<bool>();
    let (a, b) = if strong_first {
        (&strong_text, &weak_text)
    } else {
        (&weak_text, &strong_text)
    };
    let ask = judge::request(&gw.policy.models[s.judge].name, &picked.chat, a, b);
    let verdict = call(gw, &caller, &parse(&ask)?, s.judge, &picked.class).await?;
    let (ga, gb) = judge::grades(&verdict)?;
    let (strong, weak) = if strong_first { (ga, gb) } else { (gb, ga) };
    let line = json!({
        "messages": picked.chat.messages(),
        "strong": strong,
        "weak": weak,
        "strong_model": gw.policy.models[s.strong].name,
        "weak_model": gw.policy.models[s.weak].name,
        "answered": gw.policy.models[picked.answered].name,
        "judge": gw.policy.models[s.judge].name,
        "judged_first": if strong_first { "strong" } else { "weak" },
        "at_ms": gw.clock.now(),
    });
    judge::append(&s.outcomes, &line).await
}

fn parse(body: &Value) -> Result<ChatRequest, String> {
    ChatRequest::parse(body.to_string().as_bytes()).map_err(|e| e.message)
}

/// One call as the caller `router-learning`: reserved, answered, settled
/// and in the ledger like any request; its answer's text.
async fn call(
    gw: &Arc<Gateway>,
    caller: &Caller,
    chat: &ChatRequest,
    model: ModelId,
    class: &Class,
) -> Result<String, String> {
    let prompt_tokens = tokens::count_chat(chat.messages());
    let id = format!("req_learn_{:016x}", rand::random::<u64>());
    let tab = Tab::open(gw, caller, &id);
    tab.note(Fact::Requested(&chat.model));
    tab.note(Fact::Class(class, prompt_tokens));
    tab.note(Fact::Route(KEY));
    tab.note(Fact::Cache("off"));
    let attempt = super::attempt::Chat::new(chat, prompt_tokens, None);
    let job = Job {
        attempt: &attempt,
        prompt_tokens,
        chain: &[model],
        caller,
        tab: &tab,
    };
    match dispatch::run(gw, job).await {
        Ok(Answer {
            reply: Reply::Json { body, usage },
            ..
        }) => {
            tab.close(Close::json(usage, &body));
            Ok(judge::answer_text(&body))
        }
        Ok(_) => {
            tab.close(Close::error(502));
            Err("a stream came back for a request that asked for none".into())
        }
        Err(stop) => {
            let e = crate::error::ApiError::from(stop);
            tab.close(Close::error(e.status.as_u16()));
            Err(format!(
                "{} answered {}: {}",
                chat.model, e.status, e.message
            ))
        }
    }
}

#[cfg(test)]
mod tests;
