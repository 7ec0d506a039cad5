//! Unit tests of `ledger`.

use super::*;

pub fn row(i: u64, team: &str, model: &str, cost: u64) -> Row {
    Row {
        ts: 1_764_288_000_000 + i64::try_from(i).unwrap() * 1000,
        request_id: format!("req_{i}"),
        key_id: format!("key-{}", i % 2),
        team: team.into(),
        task: "chat".into(),
        complexity: "low".into(),
        route: "r".into(),
        requested_model: "auto".into(),
        model: model.into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cost: Nanos(cost),
        baseline_cost: Nanos(cost * 10),
        cache: if i % 3 == 0 { "hit" } else { "miss" }.into(),
        saved: Nanos::ZERO,
        status: 200,
        latency_ms: 12,
        ttft_ms: Some(3),
        ending: "complete".into(),
        strong_milli: Some(400),
        risk_milli: if model == "gpt-4" { 0 } else { 400 },
    }
}

#[test]
fn writer_batches_and_flushes_everything_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite").display().to_string();
    let target = LedgerTarget::Sqlite(path);
    let ledger = Ledger::start(target.clone()).unwrap().unwrap();
    for i in 0..1000 {
        ledger.record(row(i, "web", "gpt-4", 7));
    }
    ledger.close();
    let mut store = open(&target).unwrap().unwrap();
    let total = store
        .report(&Query {
            from: 0,
            to: i64::MAX,
            by: vec![],
        })
        .unwrap();
    assert_eq!(total[0].requests, 1000);
    assert_eq!(total[0].cost, Nanos(7000));
    assert_eq!((total[0].scored, total[0].risk_milli), (1000, 0));
}

#[test]
fn quality_retained_is_the_share_without_expected_loss() {
    let g = |scored, risk_milli| Group {
        scored,
        risk_milli,
        ..Group::default()
    };
    assert_eq!(g(0, 0).quality_retained_tenths(), None);
    assert_eq!(g(4, 0).quality_retained_tenths(), Some(1000));
    // Four requests, two sent to a weak model at strong_score 0.3: 85%.
    assert_eq!(g(4, 600).quality_retained_tenths(), Some(850));
    assert_eq!(g(3, 1000).quality_retained_tenths(), Some(667));
    assert_eq!(g(1, 5000).quality_retained_tenths(), Some(0));
}
