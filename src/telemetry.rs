//! Request metrics for `/metrics`: counts by route, model and status;
//! tokens, cost and baseline cost by model; latency and time-to-first-token
//! histograms. Recorded once per request when its tab closes.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds in seconds (Prometheus `le`), plus +Inf.
const BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Finer bounds for the gateway's own time.
const OVERHEAD_BOUNDS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::with(BOUNDS)
    }
}

impl Histogram {
    fn with(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if seconds <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, b) in self.bounds.iter().enumerate() {
            let c = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// By model name; looked up by `&str`, so a request allocates nothing
    /// here once its model has been seen.
    models: BTreeMap<String, PerModel>,
    upstream_errors: BTreeMap<(String, String), u64>,
}

#[derive(Default)]
struct PerModel {
    /// (route, status, count): a handful per model, scanned.
    requests: Vec<(String, u16, u64)>,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: u64,
    baseline: u64,
    latency: Histogram,
    ttft: Option<Histogram>,
    overhead: Option<Histogram>,
}

/// One finished request, as the metrics see it.
pub struct Sample<'a> {
    pub route: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_nanos: u64,
    pub baseline_nanos: u64,
    pub latency_s: f64,
    pub ttft_s: Option<f64>,
    /// Time to the first byte minus the time spent waiting on upstreams.
    pub overhead_s: Option<f64>,
}

impl<'a> Sample<'a> {
    /// A finished request's ledger row; `overhead` as measured.
    pub fn of(r: &'a crate::ledger::Row, overhead: Option<std::time::Duration>) -> Sample<'a> {
        Sample {
            route: &r.route,
            model: &r.model,
            status: r.status,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cost_nanos: r.cost.0,
            baseline_nanos: r.baseline_cost.0,
            latency_s: r.latency_ms as f64 / 1000.0,
            ttft_s: r.ttft_ms.map(|t| t as f64 / 1000.0),
            overhead_s: overhead.map(|d| d.as_secs_f64()),
        }
    }
}

#[derive(Default)]
pub struct RequestMetrics {
    inner: Mutex<Inner>,
}

impl RequestMetrics {
    pub fn record(&self, s: &Sample<'_>) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        if !m.models.contains_key(s.model) {
            m.models.insert(s.model.to_string(), PerModel::default());
        }
        let Some(pm) = m.models.get_mut(s.model) else {
            return;
        };
        match pm
            .requests
            .iter_mut()
            .find(|(route, status, _)| route == s.route && *status == s.status)
        {
            Some((_, _, n)) => *n += 1,
            None => pm.requests.push((s.route.to_string(), s.status, 1)),
        }
        pm.prompt_tokens += s.prompt_tokens;
        pm.completion_tokens += s.completion_tokens;
        pm.cost += s.cost_nanos;
        pm.baseline += s.baseline_nanos;
        pm.latency.observe(s.latency_s);
        if let Some(t) = s.ttft_s {
            pm.ttft.get_or_insert_with(Histogram::default).observe(t);
        }
        if let Some(o) = s.overhead_s {
            pm.overhead
                .get_or_insert_with(|| Histogram::with(OVERHEAD_BOUNDS))
                .observe(o);
        }
    }

    /// An attempt on `model` failed with `kind` (e.g. `status 502`).
    pub fn upstream_error(&self, model: &str, kind: &str) {
        if let Ok(mut m) = self.inner.lock() {
            *m.upstream_errors
                .entry((model.to_string(), kind.to_string()))
                .or_default() += 1;
        }
    }

    pub fn render(&self, out: &mut String) {
        let Ok(m) = self.inner.lock() else {
            return;
        };
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let _ = writeln!(out, "# HELP tollgate_requests_total Chat requests by route, answering model and HTTP status.\n# TYPE tollgate_requests_total counter");
        let mut requests: Vec<(&str, &str, u16, u64)> = m
            .models
            .iter()
            .flat_map(|(model, pm)| {
                pm.requests
                    .iter()
                    .map(move |(r, st, n)| (r.as_str(), model.as_str(), *st, *n))
            })
            .collect();
        requests.sort_unstable();
        for (route, model, status, n) in requests {
            let _ = writeln!(
                out,
                "tollgate_requests_total{{route=\"{}\",model=\"{}\",status=\"{status}\"}} {n}",
                esc(route),
                esc(model)
            );
        }
        let _ = writeln!(out, "# HELP tollgate_upstream_errors_total Failed attempts by model and kind (connect error, timeout, status N, malformed reply, busy, unavailable).\n# TYPE tollgate_upstream_errors_total counter");
        for ((model, kind), n) in &m.upstream_errors {
            let _ = writeln!(
                out,
                "tollgate_upstream_errors_total{{model=\"{}\",kind=\"{}\"}} {n}",
                esc(model),
                esc(kind)
            );
        }
        type Count = fn(&PerModel) -> u64;
        let counters: [(&str, &str, Count, bool); 4] = [
            (
                "tollgate_prompt_tokens_total",
                "Prompt tokens by model.",
                |p| p.prompt_tokens,
                false,
            ),
            (
                "tollgate_completion_tokens_total",
                "Completion tokens by model.",
                |p| p.completion_tokens,
                false,
            ),
            (
                "tollgate_cost_usd_total",
                "Money spent, by model (USD).",
                |p| p.cost,
                true,
            ),
            (
                "tollgate_baseline_cost_usd_total",
                "What the same tokens would have cost on the baseline model, by model (USD).",
                |p| p.baseline,
                true,
            ),
        ];
        for (name, help, count, usd) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, pm) in &m.models {
                let n = count(pm);
                let _ = if usd {
                    writeln!(
                        out,
                        "{name}{{model=\"{}\"}} {}",
                        esc(model),
                        crate::money::Nanos(n)
                    )
                } else {
                    writeln!(out, "{name}{{model=\"{}\"}} {n}", esc(model))
                };
            }
        }
        type Hist = fn(&PerModel) -> Option<&Histogram>;
        let histograms: [(&str, &str, Hist); 3] = [
            ("tollgate_request_duration_seconds", "End-to-end request time, by model.", |p| Some(&p.latency)),
            (
                "tollgate_time_to_first_token_seconds",
                "Time until the first byte of the answer, by model.",
                |p| p.ttft.as_ref(),
            ),
            (
                "tollgate_gateway_overhead_seconds",
                "Time to the first byte minus time waiting on upstreams: what the gateway itself adds, by model.",
                |p| p.overhead.as_ref(),
            ),
        ];
        for (name, help, hist) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (model, pm) in &m.models {
                if let Some(h) = hist(pm) {
                    h.render(out, name, &format!("model=\"{}\"", esc(model)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
