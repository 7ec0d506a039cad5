//! Unit tests of `money`.

use super::*;

#[test]
fn parses_decimals_exactly() {
    assert_eq!(Nanos::parse_usd("30"), Ok(Nanos(30_000_000_000)));
    assert_eq!(Nanos::parse_usd("30.0"), Ok(Nanos(30_000_000_000)));
    assert_eq!(Nanos::parse_usd("0.15"), Ok(Nanos(150_000_000)));
    assert_eq!(Nanos::parse_usd("1.5e-3"), Ok(Nanos(1_500_000)));
    assert_eq!(Nanos::parse_usd("1e-9"), Ok(Nanos(1)));
    assert!(Nanos::parse_usd("1e-10").is_err());
    assert!(Nanos::parse_usd("-1").is_err());
    assert!(Nanos::parse_usd("abc").is_err());
    assert!(Nanos::parse_usd("1e30").is_err());
}

#[test]
fn cost_rounds_up_per_request() {
    let gpt4 = Price {
        input_per_mtok: Nanos::parse_usd("30").unwrap(),
        output_per_mtok: Nanos::parse_usd("60").unwrap(),
        ..Price::default()
    };
    // 1000 prompt tokens at $30/M = $0.03; 500 completion at $60/M = $0.03.
    assert_eq!(gpt4.cost(1000, 500), Nanos(60_000_000));
    let cheap = Price {
        input_per_mtok: Nanos(1),
        output_per_mtok: Nanos(0),
        ..Price::default()
    };
    assert_eq!(cheap.cost(1, 0), Nanos(1));
}

#[test]
fn cost_properties_hold_for_random_prices_and_usages() {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let p = Price {
            input_per_mtok: Nanos(rng.random_range(0..200 * NANOS_PER_USD)),
            output_per_mtok: Nanos(rng.random_range(0..200 * NANOS_PER_USD)),
            ..Price::default()
        };
        let (a, b) = (
            rng.random_range(0..200_000u64),
            rng.random_range(0..200_000u64),
        );
        let (c, d) = (
            rng.random_range(0..200_000u64),
            rng.random_range(0..200_000u64),
        );
        let whole = p.cost(a + b, c + d).0;
        let parts = p.cost(a, c).0 + p.cost(b, d).0;
        // Rounding up per request: splitting never costs less, and at
        // most one nano-dollar more per extra request.
        assert!(
            parts >= whole && parts <= whole + 1,
            "{p:?} {a} {b} {c} {d}"
        );
        // More tokens never cost less.
        assert!(p.cost(a + 1, c).0 >= p.cost(a, c).0);
        assert!(p.cost(a, c + 1).0 >= p.cost(a, c).0);
        // The exact value, from the decimal definition.
        let exact = u128::from(a) * u128::from(p.input_per_mtok.0)
            + u128::from(c) * u128::from(p.output_per_mtok.0);
        assert_eq!(u128::from(p.cost(a, c).0), exact.div_ceil(1_000_000));
        // Display and parse round-trip.
        let n = Nanos(rng.random_range(0..u64::MAX / 4));
        assert_eq!(Nanos::parse_usd(&n.to_string()), Ok(n));
    }
}

#[test]
fn displays_trimmed_usd() {
    assert_eq!(Nanos(60_000_000).to_string(), "0.06");
    assert_eq!(Nanos(3 * NANOS_PER_USD).to_string(), "3");
    assert_eq!(Nanos(1).to_string(), "0.000000001");
}
