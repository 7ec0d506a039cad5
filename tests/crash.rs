//! SIGKILL under load. `tollgate serve` with a SQLite ledger and a $10
//! daily budget takes 16 concurrent clients (JSON and streams) and is
//! killed with SIGKILL mid-load, then restarted on the same ledger and
//! driven until the budget refuses. Every request a client saw answered
//! has its ledger row, and neither the ledger nor what the upstream
//! really billed goes past the budget.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::fake_openai::{self, Fake};

/// $10 in nano-dollars; gpt-4 here costs $0.001 a token either way.
const LIMIT: i64 = 10_000_000_000;
const NANOS_PER_TOKEN: u64 = 1_000_000;
const WORKERS: usize = 16;

fn policy(dir: &std::path::Path, fake: &Fake) -> std::path::PathBuf {
    let path = dir.join("p.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nledger: \"sqlite:{}\"\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\n\
             models:\n  gpt-4: {{ provider: up, price: {{ input: 1000, output: 1000 }} }}\n\
             budgets:\n  - {{ scope: {{ global: true }}, limit_usd: 10, period: day }}\n",
            dir.join("ledger.sqlite").display(),
            fake.base_url()
        ),
    )
    .unwrap();
    path
}

/// What the clients saw: the ids answered 200 in full, and how many were
/// refused for the budget.
#[derive(Default)]
struct Seen {
    answered: Vec<String>,
    refused: usize,
}

/// Runs `WORKERS` clients against `url` until `stop` is set or each has
/// been refused for the budget (`until_refused`).
async fn load(
    url: String,
    phase: &str,
    stop: Arc<AtomicBool>,
    until_refused: bool,
    ok: Arc<AtomicUsize>,
) -> Seen {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (client, url, stop, ok) = (client.clone(), url.clone(), stop.clone(), ok.clone());
        let phase = phase.to_string();
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = format!("{phase}-{w}-{n}");
                let stream = n % 2 == 1;
                let body = json!({"model": "gpt-4", "stream": stream, "max_tokens": 16,
                    "messages": [{"role": "user", "content": format!("Say hello to worker {w}, turn {n} of {phase}")}]});
                let Ok(res) = client
                    .post(format!("{url}/v1/chat/completions"))
                    .header("x-request-id", &id)
                    .json(&body)
                    .send()
                    .await
                else {
                    break; // the gateway is gone
                };
                let status = res.status().as_u16();
                let Ok(text) = res.text().await else {
                    break; // killed mid-answer: not seen answered
                };
                match status {
                    200 if !stream || text.ends_with("data: [DONE]\n\n") => {
                        seen.answered.push(id);
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    200 => break,
                    429 if text.contains("insufficient_quota") => {
                        seen.refused += 1;
                        if until_refused {
                            break;
                        }
                    }
                    other => panic!("{id}: {other} {text}"),
                }
            }
            seen
        }));
    }
    let mut all = Seen::default();
    for t in tasks {
        let s = t.await.unwrap();
        all.answered.extend(s.answered);
        all.refused += s.refused;
    }
    all
}

#[test]
fn sigkill_under_load_loses_no_answered_row_and_the_budget_holds() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Streams take ~7 chunks × 3 ms: some are mid-flight at the kill.
    let fake = rt.block_on(Fake::start_with(fake_openai::Options {
        chunk_delay: Duration::from_millis(3),
        record: false,
        ..fake_openai::Options::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &fake);
    let bin = env!("CARGO_BIN_EXE_tollgate");

    // Phase 1: load, then SIGKILL once 150 answers are out.
    let (mut child, url) = support::spawn_serve(bin, &policy);
    let ok = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let before = rt.block_on(async {
        let load = tokio::spawn(load(url, "a", stop.clone(), false, ok.clone()));
        while ok.load(Ordering::SeqCst) < 150 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        child.kill().unwrap(); // SIGKILL
        load.await.unwrap()
    });
    child.wait().unwrap();
    assert!(before.answered.len() >= 150);
    assert_eq!(before.refused, 0, "the budget lasts past the kill");

    // Phase 2: restart on the same ledger and spend until refused.
    let (mut child, url) = support::spawn_serve(bin, &policy);
    let after = rt.block_on(load(
        url,
        "b",
        Arc::new(AtomicBool::new(false)),
        true,
        Arc::new(AtomicUsize::new(0)),
    ));
    assert_eq!(after.refused, WORKERS, "every client ends refused");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));

    let conn = rusqlite::Connection::open(dir.path().join("ledger.sqlite")).unwrap();
    let mut stmt = conn
        .prepare("SELECT request_id FROM tollgate_ledger")
        .unwrap();
    let ids: HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let missing: Vec<&String> = before
        .answered
        .iter()
        .chain(&after.answered)
        .filter(|id| !ids.contains(*id))
        .collect();
    assert!(missing.is_empty(), "answered without a row: {missing:?}");
    let (spent, interrupted): (i64, i64) = conn
        .query_row(
            "SELECT SUM(cost_nanos), COUNT(*) FILTER (WHERE ending = 'interrupted') FROM tollgate_ledger",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let (p, c) = fake.billed();
    let billed = i64::try_from((p + c) * NANOS_PER_TOKEN).unwrap();
    eprintln!(
        "answered {} before the kill, {} after; {interrupted} interrupted rows; ledger ${:.4}, upstream billed ${:.4}, limit $10",
        before.answered.len(),
        after.answered.len(),
        spent as f64 / 1e9,
        billed as f64 / 1e9
    );
    assert!(spent <= LIMIT, "the ledger went past the budget: {spent}");
    assert!(
        billed <= LIMIT,
        "the upstream billed past the budget: {billed}"
    );
    assert!(billed <= spent, "the ledger holds at least what was billed");
    // An interrupted request is charged its reservation: under 50 tokens.
    let slack = interrupted * 50 * NANOS_PER_TOKEN as i64;
    assert!(
        spent - billed <= slack,
        "charged {spent} for {billed} billed"
    );
}
