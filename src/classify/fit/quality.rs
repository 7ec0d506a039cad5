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
    let n = rows.len();
    let total: f64 = rows.iter().map(|(s, w)| s - w).sum();
    if n == 0 || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    // Tied scores go strong together: within a tie the curve is the
    // straight line a random order gives on average.
    let (mut area, mut gained, mut share, mut cpt50) = (0.0, 0.0, 0.0, None);
    let mut i = 0;
    while i < n {
        let mut j = i;
        let mut gain = 0.0;
        while j < n && scores[order[j]] == scores[order[i]] {
            let (s, w) = rows[order[j]];
            gain += s - w;
            j += 1;
        }
        let (pgr0, pgr1) = (gained / total, (gained + gain) / total);
        let width = (j - i) as f64 / n as f64;
        if cpt50.is_none() && pgr1 >= 0.5 {
            let t = if pgr1 > pgr0 {
                ((0.5 - pgr0) / (pgr1 - pgr0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            cpt50 = Some(share + t * width);
        }
        area += width * (pgr0 + pgr1) / 2.0;
        gained += gain;
        share += width;
        i = j;
    }
    Some(Quality {
        apgr: area,
        cpt50: cpt50.unwrap_or(1.0),
    })
}
