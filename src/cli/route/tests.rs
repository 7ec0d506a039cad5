//! Unit tests of `route`.

use super::*;

fn rows(scores: &[f64]) -> Vec<Scored> {
    let mut r: Vec<Scored> = scores
        .iter()
        .map(|s| Scored {
            score: *s,
            strong: Nanos(1_000),
            weak: Nanos(0),
        })
        .collect();
    r.sort_by(|a, b| b.score.total_cmp(&a.score));
    r
}

#[test]
fn picks_the_quantile() {
    let s = rows(&[0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.05]);
    assert_eq!(threshold(&s, 0.3), 0.7);
    assert_eq!(threshold(&s, 1.0), 0.05);
    // Half would need one of the tied 0.5s: step above them.
    assert_eq!(threshold(&rows(&[0.5, 0.5, 0.5, 0.9]), 0.5), 0.9);
}

#[test]
fn the_curve_runs_from_the_top_prompt_to_all_and_recovers_by_score_mass() {
    let c = curve(&rows(&[0.9, 0.1, 0.0, 0.0]));
    let first = c.first().unwrap();
    assert_eq!((first.share, first.recovered), (0.25, 0.9));
    // One strong call out of four at 1,000 nanos: $0.00025 per 1k.
    assert!((first.cost_per_1k - 0.00025).abs() < 1e-12);
    let last = c.last().unwrap();
    assert_eq!((last.share, last.recovered), (1.0, 1.0));
    assert!(c.windows(2).all(|w| w[0].share < w[1].share));
}
