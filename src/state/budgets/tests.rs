//! The guard over the memory store: all-or-none reservations, periods
//! that roll over, and random interleavings that never overspend.

use super::*;
use crate::policy::{Period, Scope, Target};
use futures::FutureExt;

fn guard(defs: Vec<Budget>, clock: Clock) -> BudgetGuard {
    let store = Arc::new(MemoryBudgets::new(defs.clone(), clock.clone()));
    BudgetGuard::new(defs, clock, store)
}

impl BudgetGuard {
    fn reserve_now(&self, s: Subject<'_>, amount: Nanos) -> Result<Reservation, Exhausted> {
        match self.reserve(s, amount).now_or_never() {
            Some(Ok((r, _))) => Ok(r),
            Some(Err(Refusal::Exhausted(e))) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    fn settle_now(&self, r: Reservation, actual: Nanos) -> Vec<Alert> {
        self.settle(r, actual).now_or_never().unwrap()
    }

    fn status_now(&self) -> Vec<Status> {
        self.status().now_or_never().unwrap().unwrap()
    }
}

fn budget(scope: Scope, limit: u64, period: Period, on: OnExhausted) -> Budget {
    Budget {
        name: format!("{scope:?}"),
        scope,
        limit: Nanos(limit),
        period,
        on_exhausted: on,
        alert_at: vec![500, 800],
    }
}

const WEB: Subject<'static> = Subject {
    key: "k1",
    team: "web",
    model: Some("gpt-4"),
};

#[test]
fn reserve_is_all_or_nothing_and_settle_returns_the_rest() {
    let b = guard(
        vec![
            budget(
                Scope::Team(Target::One("web".into())),
                100,
                Period::Month,
                OnExhausted::Reject,
            ),
            budget(
                Scope::Key(Target::Each),
                60,
                Period::Day,
                OnExhausted::Downgrade,
            ),
        ],
        Clock::manual(1_764_288_000_000),
    );
    let r = b.reserve_now(WEB, Nanos(50)).unwrap();
    assert_eq!(
        b.remaining_now(WEB),
        Some(Nanos(10)),
        "key budget is tighter"
    );
    // 20 more would fit the team (50 + 20 <= 100) but not the key (60).
    let e = b.reserve_now(WEB, Nanos(20)).unwrap_err();
    assert_eq!((e.action, e.available), (OnExhausted::Downgrade, Nanos(10)));
    // Nothing was charged by the failed attempt.
    assert_eq!(b.remaining_now(WEB), Some(Nanos(10)));
    let alerts = b.settle_now(r, Nanos(30));
    assert_eq!(b.remaining_now(WEB), Some(Nanos(30)));
    // 30 of 60 crosses the key budget's 50% threshold, once.
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].threshold_permille, 500);
    let other = Subject { key: "k2", ..WEB };
    assert_eq!(
        b.remaining_now(other),
        Some(Nanos(60)),
        "each key has its own"
    );
}

#[test]
fn periods_roll_over_with_the_clock() {
    let clock = Clock::manual(crate::clock::parse_day("2026-11-28").unwrap());
    let b = guard(
        vec![budget(Scope::Global, 100, Period::Day, OnExhausted::Reject)],
        clock.clone(),
    );
    let r = b.reserve_now(WEB, Nanos(90)).unwrap();
    b.settle_now(r, Nanos(90));
    assert!(b.reserve_now(WEB, Nanos(20)).is_err());
    clock.set(crate::clock::parse_day("2026-11-29").unwrap());
    assert_eq!(b.remaining_now(WEB), Some(Nanos(100)));
    assert!(b.reserve_now(WEB, Nanos(20)).is_ok());
    assert_eq!(b.status_now()[0].period_start, "2026-11-29T00:00:00Z");
}

#[test]
fn random_interleavings_never_go_negative_or_overspend() {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let limit = rng.random_range(1..10_000u64);
        let b = guard(
            vec![budget(
                Scope::Global,
                limit,
                Period::Total,
                OnExhausted::Reject,
            )],
            Clock::manual(0),
        );
        let mut open = Vec::new();
        let mut settled = 0u64;
        for _ in 0..100 {
            if rng.random_bool(0.6) {
                let amount = rng.random_range(0..2_000u64);
                if let Ok(r) = b.reserve_now(WEB, Nanos(amount)) {
                    open.push(r);
                }
            } else if let Some(r) = open.pop() {
                let actual = rng.random_range(0..=r.amount);
                settled += actual;
                b.settle_now(r, Nanos(actual));
            }
            let st = &b.status_now()[0];
            let reserved: u64 = open.iter().map(|r| r.amount).sum();
            assert_eq!(st.reserved_usd, Nanos(reserved).to_string());
            assert!(settled + reserved <= limit);
            assert_eq!(st.spent_usd, Nanos(settled).to_string());
        }
    }
}

#[test]
fn the_budgets_that_apply_come_in_the_policy_order_whatever_its_size() {
    let one = |s: &str| Target::One(s.into());
    let mut defs = vec![
        budget(
            Scope::Model(one("gpt-4")),
            9,
            Period::Day,
            OnExhausted::Reject,
        ),
        budget(Scope::Team(one("web")), 9, Period::Day, OnExhausted::Reject),
        budget(Scope::Global, 9, Period::Day, OnExhausted::Reject),
    ];
    // Thousands of budgets for other keys and teams around them.
    for i in 0..5_000 {
        defs.push(budget(
            Scope::Key(one(&format!("k{i}0"))),
            9,
            Period::Day,
            OnExhausted::Reject,
        ));
        defs.push(budget(
            Scope::Team(one(&format!("t{i}"))),
            9,
            Period::Day,
            OnExhausted::Reject,
        ));
    }
    defs.push(budget(
        Scope::Key(one("k1")),
        9,
        Period::Day,
        OnExhausted::Reject,
    ));
    defs.push(budget(
        Scope::Key(Target::Each),
        9,
        Period::Day,
        OnExhausted::Reject,
    ));
    defs.push(budget(
        Scope::Model(one("gpt-3.5")),
        9,
        Period::Day,
        OnExhausted::Reject,
    ));
    let n = defs.len();
    let b = guard(defs, Clock::manual(0));
    let got: Vec<(usize, String)> = b
        .keys_for(WEB)
        .into_iter()
        .map(|k| (k.budget, k.subject))
        .collect();
    let want: Vec<(usize, String)> = vec![
        (0, "gpt-4".into()),
        (1, "web".into()),
        (2, String::new()),
        (n - 3, "k1".into()),
        (n - 2, "k1".into()),
    ];
    assert_eq!(got, want);
}
