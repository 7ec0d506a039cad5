//! Fitting the strong head on a deployment's own outcomes (`tollgate route
//! fit`), and the routing-quality figures every fit is judged by.
//!
//! The head is a ridge regression of what the strong model gains on a
//! prompt (`strong − weak`, in the outcomes' own scale) over the router's
//! features, plus one extra column: the shipped head's own output, left
//! unpenalised. With few rows a strong penalty keeps the fit close to the
//! shipped ranking, rescaled; with many it moves to what the rows show.
//! The penalty is chosen by k-fold cross-validation on routing quality
//! (APGR), and Platt scaling on the held-out predictions turns the output
//! into the probability that the weak model's answer is worse.
//!
//! Every figure that judges a fit is held out: the rows are split into k
//! folds by a hash of the normalised prompt (a repeated prompt stays in one
//! fold), and each fold is scored by a head fitted, penalty choice
//! included, on the other folds alone (nested cross-validation).

mod design;
mod quality;

use super::learned::Domain;
use design::Design;
pub use quality::{quality, recovered_at, Quality};

/// One outcome row: the router's features and the two models' scores.
pub struct Row {
    pub features: Vec<f32>,
    /// Which of the heads' domain heads scores it (`Router::judge`).
    pub domain: Option<Domain>,
    pub strong: f64,
    pub weak: f64,
    /// Rows with the same group (the same prompt) share a fold.
    pub group: u64,
}

/// A fitted strong head, in the router's raw feature space.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub w: Vec<f32>,
    pub b: f32,
    /// Platt scaling of the output: sigmoid(a·x + c).
    pub platt: [f32; 2],
    /// The penalty chosen, relative to the row count.
    pub penalty: f64,
    /// Held-out quality (nested k-fold) of this procedure on the rows.
    pub held_out: Quality,
    /// Held-out raw outputs, in row order, for comparing on the same rows.
    pub held_out_scores: Vec<f64>,
    /// Rows in each fold.
    pub fold_sizes: Vec<usize>,
}

/// Penalties tried, as a share of the training rows (the features are
/// standardised, so `λ·n` is on the scale of the Gram matrix).
const PENALTIES: [f64; 12] = [
    0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0,
];

/// Fits the strong head on `rows`, starting from `prior` (the shipped
/// head's weights and bias). `folds` ≥ 2. Errors when the rows cannot be
/// split or carry no gap.
pub fn fit(rows: &[Row], prior: (&[f32], f32), folds: usize) -> Result<Fitted, String> {
    let fold_of = assign_folds(rows, folds)?;
    let design = Design::new(rows, prior, &fold_of, folds);
    let outcomes: Vec<(f64, f64)> = rows.iter().map(|r| (r.strong, r.weak)).collect();
    if quality(&vec![0.0; rows.len()], &outcomes).is_none() {
        return Err(
            "the strong model gains nothing on these rows (its scores are not above the weak \
             model's overall): there is nothing to route for"
                .into(),
        );
    }
    // Held out: each fold scored by a head whose penalty was chosen on the
    // other folds alone.
    let mut held_out = vec![0.0; rows.len()];
    for outer in 0..folds {
        let train: Vec<usize> = (0..folds).filter(|f| *f != outer).collect();
        let penalty = design.choose(&train, &outcomes);
        let head = design.solve(&train, penalty);
        for (i, f) in fold_of.iter().enumerate() {
            if *f == outer {
                held_out[i] = design.predict(&head, i);
            }
        }
    }
    let held = quality(&held_out, &outcomes).ok_or("no gap to recover")?;
    let all: Vec<usize> = (0..folds).collect();
    let penalty = design.choose(&all, &outcomes);
    // Calibration on out-of-fold outputs at the chosen penalty.
    let mut oof = vec![0.0; rows.len()];
    for f in 0..folds {
        let train: Vec<usize> = all.iter().copied().filter(|g| *g != f).collect();
        let head = design.solve(&train, penalty);
        for (i, g) in fold_of.iter().enumerate() {
            if *g == f {
                oof[i] = design.predict(&head, i);
            }
        }
    }
    let labels: Vec<bool> = rows.iter().map(|r| r.strong > r.weak).collect();
    let platt = platt(&oof, &labels);
    let head = design.solve(&all, penalty);
    let (w, b) = design.raw_weights(&head);
    Ok(Fitted {
        w,
        b,
        platt,
        penalty,
        held_out: held,
        held_out_scores: held_out,
        fold_sizes: (0..folds)
            .map(|f| fold_of.iter().filter(|g| **g == f).count())
            .collect(),
    })
}

/// The fold of each row: a hash of its group, so the split is the same on
/// every run and a repeated prompt never sits on both sides.
pub fn assign_folds(rows: &[Row], folds: usize) -> Result<Vec<usize>, String> {
    if folds < 2 {
        return Err("--folds must be at least 2".into());
    }
    let fold_of: Vec<usize> = rows
        .iter()
        .map(|r| (mix(r.group) % folds as u64) as usize)
        .collect();
    let mut sizes = vec![0usize; folds];
    for f in &fold_of {
        sizes[*f] += 1;
    }
    if sizes.contains(&0) {
        return Err(format!(
            "{} rows ({} distinct prompts) are too few for {folds} folds",
            rows.len(),
            {
                let mut g: Vec<u64> = rows.iter().map(|r| r.group).collect();
                g.sort_unstable();
                g.dedup();
                g.len()
            }
        ));
    }
    Ok(fold_of)
}

/// splitmix64's finaliser: spreads nearby hashes over the folds.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Platt scaling: the sigmoid(a·x + c) that best predicts `labels` from
/// `x` (Newton's method on the log-loss, with Platt's smoothed targets).
pub fn platt(x: &[f64], labels: &[bool]) -> [f32; 2] {
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let (hi, lo) = ((pos + 1.0) / (pos + 2.0), 1.0 / (neg + 2.0));
    let t: Vec<f64> = labels.iter().map(|l| if *l { hi } else { lo }).collect();
    let (mut a, mut c) = (0.0f64, ((pos + 1.0) / (neg + 1.0)).ln());
    for _ in 0..100 {
        let (mut ga, mut gc, mut haa, mut hac, mut hcc) = (0.0, 0.0, 1e-9, 0.0, 1e-9);
        for (xi, ti) in x.iter().zip(&t) {
            let p = 1.0 / (1.0 + (-(a * xi + c)).exp());
            let (g, h) = (p - ti, p * (1.0 - p));
            ga += g * xi;
            gc += g;
            haa += h * xi * xi;
            hac += h * xi;
            hcc += h;
        }
        let det = haa * hcc - hac * hac;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hcc * ga - hac * gc) / det;
        let dc = (haa * gc - hac * ga) / det;
        a -= da;
        c -= dc;
        if da.abs() < 1e-10 && dc.abs() < 1e-10 {
            break;
        }
    }
    [a as f32, c as f32]
}

#[cfg(test)]
mod tests;
