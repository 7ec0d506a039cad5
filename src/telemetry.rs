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
    requests: BTreeMap<(String, String, u16), u64>,
    prompt_tokens: BTreeMap<String, u64>,
    completion_tokens: BTreeMap<String, u64>,
    cost: BTreeMap<String, u64>,
    baseline: BTreeMap<String, u64>,
    latency: BTreeMap<String, Histogram>,
    ttft: BTreeMap<String, Histogram>,
    overhead: BTreeMap<String, Histogram>,
    upstream_errors: BTreeMap<(String, String), u64>,
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

#[derive(Default)]
pub struct RequestMetrics {
    inner: Mutex<Inner>,
}

impl RequestMetrics {
    pub fn record(&self, s: &Sample<'_>) {
        let Ok(mut m) = self.inner.lock() else {
            return;
        };
        let model = s.model.to_string();
        *m.requests
            .entry((s.route.to_string(), model.clone(), s.status))
            .or_default() += 1;
        *m.prompt_tokens.entry(model.clone()).or_default() += s.prompt_tokens;
        *m.completion_tokens.entry(model.clone()).or_default() += s.completion_tokens;
        *m.cost.entry(model.clone()).or_default() += s.cost_nanos;
        *m.baseline.entry(model.clone()).or_default() += s.baseline_nanos;
        m.latency
            .entry(model.clone())
            .or_default()
            .observe(s.latency_s);
        if let Some(t) = s.ttft_s {
            m.ttft.entry(model.clone()).or_default().observe(t);
        }
        if let Some(o) = s.overhead_s {
            m.overhead
                .entry(model)
                .or_insert_with(|| Histogram::with(OVERHEAD_BOUNDS))
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
        for ((route, model, status), n) in &m.requests {
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
        for (name, help, map) in [
            (
                "tollgate_prompt_tokens_total",
                "Prompt tokens by model.",
                &m.prompt_tokens,
            ),
            (
                "tollgate_completion_tokens_total",
                "Completion tokens by model.",
                &m.completion_tokens,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, n) in map {
                let _ = writeln!(out, "{name}{{model=\"{}\"}} {n}", esc(model));
            }
        }
        for (name, help, map) in [
            (
                "tollgate_cost_usd_total",
                "Money spent, by model (USD).",
                &m.cost,
            ),
            (
                "tollgate_baseline_cost_usd_total",
                "What the same tokens would have cost on the baseline model, by model (USD).",
                &m.baseline,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (model, n) in map {
                let _ = writeln!(
                    out,
                    "{name}{{model=\"{}\"}} {}",
                    esc(model),
                    crate::money::Nanos(*n)
                );
            }
        }
        for (name, help, map) in [
            (
                "tollgate_request_duration_seconds",
                "End-to-end request time, by model.",
                &m.latency,
            ),
            (
                "tollgate_time_to_first_token_seconds",
                "Time until the first byte of the answer, by model.",
                &m.ttft,
            ),
            (
                "tollgate_gateway_overhead_seconds",
                "Time to the first byte minus time waiting on upstreams: what the gateway itself adds, by model.",
                &m.overhead,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (model, h) in map {
                h.render(out, name, &format!("model=\"{}\"", esc(model)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
