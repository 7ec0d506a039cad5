//! Settle: per-request accounting. The budget reservation, the real cost,
//! the rate limits' token correction, the ledger row, metrics and the log
//! line.
//!
//! A `Tab` opens when an authenticated chat request arrives and is closed
//! exactly once, however the request ends:
//! - `close` from the handler (a JSON reply or an error), or from a
//!   stream's finish callback (complete, broken, or the client went away);
//! - `Drop` when nobody closed it: the handler future was dropped because
//!   the client disconnected while a JSON reply was pending. The row says
//!   `client_gone`, status 499, and the prompt is charged at the estimated
//!   prompt tokens (the upstream bills the prompt once it has started).
//!
//! Each reservation is also journalled as the row the request keeps if
//! the gateway dies before it closes (`ledger::journal`).
//!
//! Cost = the model's per-token price × real usage (local `gpu_hour`
//! models: the price implied by measured throughput). Baseline cost = the
//! same tokens at the policy's baseline price.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::classify::Class;
use crate::gateway::Gateway;
use crate::ledger::Row;
use crate::money::{Nanos, Price};
use crate::policy::{ModelId, Subject};
use crate::server::auth::Caller;
use crate::state::bounds::Hold;
use crate::state::budgets::{Refusal, Reservation};
use crate::state::cache::Entry;

use super::price::{charge_price, worst_case, Need};
use crate::telemetry::Sample;
use crate::upstream::{Ending, Finish, Usage};

mod close;
pub use close::Close;

/// The longest a reservation waits for the first settlements of a model
/// whose prompt count is not yet verified (`state::bounds`).
const VERIFY_WAIT: Duration = Duration::from_secs(5);

struct Account {
    gw: Arc<Gateway>,
    started: Instant,
    row: Row,
    prompt_estimate: u32,
    reservation: Option<Reservation>,
    /// The tokens the current reservation holds.
    hold: Hold,
    /// The model of the current reservation or attempt.
    model: Option<ModelId>,
    first_byte: Option<Duration>,
    /// Time spent waiting on upstream attempts (for the overhead metric).
    upstream: Duration,
    /// Once the tab has closed: the usage and cost it closed with. The
    /// row itself has gone to the ledger by then.
    settled: Option<(Usage, Nanos)>,
    /// The model whose reservation is held before verification
    /// (`Bounds::opened`), until it is released or settled.
    verifying: Option<ModelId>,
}

/// A shared handle: the handler and a stream's finish callback both hold it.
#[derive(Clone)]
pub struct Tab(Arc<Mutex<Account>>);

