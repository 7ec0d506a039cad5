//! The design matrix of a fit: per-fold sums over standardised features,
//! so a ridge regression on any union of folds costs one solve, never
//! another pass over the rows.

use super::{quality, Row, PENALTIES};

/// Per-fold sums over standardised features (the router's features plus the
/// prior's output as the last, unpenalised column), so any union of folds
/// is fitted without another pass over the rows.
pub(super) struct Design {
    d: usize,
    /// Standardised rows (row-major, n × d).
    x: Vec<f64>,
    scale: Vec<f64>,
    mean: Vec<f64>,
    folds: Vec<Sums>,
    fold_of: Vec<usize>,
    prior_w: Vec<f64>,
    prior_b: f64,
}

struct Sums {
    n: f64,
    gram: Vec<f64>,
    sx: Vec<f64>,
    xy: Vec<f64>,
    sy: f64,
}

/// A solved head in the standardised space: weights and intercept.
pub(super) struct Head {
    w: Vec<f64>,
    b: f64,
}

impl Design {
    pub(super) fn new(
        rows: &[Row],
        prior: (&[f32], f32),
        fold_of: &[usize],
        folds: usize,
    ) -> Design {
        let p = rows.first().map_or(0, |r| r.features.len());
        let d = p + 1;
        let prior_w: Vec<f64> = prior.0.iter().map(|v| f64::from(*v)).collect();
        let prior_b = f64::from(prior.1);
        let raw = |r: &Row, j: usize| -> f64 {
            if j < p {
                f64::from(r.features[j])
            } else {
                prior_w
                    .iter()
                    .zip(&r.features)
                    .map(|(a, b)| a * f64::from(*b))
                    .sum::<f64>()
                    + prior_b
            }
        };
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; d];
        let mut sq = vec![0.0; d];
        for r in rows {
            for j in 0..d {
                let v = raw(r, j);
                mean[j] += v;
                sq[j] += v * v;
            }
        }
        for m in &mut mean {
            *m /= n;
        }
        // A column that never varies gets scale 1: its weight stays 0.
        let scale: Vec<f64> = (0..d)
            .map(|j| {
                let var = sq[j] / n - mean[j] * mean[j];
                if var > 1e-12 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut x = Vec::with_capacity(rows.len() * d);
        for r in rows {
            for j in 0..d {
                x.push((raw(r, j) - mean[j]) / scale[j]);
            }
        }
        let mut sums: Vec<Sums> = (0..folds)
            .map(|_| Sums {
                n: 0.0,
                gram: vec![0.0; d * d],
                sx: vec![0.0; d],
                xy: vec![0.0; d],
                sy: 0.0,
            })
            .collect();
        for (i, r) in rows.iter().enumerate() {
            let s = &mut sums[fold_of[i]];
            let xi = &x[i * d..(i + 1) * d];
            let y = r.strong - r.weak;
            s.n += 1.0;
            s.sy += y;
            for a in 0..d {
                s.sx[a] += xi[a];
                s.xy[a] += xi[a] * y;
                let row = &mut s.gram[a * d..a * d + a + 1];
                for (g, xb) in row.iter_mut().zip(&xi[..=a]) {
                    *g += xi[a] * xb;
                }
            }
        }
        Design {
            d,
            x,
            scale,
            mean,
            folds: sums,
            fold_of: fold_of.to_vec(),
            prior_w,
            prior_b,
        }
    }

    /// Ridge on the union of `train` folds, penalty `lambda · n` on every
    /// column but the prior's.
    pub(super) fn solve(&self, train: &[usize], lambda: f64) -> Head {
        let d = self.d;
        let (mut n, mut sy) = (0.0, 0.0);
        let mut gram = vec![0.0; d * d];
        let (mut sx, mut xy) = (vec![0.0; d], vec![0.0; d]);
        for f in train {
            let s = &self.folds[*f];
            n += s.n;
            sy += s.sy;
            for a in 0..d {
                sx[a] += s.sx[a];
                xy[a] += s.xy[a];
                for b in 0..=a {
                    gram[a * d + b] += s.gram[a * d + b];
                }
            }
        }
        let n = n.max(1.0);
        // Centre on the training rows: the intercept is left unpenalised.
        for a in 0..d {
            for b in 0..=a {
                gram[a * d + b] -= sx[a] * sx[b] / n;
            }
            xy[a] -= sx[a] * sy / n;
        }
        for a in 0..d {
            let penalty = if a + 1 == d { 1e-6 * n } else { lambda * n };
            gram[a * d + a] += penalty;
        }
        let w = cholesky_solve(&mut gram, &xy, d);
        let b = (sy - w.iter().zip(&sx).map(|(w, s)| w * s).sum::<f64>()) / n;
        Head { w, b }
    }

    pub(super) fn predict(&self, h: &Head, i: usize) -> f64 {
        let xi = &self.x[i * self.d..(i + 1) * self.d];
        h.w.iter().zip(xi).map(|(w, x)| w * x).sum::<f64>() + h.b
    }

    /// The penalty whose k-fold held-out APGR over `train` is best (ties:
    /// the larger penalty, closer to the prior).
    pub(super) fn choose(&self, train: &[usize], outcomes: &[(f64, f64)]) -> f64 {
        let members: Vec<usize> = (0..outcomes.len())
            .filter(|i| train.contains(&self.fold_of[*i]))
            .collect();
        let sub: Vec<(f64, f64)> = members.iter().map(|i| outcomes[*i]).collect();
        let mut best: Option<(f64, f64)> = None;
        for lambda in PENALTIES.iter().rev() {
            let mut scores = vec![0.0; members.len()];
            for held in train {
                let rest: Vec<usize> = train.iter().copied().filter(|f| f != held).collect();
                let h = self.solve(&rest, *lambda);
                for (k, i) in members.iter().enumerate() {
                    if self.fold_of[*i] == *held {
                        scores[k] = self.predict(&h, *i);
                    }
                }
            }
            // Chosen on the measure reported (held-out squared error picked
            // worse penalties on small, noisy sources: scripts/route-fit-card).
            let apgr = quality(&scores, &sub).map_or(0.0, |q| q.apgr);
            if best.is_none_or(|(b, _)| apgr > b + 1e-9) {
                best = Some((apgr, *lambda));
            }
        }
        best.map_or(PENALTIES[PENALTIES.len() - 1], |(_, lambda)| lambda)
    }

    /// The head back in the router's raw features: the prior's column
    /// folded into the weights.
    pub(super) fn raw_weights(&self, h: &Head) -> (Vec<f32>, f32) {
        let p = self.d - 1;
        let mut w = vec![0.0f64; p];
        let mut b = h.b;
        for j in 0..self.d {
            let k = h.w[j] / self.scale[j];
            b -= k * self.mean[j];
            if j < p {
                w[j] += k;
            } else {
                for (wi, pi) in w.iter_mut().zip(&self.prior_w) {
                    *wi += k * pi;
                }
                b += k * self.prior_b;
            }
        }
        (w.iter().map(|v| *v as f32).collect(), b as f32)
    }
}

/// Solves `A x = y` for a symmetric positive definite `A` (its lower
/// triangle, row-major, overwritten by the factor).
fn cholesky_solve(a: &mut [f64], y: &[f64], d: usize) -> Vec<f64> {
    for j in 0..d {
        let mut s = a[j * d + j];
        for k in 0..j {
            s -= a[j * d + k] * a[j * d + k];
        }
        let l = s.max(1e-12).sqrt();
        a[j * d + j] = l;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / l;
        }
    }
    let mut z = y.to_vec();
    for i in 0..d {
        for k in 0..i {
            z[i] -= a[i * d + k] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    for i in (0..d).rev() {
        for k in i + 1..d {
            z[i] -= a[k * d + i] * z[k];
        }
        z[i] /= a[i * d + i];
    }
    z
}
