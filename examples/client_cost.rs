//! What the upstream client costs per request: the gateway's client
//! (`upstream::http::Http`, hyper's pooled client on the direct path)
//! against reqwest (built as `upstream::http` builds it for upstreams
//! behind a proxy), each on one current-thread runtime (as `serve`'s
//! per-core threads run it), sending the bench's chat request to an
//! upstream and reading the whole answer.
//!
//!   cargo run --release --example client_cost -- URL [REQUESTS] [CONNS]
//!
//! Prints, for each client, the requests answered, the wall time and the
//! CPU time of the client's thread per request (user + system, so the
//! socket calls are counted). `bench/client.sh` runs it against the fake
//! upstream, several rounds, the two clients alternating.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;

const BODY: &str = r#"{"model":"gpt-3.5-turbo","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the benchmark in one short sentence."}],"max_tokens":32}"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next() else {
        eprintln!("usage: client_cost URL [REQUESTS] [CONNS]");
        std::process::exit(2);
    };
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let url = format!("{}/v1/chat/completions", base.trim_end_matches('/'));
    for client in ["reqwest", "gateway"] {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let send = Sender::new(client, &url)?;
        let (ok, wall, cpu) = rt.block_on(run(&send, requests, conns));
        println!(
            "{client:8} {ok} answered in {:.2} s: {:.1} µs of client CPU per request",
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / ok.max(1) as f64
        );
    }
    Ok(())
}

/// Sends `requests` requests over `conns` concurrent lanes; returns the
/// answered count, the wall time and the thread's CPU time, after a
/// warm-up that opens the connections.
async fn run(send: &Sender, requests: usize, conns: usize) -> (usize, Duration, Duration) {
    // Each lane is a future of this one task, polled as it is woken (no
    // task handoff to measure).
    let lanes = |n: &dyn Fn(usize) -> usize| {
        (0..conns)
            .map(|i| {
                let n = n(i);
                async move {
                    let mut ok = 0;
                    for _ in 0..n {
                        ok += usize::from(send.once().await);
                    }
                    ok
                }
            })
            .collect::<futures::stream::FuturesUnordered<_>>()
    };
    lanes(&|_| 1).collect::<Vec<_>>().await;
    let (t0, c0) = (Instant::now(), thread_cpu());
    let done: Vec<usize> = lanes(&|i| requests / conns + usize::from(i < requests % conns))
        .collect()
        .await;
    let ok = done.iter().sum();
    (ok, t0.elapsed(), thread_cpu().saturating_sub(c0))
}

enum Sender {
    Reqwest(reqwest::Client, reqwest::Url, http::HeaderMap),
    Gateway(
        Box<tollgate::upstream::http::Http>,
        tollgate::upstream::http::Target,
        http::HeaderMap,
    ),
}

impl Sender {
    fn new(client: &str, url: &str) -> Result<Sender, Box<dyn std::error::Error>> {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer upstream-secret"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if client == "reqwest" {
            // As `upstream::http` builds it.
            let c = reqwest::Client::builder()
                .tcp_nodelay(true)
                .pool_max_idle_per_host(1024)
                .connect_timeout(Duration::from_secs(10))
                .build()?;
            return Ok(Sender::Reqwest(c, url.parse()?, headers));
        }
        let http = tollgate::upstream::http::Http::new(Duration::from_secs(10))
            .map_err(|e| format!("{e:#}"))?;
        let target = http.target(url)?;
        Ok(Sender::Gateway(Box::new(http), target, headers))
    }

    /// One request, its whole answer read; true on a 200.
    async fn once(&self) -> bool {
        let body = Bytes::from_static(BODY.as_bytes());
        match self {
            Sender::Reqwest(c, url, headers) => {
                let send = c
                    .post(url.clone())
                    .headers(headers.clone())
                    .body(body)
                    .send();
                let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(60), send).await else {
                    return false;
                };
                r.status().is_success() && r.bytes().await.is_ok()
            }
            Sender::Gateway(http, url, headers) => {
                let send = http.post(url, headers, body);
                let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(60), send).await else {
                    return false;
                };
                r.status().is_success() && tollgate::upstream::http::bytes(r).await.is_ok()
            }
        }
    }
}

/// This thread's CPU time (user + system), from /proc.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the
    // 12th and stime the 13th of them.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // Clock ticks, 100 per second on Linux.
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}
