//! `POST /v1/chat/completions`, as a sequence of stages, each in its own
//! module with a typed input and output:
//!
//! authenticate (`server::auth`, before this handler) → `parse` →
//! `admit` → `classify` → `route` → `cache` → `dispatch` → `settle`,
//! with the response and its headers written by `reply`. A stage that
//! ends the request returns a `Stop`; it becomes an OpenAI-shaped error in
//! one place (`stop`), at the edge.
//!
//! `POST /v1/responses` runs the same stages on its chat equivalent
//! (`crate::responses`): dispatch passes the client's body to a provider
//! that speaks Responses, and translates for any other model.

pub(super) mod admit;
mod attempt;
pub(super) mod budget_cut;
pub(super) mod cache;
mod classify;
pub(super) mod dispatch;
pub(super) mod parse;
pub(super) mod price;
pub(super) mod reply;
mod route;
pub(super) mod settle;
mod shadow;
pub(super) mod stop;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;

use crate::error::ApiError;
use crate::gateway::Gateway;
use crate::money::Nanos;
use crate::route::RouteDecision;
use crate::server::auth::Caller;
use crate::state::cache::{Directive, Entry};
use crate::state::limits::Verdict;
use crate::upstream::Reply;
use cache::Lookup;
use parse::Endpoint;
use reply::Tags;
use settle::{Close, Fact, Tab};
use stop::Stop;

/// The request path, composed.
async fn handle(
    gw: &Arc<Gateway>,
    caller: &Caller,
    tab: &Tab,
    req: Request,
    endpoint: Endpoint,
) -> Result<Response, Stop> {
    // `/v1/messages` (`server::messages`): the client's Messages request.
    let messages = req.extensions().get::<Arc<crate::messages::Ask>>().cloned();
    let parse::Parsed {
        chat,
        headers,
        prompt_tokens,
        responses,
    } = parse::run(gw, req, endpoint).await?;
    tab.note(Fact::Requested(&chat.model));
    let limits = admit::run(gw, caller, &chat.model, prompt_tokens).await?;
    let class = classify::run(gw, &chat, prompt_tokens);
    tab.note(Fact::Class(&class, prompt_tokens));
    let decision = route::run(gw, &chat.model, &class, prompt_tokens)?;
    tab.note(Fact::Route(&decision.rule));
    let (body, kind) = match (&responses, &messages) {
        (Some(ask), _) => (&ask.body, "responses"),
        (None, Some(ask)) => (&*ask.body, "messages"),
        (None, None) => (&chat.body, ""),
    };
    let directive = Directive::of(&headers, body);
    let how = Answered {
        decision: &decision,
        class: Some(&class),
        task: "",
        needle: match responses {
            Some(_) => b"\"delta\":\"",
            None => b"\"content\":\"",
        },
        messages: messages.is_some(),
    };
    let plan = match cache::run(gw, &caller.team, &decision.chain, directive, body, kind).await {
        Lookup::Hit(e) => return Ok(replay(tab, &e, &how, &limits)),
        Lookup::Miss(plan) => plan,
    };
    tab.note(Fact::Cache(plan.state));
    let attempt = attempt::Chat::new(&chat, prompt_tokens, responses.as_ref())
        .speaking_messages(messages.as_ref());
    let job = dispatch::Job {
        attempt: &attempt,
        prompt_tokens,
        chain: &decision.chain,
        caller,
        tab,
    };
    let mut answer = dispatch::run(gw, job).await?;
    if responses.is_none() && messages.is_none() {
        answer = shadow::tap(gw, &chat, &class, answer);
    }
    Ok(respond(gw, tab, plan, limits, answer, how))
}

/// What `respond` says of the request besides the answer.
pub(super) struct Answered<'a> {
    pub decision: &'a RouteDecision,
    pub class: Option<&'a crate::classify::Class>,
    /// `x-tollgate-task` when there is no class.
    pub task: &'static str,
    /// What starts a text delta in a stream's frames (`budget_cut`).
    pub needle: &'static [u8],
    /// A `/v1/messages` request (passed as it is to a Messages provider).
    pub messages: bool,
}

