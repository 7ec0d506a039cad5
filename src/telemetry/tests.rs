//! Unit tests of `telemetry`.

use super::*;

#[test]
fn renders_counters_and_cumulative_buckets() {
    let m = RequestMetrics::default();
    for (latency, status) in [(0.004, 200), (0.3, 200), (7.0, 502)] {
        m.record(&Sample {
            route: "main",
            model: "gpt-4",
            status,
            prompt_tokens: 10,
            completion_tokens: 5,
            cost_nanos: 600_000,
            baseline_nanos: 600_000,
            latency_s: latency,
            ttft_s: Some(latency / 2.0),
            overhead_s: Some(0.0002),
        });
    }
    let mut out = String::new();
    m.render(&mut out);
    assert!(
        out.contains("tollgate_requests_total{route=\"main\",model=\"gpt-4\",status=\"200\"} 2")
    );
    assert!(
        out.contains("tollgate_requests_total{route=\"main\",model=\"gpt-4\",status=\"502\"} 1")
    );
    assert!(out.contains("tollgate_prompt_tokens_total{model=\"gpt-4\"} 30"));
    assert!(out.contains("tollgate_cost_usd_total{model=\"gpt-4\"} 0.0018"));
    assert!(
        out.contains("tollgate_request_duration_seconds_bucket{model=\"gpt-4\",le=\"0.005\"} 1")
    );
    assert!(out.contains("tollgate_request_duration_seconds_bucket{model=\"gpt-4\",le=\"0.5\"} 2"));
    assert!(out.contains("tollgate_request_duration_seconds_bucket{model=\"gpt-4\",le=\"+Inf\"} 3"));
    assert!(out.contains("tollgate_request_duration_seconds_count{model=\"gpt-4\"} 3"));
    assert!(
        out.contains("tollgate_gateway_overhead_seconds_bucket{model=\"gpt-4\",le=\"0.00025\"} 3")
    );
    assert!(
        out.contains("tollgate_gateway_overhead_seconds_bucket{model=\"gpt-4\",le=\"0.0001\"} 0")
    );
}