/// What a stage learned about a request, for its ledger row.
pub enum Fact<'a> {
    Requested(&'a str),
    /// The class and the prompt tokens counted (the budget's estimate).
    Class(&'a Class, u32),
    Route(&'a str),
    /// An embeddings request and its input tokens counted.
    Embedding(u32),
    /// A legacy completions request and its prompt tokens counted.
    Completion(u32),
    /// `off`, `bypass` or `miss` (`hit` is `close_cached`).
    Cache(&'static str),
}

impl Tab {
    pub fn open(gw: &Arc<Gateway>, caller: &Caller, request_id: &str) -> Tab {
        let row = Row::opened(gw.clock.now(), request_id, &caller.key_id, &caller.team);
        Tab(Arc::new(Mutex::new(Account {
            gw: gw.clone(),
            started: Instant::now(),
            row,
            prompt_estimate: 0,
            reservation: None,
            hold: Hold::default(),
            model: None,
            first_byte: None,
            upstream: Duration::ZERO,
            settled: None,
            verifying: None,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Account) -> T) -> Option<T> {
        self.0.lock().ok().map(|mut a| f(&mut a))
    }

    /// Records what a stage learned about the request, for its row.
    pub fn note(&self, fact: Fact<'_>) {
        self.with(|a| match fact {
            Fact::Requested(model) => a.row.requested_model = model.to_string(),
            Fact::Class(class, prompt_tokens) => {
                a.row.task = class.task.to_string();
                a.row.complexity = class.complexity.to_string();
                a.row.strong_milli =
                    Some((class.strong_score.clamp(0.0, 1.0) * 1000.0).round() as u32);
                a.prompt_estimate = prompt_tokens;
            }
            Fact::Route(rule) => a.row.route = rule.to_string(),
            Fact::Embedding(prompt_tokens) => {
                a.row.task = "embedding".into();
                a.prompt_estimate = prompt_tokens;
            }
            Fact::Completion(prompt_tokens) => {
                a.row.task = "completion".into();
                a.prompt_estimate = prompt_tokens;
            }
            Fact::Cache(state) => a.row.cache = state.to_string(),
        });
    }

    /// Reserves the worst case of trying `id` for what the request
    /// `need`s of it, releasing any earlier reservation first.
    /// `Ok(remaining)`: the tightest budget's money left.
    pub async fn reserve(
        &self,
        id: ModelId,
        caller: &Caller,
        need: Need,
    ) -> Result<Option<Nanos>, Refusal> {
        let started = Instant::now();
        loop {
            let Some((gw, amount, hold)) = self.with(|a| {
                a.release();
                let gw = a.gw.clone();
                let (amount, hold) = worst_case(&gw, id, a.prompt_estimate, need);
                if let Some(l) = gw.ledger.as_ref().filter(|l| l.journalled()) {
                    let baseline = gw.policy.baseline.price.cost(hold.prompt, hold.completion);
                    let tokens = (hold.prompt, hold.completion);
                    l.provisional(
                        a.row
                            .interrupted(&gw.model_names[id], tokens, amount, baseline),
                    );
                }
                a.hold = hold;
                (gw, amount, hold)
            }) else {
                return Ok(None);
            };
            if gw.budgets.is_empty() {
                self.with(|a| a.model = Some(id));
                return Ok(None);
            }
            let subject = Subject {
                key: &caller.key_id,
                team: &caller.team,
                model: Some(&gw.model_names[id]),
            };
            let refused = match gw.budgets.reserve(subject, amount).await {
                Ok((r, remaining)) => {
                    self.with(|a| {
                        a.model = Some(id);
                        a.reservation = Some(r);
                        if hold.trusted > 0 && hold.trusted < hold.prompt {
                            gw.bounds.opened(id);
                            a.verifying = Some(id);
                        }
                    });
                    return Ok(remaining);
                }
                Err(refused) => refused,
            };
            // Refused while reservations held at the byte bound before
            // verification are out: wait for their settlements (the money
            // they give back, then the verified count) instead of refusing
            // a burst for arriving before any.
            let waited = started.elapsed();
            if waited >= VERIFY_WAIT || !gw.bounds.verifying(id) {
                return Err(refused);
            }
            gw.bounds
                .next_settlement(id, (VERIFY_WAIT - waited).min(Duration::from_millis(200)))
                .await;
        }
    }

    /// The attempt on the reserved model failed: nothing was spent.
    pub fn release(&self) {
        self.with(Account::release);
    }

    /// The usage and cost the tab closed with (zero while open).
    pub fn outcome(&self) -> (Usage, Nanos) {
        self.with(|a| a.settled).flatten().unwrap_or_default()
    }

    /// Closes the tab for an answer replayed from the cache: it costs
    /// nothing; the row keeps the answer's tokens (so the baseline and the
    /// savings count them) and what it cost when it was made.
    pub fn close_cached(&self, e: &Entry) {
        self.with(|a| {
            if a.settled.is_some() {
                return;
            }
            let gw = a.gw.clone();
            let r = &mut a.row;
            r.cache = "hit".into();
            r.model = e.model.clone();
            r.prompt_tokens = e.prompt_tokens;
            r.completion_tokens = e.completion_tokens;
            r.cost = Nanos::ZERO;
            r.saved = Nanos(e.cost_nanos);
            r.baseline_cost = gw
                .policy
                .baseline
                .price
                .cost(e.prompt_tokens, e.completion_tokens);
            r.status = 200;
            r.ending = "complete".into();
            r.latency_ms = a.started.elapsed().as_millis() as u64;
            r.ttft_ms = Some(r.latency_ms);
            tracing::info!(key = %r.key_id, team = %r.team, route = %r.route, model = %r.model,
                saved_usd = %r.saved, "request finished (cache hit)");
            gw.requests.record(&Sample::of(r, None));
            let usage = Usage::new(e.prompt_tokens, e.completion_tokens);
            a.settled = Some((usage, Nanos::ZERO));
            if let Some(l) = &gw.ledger {
                l.record(std::mem::take(&mut a.row));
            }
        });
    }

    /// Adds the time one upstream attempt took (until its reply, or its
    /// first event for a stream).
    pub fn upstream_time(&self, d: Duration) {
        self.with(|a| a.upstream += d);
    }

    /// The first byte of the reply arrived (time to first token).
    pub fn first_byte(&self) {
        self.with(|a| {
            a.first_byte.get_or_insert(a.started.elapsed());
        });
    }

    /// Closes the tab: settles the budget, writes the ledger row, logs.
    /// Returns the cost and the tightest remaining budget after it.
    pub fn close(&self, c: Close) -> (Nanos, Option<Nanos>) {
        self.with(|a| a.close(c)).unwrap_or((Nanos::ZERO, None))
    }

    /// For a stream under a budget: what it may cost at most (its
    /// reservation), its price and the prompt tokens counted.
    pub fn stream_limit(&self) -> Option<(Nanos, Price, u64)> {
        self.with(|a| {
            let r = a.reservation.as_ref().filter(|r| !r.is_empty())?;
            let price = charge_price(&a.gw, a.model?);
            Some((r.amount(), price, a.hold.estimate()))
        })
        .flatten()
    }

    /// A finish callback for a stream: closes the tab when it ends.
    pub fn on_finish(&self) -> crate::upstream::OnFinish {
        let tab = self.clone();
        Box::new(move |f: Finish| {
            let ending = match f.ending {
                Ending::Complete => "complete",
                Ending::UpstreamBroke => "upstream_broke",
                Ending::ClientGone => "client_gone",
            };
            let status = if ending == "client_gone" { 499 } else { 200 };
            tab.close(Close {
                usage: f.usage,
                produced: f.produced,
                status,
                ending,
                ..Close::default()
            });
        })
    }
}

/// Counts an answer of `model` charged without a price of its own, and
/// warns once a day per model.
fn unpriced(gw: &Gateway, model: Option<ModelId>) {
    let Some(id) = model else { return };
    let day = gw.clock.now().div_euclid(86_400_000);
    if gw.bounds.unpriced(id, day) {
        tracing::warn!(model = %gw.model_names[id], baseline = %gw.policy.baseline.name,
            "a model with no known price answered: charged at the baseline's price and marked \
             `unpriced` in the ledger; give it `price:` in the policy");
    }
}

impl Account {
    /// What to run once this reservation's money is back: end a
    /// reservation held before verification (`Bounds::opened`), so the
    /// requests waiting on it retry.
    fn then(&mut self) -> impl FnOnce() + Send + 'static {
        let open = self.verifying.take();
        let bounds = self.gw.bounds.clone();
        move || {
            if let Some(id) = open {
                bounds.ended(id);
            }
        }
    }

    fn release(&mut self) {
        let then = self.then();
        match self.reservation.take() {
            Some(r) => {
                let gw = &self.gw;
                gw.budgets
                    .settle_then(r, Nanos::ZERO, &gw.tasks, |_| {}, then);
            }
            None => then(),
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        if self.settled.is_none() {
            self.close(Close {
                status: 499,
                ending: "client_gone",
                ..Close::default()
            });
        }
    }
}
