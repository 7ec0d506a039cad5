//! The request path's other hot spots, each on its own: the cache key of
//! a chat body, the policy's route match, a budget reservation and its
//! settlement (memory), a rate-limit check (memory), and the crash
//! journal's append (each request writes two: its reservation, its row),
//! and counting a prompt's tokens (a short message, and the same by the
//! tokenizer crate alone; 1 MiB of one word, the worst case for a
//! byte-pair encoder that merges a word in quadratic time).
//!
//!   cargo bench --bench hot_paths

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures::FutureExt;
use tollgate::clock::Clock;
use tollgate::ledger::{Ledger, Row};
use tollgate::money::Nanos;
use tollgate::policy::{
    Budget, LedgerTarget, OnExhausted, Period, RateLimit, Scope, Subject, Target,
};
use tollgate::route::{route, Facts};
use tollgate::state::budgets::{BudgetGuard, MemoryBudgets};
use tollgate::state::limits::{LimitGuard, MemoryLimits};

const BODY: &str = r#"{"model":"auto","temperature":0,"max_tokens":64,
  "messages":[{"role":"system","content":"You are terse."},
              {"role":"user","content":"Say hello to the benchmark in one short sentence."}],
  "tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]}"#;

const POLICY: &str = r#"
version: 1
providers:
  openai: { kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: k }
models:
  gpt-4: { provider: openai }
  gpt-3.5-turbo: { provider: openai }
aliases: { auto: router }
routes:
  - name: code
    when: { task: [code] }
    to: gpt-4
  - name: strong
    when: { strong_score: ">= 0.32" }
    to: gpt-4
  - name: long
    when: { prompt_tokens: "> 4000" }
    to: gpt-4
  - name: default
    to: gpt-3.5-turbo
"#;

const WHO: Subject<'static> = Subject {
    key: "key-1",
    team: "web",
    model: Some("gpt-3.5-turbo"),
};

fn cache_key(c: &mut Criterion) {
    let body: serde_json::Value = serde_json::from_str(BODY).unwrap_or_default();
    let body = body.as_object().cloned().unwrap_or_default();
    c.bench_function("cache key (chat body with a tool)", |b| {
        b.iter(|| tollgate::state::cache::key("web", &["gpt-3.5-turbo"], black_box(&body)))
    });
}

fn policy_match(c: &mut Criterion) {
    let Ok(policy) =
        tollgate::policy::load_str("bench.yaml", POLICY, std::path::Path::new("."), &|_| None)
    else {
        return;
    };
    let facts = Facts {
        task: Some(tollgate::classify::Task::Chat),
        complexity: None,
        strong_score: Some(0.1),
        prompt_tokens: Some(30),
    };
    c.bench_function("route match (4 routes, falls to the last)", |b| {
        b.iter(|| route(&policy, black_box("auto"), &facts).map(|d| d.chain.len()))
    });
}

fn budgets(c: &mut Criterion) {
    let defs: Vec<Budget> = [
        ("team:web", Scope::Team(Target::One("web".into()))),
        ("key:*", Scope::Key(Target::Each)),
        ("global", Scope::Global),
    ]
    .into_iter()
    .map(|(name, scope)| Budget {
        name: name.into(),
        scope,
        limit: Nanos(u64::MAX / 4),
        period: Period::Month,
        on_exhausted: OnExhausted::Reject,
        alert_at: vec![500, 800],
    })
    .collect();
    let clock = Clock::default();
    let store = Arc::new(MemoryBudgets::new(defs.clone(), clock.clone()));
    let g = Arc::new(BudgetGuard::new(defs, clock, store));
    let tasks = tokio_util::task::TaskTracker::new();
    c.bench_function("budget reserve + settle (3 budgets, memory)", |b| {
        b.iter(|| {
            if let Some(Ok((r, _))) = g.reserve(WHO, Nanos(1_000)).now_or_never() {
                g.settle_now_or_later(r, Nanos(700), &tasks, |_| {});
            }
        })
    });
}

fn rate_limits(c: &mut Criterion) {
    let defs: Vec<RateLimit> = [
        ("key:*", Scope::Key(Target::Each)),
        ("team:*", Scope::Team(Target::Each)),
    ]
    .into_iter()
    .map(|(name, scope)| RateLimit {
        name: name.into(),
        scope,
        requests_per_minute: Some(u32::MAX / 2),
        tokens_per_minute: Some(u32::MAX / 2),
    })
    .collect();
    let l = LimitGuard::new(defs.clone(), Arc::new(MemoryLimits::new(defs)));
    let who = Subject { model: None, ..WHO };
    c.bench_function(
        "rate-limit admit (key + team, requests + tokens, memory)",
        |b| b.iter(|| l.admit(who, black_box(30)).now_or_never()),
    );
}

fn journal(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let target = LedgerTarget::Sqlite(dir.path().join("l.sqlite").display().to_string());
    let ledger = Ledger::start(target, Some(&dir.path().join("l.sqlite.journal")))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no ledger"));
    let mut row = Row::opened(1_764_288_000_000, "req_8f3a2c", "key-web", "web");
    row.model = "gpt-4".into();
    row.task = "chat".into();
    row.prompt_tokens = 512;
    row.completion_tokens = 256;
    c.bench_function("crash journal: append one reservation line", |b| {
        b.iter(|| ledger.provisional(black_box(row.clone())))
    });
    ledger.close();
}

fn counting(c: &mut Criterion) {
    use tollgate::classify::counting::Counter;
    let short = "Say hello to the benchmark in one short sentence.";
    c.bench_function("count cl100k tokens: one short sentence", |b| {
        b.iter(|| Counter::Cl100k.text(black_box(short)))
    });
    // The same count by the tokenizer crate alone: what the whole-token
    // lookup saves.
    c.bench_function(
        "count cl100k tokens: one short sentence, encoder only",
        |b| b.iter(|| bpe_openai::cl100k_base().count(black_box(short))),
    );
    let word = "abcdefghij".repeat(1 << 17);
    let mut g = c.benchmark_group("count cl100k tokens");
    g.sample_size(10);
    g.bench_function("1.25 MB without a space", |b| {
        b.iter(|| Counter::Cl100k.text(black_box(&word)))
    });
    g.finish();
}

criterion_group!(
    benches,
    counting,
    cache_key,
    policy_match,
    budgets,
    rate_limits,
    journal
);
criterion_main!(benches);
