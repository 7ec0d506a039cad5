//! A standalone fake OpenAI upstream (the one the tests use), for the
//! Python SDK check and the load benchmark.
//!
//!   cargo run --release --example fake_openai -- --listen 127.0.0.1:18080
//!
//! Prints `fake-openai listening on http://ADDR` and serves until killed.
//! Expects `Authorization: Bearer upstream-secret` (or `--api-key`).
//! `--fail-every N` answers every Nth request with a 500 (a flapping upstream).
//! `--judge` answers every chat request as router learning's judge would
//! (`{"A": …, "B": …}`), for bench/shadow.sh.

#[path = "../tests/support/fake_openai.rs"]
mod fake_openai;

use std::time::Duration;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut opts = fake_openai::Options {
        record: false,
        ..Default::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => listen = value(),
            "--api-key" => opts.api_key = value(),
            "--chunk-delay-ms" => {
                opts.chunk_delay = Duration::from_millis(value().parse().unwrap_or(0))
            }
            "--fail-every" => opts.fail_every = value().parse().ok(),
            "--judge" => opts.judge = Some(("fake upstream".into(), "poem".into())),
            other => {
                eprintln!(
                    "unknown argument {other}; use --listen ADDR --api-key KEY --chunk-delay-ms N --fail-every N --judge"
                );
                std::process::exit(2);
            }
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let fake = fake_openai::Fake::start_on(listener, opts).await;
    println!("fake-openai listening on http://{}", fake.addr);
    tokio::signal::ctrl_c().await
}
