//! Wall-clock time for accounting, and calendar periods in UTC.
//!
//! Budgets and the ledger read time through `Clock` so tests can move it
//! (period rollover) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::policy::Period;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

const DAY_MS: i64 = 86_400_000;

#[derive(Clone, Default)]
pub enum Clock {
    #[default]
    System,
    /// A clock that only moves when told to (tests).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    pub fn manual(start: Millis) -> Clock {
        Clock::Manual(Arc::new(AtomicI64::new(start)))
    }

    pub fn now(&self) -> Millis {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            Clock::Manual(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock to `t`; no effect on the system clock.
    pub fn set(&self, t: Millis) {
        if let Clock::Manual(c) = self {
            c.store(t, Ordering::SeqCst);
        }
    }
}

/// Days since 1970-01-01 → (year, month 1–12, day 1–31), proleptic
/// Gregorian (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01 (`days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` of a time, UTC.
pub fn day_string(t: Millis) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses `YYYY-MM-DD` into the time of its midnight, UTC.
pub fn parse_day(s: &str) -> Option<Millis> {
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Rejects e.g. 2026-02-30.
    (civil_from_days(days) == (y, m, d)).then_some(days * DAY_MS)
}

/// The period containing `t`: [start, end) in ms. `Total` never ends.
pub fn period_bounds(p: Period, t: Millis) -> (Millis, Millis) {
    let day = t.div_euclid(DAY_MS);
    match p {
        Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
        Period::Week => {
            // 1970-01-01 was a Thursday; ISO weeks start on Monday.
            let monday = day - (day + 3).rem_euclid(7);
            (monday * DAY_MS, (monday + 7) * DAY_MS)
        }
        Period::Month => {
            let (y, m, _) = civil_from_days(day);
            let start = days_from_civil(y, m, 1);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (start * DAY_MS, days_from_civil(ny, nm, 1) * DAY_MS)
        }
        Period::Total => (0, i64::MAX),
    }
}

/// RFC 3339 of a time, UTC, to the second.
pub fn rfc3339(t: Millis) -> String {
    if t == i64::MAX {
        return "never".to_string();
    }
    let secs = t.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests;
