//! Unit tests of `report`.

use super::cells::hit_rate;
use super::*;

fn g(cost: u64, baseline: u64) -> Group {
    Group {
        requests: 3,
        cost: Nanos(cost),
        baseline_cost: Nanos(baseline),
        cache_hits: 1,
        ..Group::default()
    }
}

#[test]
fn savings_are_signed_and_exact() {
    assert_eq!(savings(&g(250, 1000)), "0.00000075");
    assert_eq!(savings_pct(&g(250, 1000)), "75.0");
    assert_eq!(savings(&g(1500, 1000)), "-0.0000005");
    assert_eq!(savings_pct(&g(1500, 1000)), "-50.0");
    assert_eq!(savings_pct(&g(1, 3)), "66.7");
    assert_eq!(savings_pct(&g(0, 0)), "");
    assert_eq!(hit_rate(&g(0, 0)), "33.3");
}

#[test]
fn ranges() {
    let now = parse_day("2026-11-28").unwrap() + 5;
    let o = Options {
        since: Some(Duration::from_secs(86_400)),
        ..Options::default()
    };
    assert_eq!(o.range(now).unwrap(), (now - DAY_MS, i64::MAX));
    let o = Options {
        from: Some("2026-11-01".into()),
        to: Some("2026-11-02".into()),
        ..Options::default()
    };
    let (f, t) = o.range(now).unwrap();
    assert_eq!(
        (day_string(f), day_string(t)),
        ("2026-11-01".into(), "2026-11-03".into())
    );
    let bad = Options {
        from: Some("2026-11-05".into()),
        to: Some("2026-11-02".into()),
        ..Options::default()
    };
    assert!(bad.range(now).is_err());
    assert_eq!(
        Options::parse_by(["model,day", "key"]).unwrap(),
        vec![Dim::Model, Dim::Day, Dim::Key]
    );
    assert!(Options::parse_by(["colour"]).is_err());
}
