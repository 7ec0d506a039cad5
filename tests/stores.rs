//! The stores' contract: one test body per store, run against each
//! implementation of `Budgets`, `RateLimits` and `ResponseCache` (this
//! process's memory, and a throwaway redis-server).
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::RedisServer;
use tokio_util::task::TaskTracker;
use tollgate::clock::Clock;
use tollgate::money::Nanos;
use tollgate::policy::{
    Budget, CacheConfig, OnExhausted, Period, RateLimit, Scope, Subject, Target,
};
use tollgate::state::budgets::{BudgetGuard, Budgets, MemoryBudgets, RedisBudgets, Refusal};
use tollgate::state::cache::{Entry, MemoryCache, RedisCache, ResponseCache};
use tollgate::state::limits::{Kind, LimitGuard, Limited, MemoryLimits, RateLimits, RedisLimits};
use tollgate::state::Redis;

const WEB: Subject<'static> = Subject {
    key: "k1",
    team: "web",
    model: Some("gpt-4"),
};

fn budget(name: &str, scope: Scope, limit: u64, on: OnExhausted) -> Budget {
    Budget {
        name: name.into(),
        scope,
        limit: Nanos(limit),
        period: Period::Month,
        on_exhausted: on,
        alert_at: vec![500, 800],
    }
}

fn budget_defs() -> Vec<Budget> {
    vec![
        budget(
            "team:web",
            Scope::Team(Target::One("web".into())),
            100,
            OnExhausted::Reject,
        ),
        budget(
            "key:*",
            Scope::Key(Target::Each),
            60,
            OnExhausted::Downgrade,
        ),
        budget("global", Scope::Global, 1_000, OnExhausted::Reject),
    ]
}

async fn budgets_contract(store: impl Fn(Vec<Budget>) -> Arc<dyn Budgets>) {
    let clock = Clock::default();
    let defs = budget_defs();
    let g = BudgetGuard::new(defs.clone(), clock.clone(), store(defs));
    let (r, left) = g.reserve(WEB, Nanos(50)).await.unwrap();
    assert_eq!(left, Some(Nanos(10)), "the key budget is the tightest");
    // 20 more fits the team (50 + 20 <= 100) but not the key (60): none is
    // charged, and the refusal names the key budget.
    match g.reserve(WEB, Nanos(20)).await {
        Err(Refusal::Exhausted(e)) => {
            assert_eq!(
                (e.budget.as_str(), e.action),
                ("key:*", OnExhausted::Downgrade)
            );
            assert_eq!((e.available, e.needed), (Nanos(10), Nanos(20)));
        }
        other => panic!("{other:?}"),
    }
    let alerts = g.settle(r, Nanos(30)).await;
    // 30 of 60 crosses the key budget's 50% threshold, once.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (alerts[0].budget.as_str(), alerts[0].threshold_permille),
        ("key:*", 500)
    );
    // Another key has a budget of its own; the team's is shared.
    let other = Subject { key: "k2", ..WEB };
    let (r2, left) = g.reserve(other, Nanos(60)).await.unwrap();
    assert_eq!(left, Some(Nanos(0)));
    g.settle(r2, Nanos(0)).await;
    let status = g.status().await.unwrap();
    let row = |b: &str, s: &str| {
        status
            .iter()
            .find(|r| r.budget == b && r.subject == s)
            .cloned()
    };
    let team = row("team:web", "web").unwrap();
    assert_eq!(
        (team.spent_usd.as_str(), team.reserved_usd.as_str()),
        ("0.00000003", "0")
    );
    assert_eq!(row("key:*", "k1").unwrap().remaining_usd, "0.00000003");
    assert!(row("global", "").is_some());
    assert!(g
        .settle(tollgate_reservation_none(), Nanos(5))
        .await
        .is_empty());

    // Concurrent reservations never overspend: 10 of 50 fit a 100 n$
    // budget (a new one: Redis keeps a budget's buckets by its name).
    let defs = vec![budget(
        "concurrent",
        Scope::Global,
        100,
        OnExhausted::Reject,
    )];
    let g = Arc::new(BudgetGuard::new(defs.clone(), clock, store(defs)));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.reserve(WEB, Nanos(10)).await.is_ok() })
        })
        .collect();
    let mut held = 0;
    for t in tasks {
        held += usize::from(t.await.unwrap());
    }
    assert_eq!(held, 10);
}

/// A reservation that holds nothing (no budget applied).
fn tollgate_reservation_none() -> tollgate::state::budgets::Reservation {
    tollgate::state::budgets::Reservation::default()
}

