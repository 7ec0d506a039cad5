//! Unit tests of `fit`: the quality measures on hand-worked cases, and
//! fits that must find a planted signal and must not invent one.

use super::*;

fn q(scores: &[f64], gains: &[f64]) -> Quality {
    let rows: Vec<(f64, f64)> = gains.iter().map(|g| (*g, 0.0)).collect();
    quality(scores, &rows).unwrap()
}

#[test]
fn apgr_and_cpt_on_hand_worked_cases() {
    // The one row with a gain ranked first: PGR reaches 1 at a quarter.
    let best = q(&[4.0, 3.0, 2.0, 1.0], &[1.0, 0.0, 0.0, 0.0]);
    assert!((best.apgr - 0.875).abs() < 1e-12, "{best:?}");
    assert!((best.cpt50 - 0.125).abs() < 1e-12);
    // Ranked last: nothing recovered until the end.
    let worst = q(&[1.0, 3.0, 2.0, 4.0], &[1.0, 0.0, 0.0, 0.0]);
    assert!((worst.apgr - 0.125).abs() < 1e-12, "{worst:?}");
    assert!((worst.cpt50 - 0.875).abs() < 1e-12);
    // One score for every row is a random order: the diagonal.
    let flat = q(&[0.0; 4], &[1.0, 0.0, 0.0, 0.0]);
    assert!((flat.apgr - 0.5).abs() < 1e-12 && (flat.cpt50 - 0.5).abs() < 1e-12);
}

#[test]
fn no_gap_is_no_quality() {
    assert!(quality(&[1.0, 2.0], &[(1.0, 1.0), (0.0, 0.0)]).is_none());
    assert!(quality(&[1.0, 2.0], &[(0.0, 1.0), (0.0, 0.0)]).is_none());
    assert!(quality(&[], &[]).is_none());
}

