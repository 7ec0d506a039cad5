//! Admit: may this caller use the model it names, and do its key, team
//! and global rate limits take one more request and its prompt tokens?
//! A model's own limits are checked per attempt (`dispatch`), here too.

use std::sync::atomic::Ordering;

use super::stop::Stop;
use crate::gateway::Gateway;
use crate::policy::Subject;
use crate::server::auth::Caller;
use crate::state::limits::{Denial, Verdict};

pub async fn run(
    gw: &Gateway,
    caller: &Caller,
    model: &str,
    prompt_tokens: u32,
) -> Result<Verdict, Stop> {
    if !caller.may_use(gw, model) {
        return Err(Stop::ModelNotFound(model.to_string()));
    }
    limits(gw, subject(caller, None), prompt_tokens).await
}

pub fn subject<'a>(caller: &'a Caller, model: Option<&'a str>) -> Subject<'a> {
    Subject {
        key: &caller.key_id,
        team: &caller.team,
        model,
    }
}

/// Takes one request and `tokens` from the rate limits that apply to `s`.
pub async fn limits(gw: &Gateway, s: Subject<'_>, tokens: u32) -> Result<Verdict, Stop> {
    if gw.limits.is_empty() {
        return Ok(Verdict::default());
    }
    match gw.limits.admit(s, tokens).await {
        Ok(v) => Ok(v),
        Err(Denial::Limited(l)) => {
            gw.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            Err(Stop::RateLimited(l, tokens))
        }
        Err(Denial::Unavailable) => unreachable(gw).map(|()| Verdict::default()),
    }
}

/// The failure policy for an unreachable shared state (`state::unreachable`).
pub fn unreachable(gw: &Gateway) -> Result<(), Stop> {
    crate::state::unreachable(gw.policy.state.fail_open, &gw.counters.outages)
        .map_err(|_| Stop::StateUnavailable)
}
