//! Unit tests of `clock`.

use super::*;

#[test]
fn civil_round_trips() {
    for z in [-1000, 0, 1, 59, 365, 19_000, 20_000, 20_500, 100_000] {
        let (y, m, d) = civil_from_days(z);
        assert_eq!(days_from_civil(y, m, d), z);
    }
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(
        parse_day("2026-11-28"),
        Some(days_from_civil(2026, 11, 28) * DAY_MS)
    );
    assert_eq!(day_string(parse_day("2024-02-29").unwrap()), "2024-02-29");
    assert_eq!(parse_day("2026-02-30"), None);
    assert_eq!(parse_day("yesterday"), None);
}

#[test]
fn periods_are_calendar_utc() {
    let t = parse_day("2026-11-28").unwrap() + 13 * 3_600_000; // Saturday 13:00
    let (s, e) = period_bounds(Period::Day, t);
    assert_eq!(
        (day_string(s), day_string(e)),
        ("2026-11-28".into(), "2026-11-29".into())
    );
    let (s, e) = period_bounds(Period::Week, t);
    assert_eq!(
        (day_string(s), day_string(e)),
        ("2026-11-23".into(), "2026-11-30".into())
    );
    let (s, e) = period_bounds(Period::Month, t);
    assert_eq!(
        (day_string(s), day_string(e)),
        ("2026-11-01".into(), "2026-12-01".into())
    );
    let dec = parse_day("2026-12-31").unwrap();
    assert_eq!(
        day_string(period_bounds(Period::Month, dec).1),
        "2027-01-01"
    );
    assert_eq!(rfc3339(t), "2026-11-28T13:00:00Z");
}