async fn limits_contract(store: impl Fn(Vec<RateLimit>) -> Arc<dyn RateLimits>) {
    let defs = vec![RateLimit {
        name: "key:*".into(),
        scope: Scope::Key(Target::Each),
        requests_per_minute: Some(3),
        tokens_per_minute: Some(100),
    }];
    let l = Arc::new(LimitGuard::new(defs.clone(), store(defs)));
    let s = Subject { model: None, ..WEB };
    for left in [2, 1, 0] {
        let v = l.admit(s, 10).await.unwrap();
        assert_eq!(v.requests.unwrap().remaining, left);
    }
    match l.admit(s, 10).await {
        Err(tollgate::state::limits::Denial::Limited(Limited {
            kind: Kind::Requests,
            retry_after: Some(d),
            ..
        })) => assert!(
            d > Duration::from_secs(15) && d <= Duration::from_secs(20),
            "{d:?}"
        ),
        other => panic!("{other:?}"),
    }
    // A request over the token limit on its own can never pass.
    let k2 = Subject { key: "k2", ..s };
    match l.admit(k2, 101).await {
        Err(tollgate::state::limits::Denial::Limited(Limited {
            kind: Kind::Tokens,
            retry_after: None,
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    // The correction after the fact takes what the completion used.
    let k3 = Subject { key: "k3", ..s };
    let v = l.admit(k3, 10).await.unwrap();
    assert_eq!(v.tokens.unwrap().remaining, 90);
    let tasks = TaskTracker::new();
    l.correct(k3, None, 80, &tasks);
    tasks.close();
    tasks.wait().await;
    match l.admit(k3, 20).await {
        Err(tollgate::state::limits::Denial::Limited(Limited {
            kind: Kind::Tokens, ..
        })) => {}
        other => panic!("the corrected tokens were not taken: {other:?}"),
    }
    // Model limits apply only to model subjects, and the other way round.
    assert!(l
        .admit(Subject { key: "k4", ..WEB }, 10)
        .await
        .unwrap()
        .requests
        .is_none());
}

async fn cache_contract(c: Arc<dyn ResponseCache>) {
    let e = Entry {
        stream: true,
        model: "gpt-4".into(),
        prompt_tokens: 3,
        completion_tokens: 4,
        cost_nanos: 1234,
        body: "data: {}\n\ndata: [DONE]\n\n".into(),
    };
    assert!(c.get(&[1; 32]).await.unwrap().is_none());
    c.put([1; 32], e.clone()).await.unwrap();
    assert_eq!(*c.get(&[1; 32]).await.unwrap().unwrap(), e);
    assert!(c.get(&[2; 32]).await.unwrap().is_none());
}

fn cache_config() -> CacheConfig {
    CacheConfig {
        ttl: Duration::from_secs(60),
        max_entries: 100,
    }
}

#[tokio::test]
async fn memory_stores_keep_the_contract() {
    budgets_contract(|d| Arc::new(MemoryBudgets::new(d, Clock::default()))).await;
    limits_contract(|d| Arc::new(MemoryLimits::new(d))).await;
    cache_contract(Arc::new(MemoryCache::new(cache_config()))).await;
}

#[tokio::test]
async fn redis_stores_keep_the_contract() {
    // One server per store: each contract starts from an empty Redis.
    let servers: Vec<RedisServer> = (0..3).map(|_| RedisServer::start()).collect();
    let connect = |i: usize| Arc::new(Redis::connect(&servers[i].url()).unwrap());
    let r = connect(0);
    budgets_contract(|d| Arc::new(RedisBudgets::new(d, Clock::default(), r.clone()))).await;
    let r = connect(1);
    limits_contract(|d| Arc::new(RedisLimits::new(d, r.clone()))).await;
    cache_contract(Arc::new(RedisCache::new(cache_config(), connect(2)))).await;
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_not_a_crash() {
    let mut server = RedisServer::start();
    let r = Arc::new(Redis::connect(&server.url()).unwrap());
    server.stop();
    let defs = budget_defs();
    let g = BudgetGuard::new(
        defs.clone(),
        Clock::default(),
        Arc::new(RedisBudgets::new(defs, Clock::default(), r.clone())),
    );
    assert!(matches!(
        g.reserve(WEB, Nanos(1)).await,
        Err(Refusal::Unavailable)
    ));
    assert!(g.status().await.is_err());
    let c = RedisCache::new(cache_config(), r);
    assert!(c.get(&[0; 32]).await.is_err());
}