/// A deterministic stream of numbers in [0, 1).
fn uniform(seed: &mut u64) -> f64 {
    *seed = mix(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// Rows whose gain follows feature 0 (the weak model fails when it is
/// high), with some noise, over `p` features.
fn planted(n: usize, p: usize, seed: u64) -> Vec<Row> {
    let mut s = seed;
    (0..n)
        .map(|i| {
            let features: Vec<f32> = (0..p).map(|_| uniform(&mut s) as f32).collect();
            let hard = f64::from(features[0]) + 0.3 * (uniform(&mut s) - 0.5) > 0.6;
            Row {
                features,
                domain: None,
                strong: 1.0,
                weak: if hard { 0.0 } else { 1.0 },
                group: i as u64,
            }
        })
        .collect()
}

fn by_feature_0(rows: &[Row]) -> Vec<f64> {
    rows.iter().map(|r| f64::from(r.features[0])).collect()
}

fn pairs(rows: &[Row]) -> Vec<(f64, f64)> {
    rows.iter().map(|r| (r.strong, r.weak)).collect()
}

#[test]
fn a_planted_signal_is_found_and_scored_held_out() {
    let rows = planted(600, 12, 7);
    let zero = vec![0.0f32; 12];
    let f = fit(&rows, (&zero, 0.0), 5).unwrap();
    // Close to ranking by the planted feature itself (the best any score
    // can do short of knowing the noise), far from a coin.
    let oracle = quality(&by_feature_0(&rows), &pairs(&rows)).unwrap();
    assert!(
        f.held_out.apgr > oracle.apgr - 0.03,
        "{:?} {oracle:?}",
        f.held_out
    );
    assert!(f.held_out.apgr > 0.7, "{:?}", f.held_out);
    // The fitted weights put feature 0 first, and the calibrated score
    // rises with it.
    let top = (0..12).max_by(|a, b| f.w[*a].abs().total_cmp(&f.w[*b].abs()));
    assert_eq!(top, Some(0));
    let score = |x0: f32| {
        let mut v = [0.5f32; 12];
        v[0] = x0;
        let raw = v.iter().zip(&f.w).map(|(a, b)| a * b).sum::<f32>() + f.b;
        1.0 / (1.0 + (-(f.platt[0] * raw + f.platt[1])).exp())
    };
    assert!(
        score(0.95) > 0.7 && score(0.05) < 0.3,
        "{} {}",
        score(0.95),
        score(0.05)
    );
}

#[test]
fn noise_is_not_sold_as_signal() {
    // Gains drawn independently of every feature: held out, the fit is a
    // coin, whatever it saw in training.
    let mut s = 11;
    let mut rows = planted(400, 12, 3);
    for r in &mut rows {
        r.weak = if uniform(&mut s) < 0.3 { 0.0 } else { 1.0 };
    }
    let zero = vec![0.0f32; 12];
    let f = fit(&rows, (&zero, 0.0), 5).unwrap();
    assert!((f.held_out.apgr - 0.5).abs() < 0.1, "{:?}", f.held_out);
}

#[test]
fn a_good_prior_carries_a_small_sample() {
    // 60 rows are too few to learn 12 weights; a prior that already ranks
    // by feature 0 keeps the fit there.
    let rows = planted(60, 12, 5);
    let mut prior = vec![0.0f32; 12];
    prior[0] = 1.0;
    let zero = vec![0.0f32; 12];
    let with = fit(&rows, (&prior, 0.0), 5).unwrap();
    let without = fit(&rows, (&zero, 0.0), 5).unwrap();
    let oracle = quality(&by_feature_0(&rows), &pairs(&rows)).unwrap();
    assert!(
        with.held_out.apgr > oracle.apgr - 0.03,
        "{:?} {oracle:?}",
        with.held_out
    );
    assert!(with.held_out.apgr >= without.held_out.apgr);
}

#[test]
fn equal_outcomes_and_too_few_rows_are_errors() {
    let mut rows = planted(50, 4, 1);
    for r in &mut rows {
        r.weak = r.strong;
    }
    let zero = vec![0.0f32; 4];
    let e = fit(&rows, (&zero, 0.0), 5).unwrap_err();
    assert!(e.contains("gains nothing"), "{e}");
    let e = fit(&planted(3, 4, 1), (&zero, 0.0), 5).unwrap_err();
    assert!(e.contains("too few for 5 folds"), "{e}");
}

#[test]
fn a_repeated_prompt_stays_in_one_fold() {
    let mut rows = planted(200, 4, 9);
    for (i, r) in rows.iter_mut().enumerate() {
        r.group = (i / 4) as u64;
    }
    let folds = assign_folds(&rows, 5).unwrap();
    for chunk in folds.chunks(4) {
        assert!(chunk.iter().all(|f| *f == chunk[0]));
    }
}

#[test]
fn platt_scaling_orders_and_calibrates() {
    // Outputs above 0 are positive 80% of the time, below 0 20%.
    let x: Vec<f64> = (0..1000)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let labels: Vec<bool> = (0..1000)
        .map(|i| if i % 2 == 0 { i % 10 != 0 } else { i % 10 == 1 })
        .collect();
    let [a, c] = platt(&x, &labels);
    let p = |x: f32| 1.0 / (1.0 + (-(a * x + c)).exp());
    assert!(a > 0.0);
    assert!(
        (p(1.0) - 0.8).abs() < 0.02 && (p(-1.0) - 0.2).abs() < 0.02,
        "{} {}",
        p(1.0),
        p(-1.0)
    );
}

#[test]
fn the_gap_recovered_at_a_share_follows_the_curve() {
    let rows: Vec<(f64, f64)> = [1.0, 0.0, 0.0, 0.0].iter().map(|g| (*g, 0.0)).collect();
    let best = [4.0, 3.0, 2.0, 1.0];
    assert_eq!(recovered_at(&best, &rows, 0.25), Some(1.0));
    assert_eq!(recovered_at(&best, &rows, 0.125), Some(0.5));
    assert_eq!(recovered_at(&[0.0; 4], &rows, 0.5), Some(0.5));
    assert_eq!(recovered_at(&[1.0, 3.0, 2.0, 4.0], &rows, 0.75), Some(0.0));
    assert_eq!(recovered_at(&best, &[(1.0, 1.0)], 0.5), None);
}