/// A cache hit, replayed, every endpoint's: it costs nothing, and the
/// tab closes for it.
pub(super) fn replay(tab: &Tab, e: &Entry, how: &Answered<'_>, limits: &Verdict) -> Response {
    tab.close_cached(e);
    let t = Tags {
        decision: how.decision,
        class: how.class,
        task: how.task,
        model: &e.model,
        fell_back: None,
        notes: &[],
        limits,
        cache: "hit",
        cost: Some(Nanos::ZERO),
        remaining: None,
    };
    reply::replay(e, &t)
}

/// The client's response for a model's answer, every endpoint's: a JSON
/// reply closes the tab at once (and is cached when the plan says so); a
/// stream is guarded by its budget, captured for the cache, and closes
/// the tab when it ends.
pub(super) fn respond(
    gw: &Arc<Gateway>,
    tab: &Tab,
    plan: cache::Plan,
    mut limits: Verdict,
    answer: dispatch::Answer,
    how: Answered<'_>,
) -> Response {
    let dispatch::Answer {
        model,
        reply,
        remaining,
        fell_back,
        notes,
        limits: model_limits,
    } = answer;
    limits.merge(model_limits);
    let name = &gw.model_names[model];
    let tags = Tags {
        decision: how.decision,
        class: how.class,
        task: how.task,
        model: name,
        fell_back: fell_back.as_ref(),
        notes: &notes,
        limits: &limits,
        cache: plan.state,
        cost: None,
        remaining,
    };
    match reply {
        Reply::Json { body, usage } => {
            let (cost, after) = tab.close(Close::json(usage, &body));
            if let (Some(key), Some(u)) = (plan.store, usage) {
                let entry = Entry {
                    stream: false,
                    model: name.to_string(),
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    cost_nanos: cost.0,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                cache::store(gw, key, entry);
            }
            let t = Tags {
                cost: Some(cost),
                remaining: after.or(remaining),
                ..tags
            };
            reply::json(body, &t)
        }
        Reply::Stream(s) => {
            // A Messages provider's own events carry text as `"text":"`.
            let needle = match &gw.backends[model] {
                crate::gateway::Backend::OpenAi(up) if up.speaks_messages() && how.messages => {
                    b"\"text\":\"".as_slice()
                }
                _ => how.needle,
            };
            let mut s = budget_cut::guard_on(tab, s, needle);
            if let Some(key) = plan.store {
                s = cache::capture(gw, key, name.to_string(), tab.clone(), s);
            }
            reply::stream(s, &tags)
        }
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    serve(gw, caller, req, async |g, c, t, r| {
        handle(g, c, t, r, Endpoint::Chat).await
    })
    .await
}

/// `POST /v1/responses`.
pub async fn responses(
    Extension(gw): Extension<Arc<Gateway>>,
    Extension(caller): Extension<Caller>,
    req: Request,
) -> Response {
    serve(gw, caller, req, async |g, c, t, r| {
        handle(g, c, t, r, Endpoint::Responses).await
    })
    .await
}

/// Opens the tab, runs `handle` until shutdown stops it, and turns a
/// `Stop` into the client's error (closing the tab with it). Every
/// endpoint that accounts a request runs through here.
pub(crate) async fn serve(
    gw: Arc<Gateway>,
    caller: Caller,
    req: Request,
    handle: impl AsyncFnOnce(&Arc<Gateway>, &Caller, &Tab, Request) -> Result<Response, Stop>,
) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let tab = Tab::open(&gw, &caller, &request_id);
    let stop = req
        .extensions()
        .get::<super::Shutdown>()
        .map(|s| s.0.clone());
    let handled = match &stop {
        Some(stop) => tokio::select! {
            r = handle(&gw, &caller, &tab, req) => r,
            () = stop.cancelled() => Err(Stop::ShuttingDown),
        },
        None => handle(&gw, &caller, &tab, req).await,
    };
    match (handled, stop) {
        // A stream ends when the shutdown grace period is over.
        (Ok(res), Some(stop)) if is_stream(&res) => {
            let (parts, body) = res.into_parts();
            let body = body.into_data_stream().take_until(stop.cancelled_owned());
            Response::from_parts(parts, Body::from_stream(body))
        }
        (Ok(res), _) => res,
        (Err(stop), _) => {
            let e = ApiError::from(stop);
            if e.status.is_server_error() {
                tracing::warn!(status = e.status.as_u16(), cause = ?e.cause, "request failed");
            }
            tab.close(Close::error(e.status.as_u16()));
            e.into_response()
        }
    }
}

fn is_stream(res: &Response) -> bool {
    res.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"text/event-stream")
}
