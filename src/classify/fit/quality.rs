//! Routing quality, RouteLLM's measures of a router on outcome rows: what
//! `route fit` reports and chooses its penalty by, and what `route eval`
//! prints for any router.

/// Routing quality of a score on outcome rows (RouteLLM's measures):
/// sending the rows scored highest to the strong model, `apgr` is the area
/// under the share of the quality gap recovered against the strong share
/// (random routing: 0.5), and `cpt50` the smallest strong share that
/// recovers half the gap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quality {
    pub apgr: f64,
    pub cpt50: f64,
}

/// The quality of `scores` on `rows`; `None` when the strong model gains
/// nothing overall (no gap to recover).
pub fn quality(scores: &[f64], rows: &[(f64, f64)]) -> Option<Quality> {
    let curve = curve(scores, rows)?;
    let mut area = 0.0;
    let mut cpt50 = None;
    for w in curve.windows(2) {
        let ((c0, p0), (c1, p1)) = (w[0], w[1]);
        area += (c1 - c0) * (p0 + p1) / 2.0;
        if cpt50.is_none() && p1 >= 0.5 {
            let t = if p1 > p0 {
                ((0.5 - p0) / (p1 - p0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            cpt50 = Some(c0 + t * (c1 - c0));
        }
    }
    Some(Quality {
        apgr: area,
        cpt50: cpt50.unwrap_or(1.0),
    })
}

/// The share of the quality gap recovered when the `share` of rows scored
/// highest go to the strong model; `None` with no gap.
pub fn recovered_at(scores: &[f64], rows: &[(f64, f64)], share: f64) -> Option<f64> {
    let curve = curve(scores, rows)?;
    let share = share.clamp(0.0, 1.0);
    curve.windows(2).find_map(|w| {
        let ((c0, p0), (c1, p1)) = (w[0], w[1]);
        (share <= c1).then(|| {
            let t = if c1 > c0 {
                (share - c0) / (c1 - c0)
            } else {
                1.0
            };
            p0 + t * (p1 - p0)
        })
    })
}

/// The gap-recovered curve: (strong share, PGR) from (0, 0) to (1, 1),
/// a point at the end of each run of tied scores. Tied scores go strong
/// together: within a tie the curve is the straight line a random order
/// gives on average.
fn curve(scores: &[f64], rows: &[(f64, f64)]) -> Option<Vec<(f64, f64)>> {
    let n = rows.len();
    let total: f64 = rows.iter().map(|(s, w)| s - w).sum();
    if n == 0 || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut gained, mut i) = (0.0, 0);
    while i < n {
        let mut j = i;
        while j < n && scores[order[j]] == scores[order[i]] {
            let (s, w) = rows[order[j]];
            gained += s - w;
            j += 1;
        }
        points.push((j as f64 / n as f64, gained / total));
        i = j;
    }
    Some(points)
}
