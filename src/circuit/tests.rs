//! Unit tests of `circuit`.

use super::*;

#[test]
fn opens_after_consecutive_failures_and_probes_back() {
    let b = Breaker::new(Config {
        failures: 3,
        cooldown: Duration::from_secs(10),
    });
    let t0 = Instant::now();
    let boom = RetryReason::Status {
        status: 502,
        retry_after: None,
    };
    let busy = RetryReason::Status {
        status: 429,
        retry_after: None,
    };
    assert_eq!(b.record(Err(&boom), t0), None);
    assert_eq!(b.record(Err(&busy), t0), None, "429 is not a failure");
    assert_eq!(b.record(Ok(()), t0), None, "success resets the count");
    b.record(Err(&boom), t0);
    b.record(Err(&RetryReason::Timeout), t0);
    assert!(matches!(b.record(Err(&boom), t0), Some(State::Open { .. })));
    assert_eq!(b.admit(t0 + Duration::from_secs(5)), Admit::No);
    // Cool-down over: exactly one probe.
    let t1 = t0 + Duration::from_secs(10);
    assert_eq!(b.admit(t1), Admit::Probe);
    assert_eq!(b.admit(t1), Admit::No);
    // The probe fails: open again for another cool-down.
    assert!(matches!(b.record(Err(&boom), t1), Some(State::Open { .. })));
    let t2 = t1 + Duration::from_secs(10);
    assert_eq!(b.admit(t2), Admit::Probe);
    assert_eq!(b.record(Ok(()), t2), Some(State::Closed { failures: 0 }));
    assert_eq!(b.admit(t2), Admit::Yes);
}
