//! The binary under SIGTERM with requests and streams in flight: every
//! stream finishes, every request has its ledger row, exit code 0. Then
//! `tollgate report` reads that ledger.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::fake_openai::{self, Fake};

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

/// A fake upstream whose stream chunks come `chunk_delay` apart, and
/// `tollgate serve` in front of it with a SQLite ledger in `dir`.
struct Run {
    fake: Fake,
    child: std::process::Child,
    url: String,
    ledger: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn run(rt: &tokio::runtime::Runtime, chunk_delay: Duration, extra: &[&str]) -> Run {
    let fake = rt.block_on(Fake::start_with(fake_openai::Options {
        chunk_delay,
        ..fake_openai::Options::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger.sqlite");
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nledger: \"sqlite:{}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\n\
             models:\n  gpt-4: {{ provider: up }}\n  gpt-3.5-turbo: {{ provider: up }}\n",
            ledger.display(),
            fake.base_url()
        ),
    )
    .unwrap();
    let (child, url) = support::spawn_serve_with(
        env!("CARGO_BIN_EXE_tollgate"),
        &policy,
        std::process::Stdio::null(),
        extra,
    );
    Run {
        fake,
        child,
        url,
        ledger,
        _dir: dir,
    }
}

/// SIGTERM to `child` once `fake` has seen `hits` requests and `after`
/// has passed.
async fn term_after(fake: &Fake, hits: usize, after: Duration, child: &std::process::Child) {
    while fake.hits() < hits {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(after).await;
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
}

/// `child` exits 0 within `limit` of `started`.
fn exits_in_time(child: &mut std::process::Child, started: std::time::Instant, limit: Duration) {
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(started.elapsed() < limit, "waited {:?}", started.elapsed());
}

#[test]
fn sigterm_finishes_streams_and_flushes_the_ledger() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 50 streams of ~8 × 100 ms each: mid-flight at SIGTERM, spread over
    // four serving threads (each its own listener and runtime).
    let Run {
        fake,
        mut child,
        url,
        ledger,
        _dir,
    } = run(&rt, Duration::from_millis(100), &["--threads", "4"]);

    let results = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut tasks = Vec::new();
        for i in 0..70 {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let model = if i % 2 == 0 { "gpt-4" } else { "gpt-3.5-turbo" };
                let body = json!({"model": model, "stream": i < 50,
                                  "messages": [{"role": "user", "content": "Say hello"}]});
                let res = client
                    .post(format!("{url}/v1/chat/completions"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }));
        }
        // Every request has reached the upstream: SIGTERM now.
        term_after(&fake, 70, Duration::ZERO, &child).await;
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    for (i, (code, body)) in results.iter().enumerate() {
        assert_eq!(*code, 200, "request {i}: {body}");
        if i < 50 {
            assert!(
                body.ends_with("data: [DONE]\n\n"),
                "stream {i} was cut: {body}"
            );
        }
    }
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let (rows, complete): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), SUM(ending = 'complete') FROM tollgate_ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, complete), (70, 70), "no ledger row lost");

    // The report CLI on that ledger: 35 requests per model, exact money.
    // gpt-4: 10 JSON (6 in × $30/M + 7 out × $60/M) + 25 streams (5 out) =
    // 10 × 0.0006 + 25 × 0.00048; gpt-3.5-turbo at $0.5/$1.5.
    let out = tollgate()
        .args(["report", "--by", "model", "--format", "csv", "--ledger"])
        .arg(format!("sqlite:{}", ledger.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "model,requests,prompt_tokens,completion_tokens,cost_usd,baseline_usd,savings_usd,savings_pct,cache_hit_pct,cached_prompt_pct,caching_saved_usd,quality_retained_pct",
            "gpt-4,35,210,195,0.018,0.018,0,0.0,0.0,0.0,0,100.0",
            "gpt-3.5-turbo,35,210,195,0.0003975,0.018,0.0176025,97.8,0.0,0.0,0,100.0",
        ]
    );
    let table = tollgate()
        .args(["report", "--by", "model", "--ledger"])
        .arg(format!("sqlite:{}", ledger.display()))
        .output()
        .unwrap();
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("TOTAL") && text.contains("0.018398"),
        "{text}"
    );
}

#[test]
fn sigterm_ends_what_is_still_open_after_the_grace_period() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // A stream of 8 frames, 500 ms apart: longer than the grace period.
    let Run {
        fake,
        mut child,
        url,
        ledger,
        _dir,
    } = run(
        &rt,
        Duration::from_millis(500),
        &["--shutdown-grace", "300ms"],
    );
    let started = std::time::Instant::now();
    let body = rt.block_on(async {
        let stream = tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .json(&json!({"model": "gpt-4", "stream": true,
                              "messages": [{"role": "user", "content": "Say hello"}]}))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap_or_default()
        });
        term_after(&fake, 1, Duration::from_millis(600), &child).await;
        stream.await.unwrap()
    });
    exits_in_time(&mut child, started, Duration::from_secs(3));
    assert!(
        !body.contains("[DONE]"),
        "the stream was ended early: {body}"
    );
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let ending: String = conn
        .query_row("SELECT ending FROM tollgate_ledger", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ending, "client_gone", "the cut stream is still accounted");
}

#[test]
fn a_client_that_sends_its_headers_too_slowly_is_disconnected() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Run { mut child, url, .. } = run(&rt, Duration::ZERO, &["--header-timeout", "300ms"]);
    let addr = url.strip_prefix("http://").unwrap();
    let mut slow = std::net::TcpStream::connect(addr).unwrap();
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    // The server closes the connection (EOF, or a reset) once the header
    // timeout passes, well before our 3 s read timeout.
    let n = slow.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
        "{:?}",
        &buf[..n]
    );
    assert!(waited < Duration::from_secs(2), "held for {waited:?}");
    // Everyone else is still served.
    let health = rt.block_on(async {
        reqwest::get(format!("{url}/healthz"))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(health, 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_ends_a_pending_completions_request_after_the_grace_period() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut r = run(&rt, Duration::ZERO, &["--shutdown-grace", "300ms"]);
    // The upstream takes 10 s to answer: far past the grace period.
    r.fake
        .script([fake_openai::Behavior::Delay(Duration::from_secs(10))]);
    let started = std::time::Instant::now();
    let (status, body) = rt.block_on(async {
        let url = r.url.clone();
        let pending = tokio::spawn(async move {
            let res = reqwest::Client::new()
                .post(format!("{url}/v1/completions"))
                .json(&json!({"model": "gpt-3.5-turbo", "prompt": "Say hello"}))
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        });
        term_after(&r.fake, 1, Duration::ZERO, &r.child).await;
        pending.await.unwrap()
    });
    exits_in_time(&mut r.child, started, Duration::from_secs(5));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let conn = rusqlite::Connection::open(&r.ledger).unwrap();
    let (task, status): (String, i64) = conn
        .query_row("SELECT task, status FROM tollgate_ledger", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((task.as_str(), status), ("completion", 503));
}
