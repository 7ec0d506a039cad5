//! Random and mutated inputs for the three parsers that see untrusted or
//! hand-written text: the request body parser, the policy compiler and the
//! classifier. None may panic; each answers with a value or an error. And
//! the ledger writer, with rows carrying what clients control (model
//! names, request ids) and what upstreams report (token counts): every
//! row lands, in SQLite and PostgreSQL.
//! (A coverage-guided fuzzer needs a nightly toolchain; these run on
//! stable, in every test run, from fixed seeds so failures reproduce.)
#![allow(clippy::unwrap_used)]

use std::path::Path;

mod support;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const REQUEST: &str = r#"{"model":"auto","temperature":0,"max_tokens":32,"stream":true,
"stream_options":{"include_usage":true},"stop":["\n"],"n":1,"tools":[{"type":"function",
"function":{"name":"f","parameters":{"type":"object"}}}],"messages":[{"role":"system",
"content":"be terse"},{"role":"user","content":[{"type":"text","text":"hi 你好"}]}]}"#;

const POLICY: &str = "version: 1
providers:
  up: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k, timeout: 5s }
models:
  gpt-4: { provider: up, price: { input: 30, output: 60 }, context: 8192 }
  small: { provider: up, price: { input: 0.5, output: 1.5 } }
aliases: { auto: router }
routes:
  - { name: hard, when: { task: [code, math], complexity: high, strong_score: \">= 0.6\" }, to: gpt-4, fallback: [small] }
  - { name: rest, to: small }
budgets:
  - { scope: { team: web }, limit_usd: 5, period: day, on_exhausted: downgrade, alert_at: [0.8] }
rate_limits:
  - { scope: { key: \"*\" }, requests_per_minute: 60 }
cache: { ttl: 1h }
";

/// Deletes, duplicates, flips or inserts a few bytes.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..6) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let i = rng.random_range(0..v.len());
        match rng.random_range(0..5) {
            0 => {
                v.remove(i);
            }
            1 => v.insert(i, v[i]),
            2 => v[i] ^= 1 << rng.random_range(0..8),
            3 => {
                const NOISE: &[u8] = b"{}[]\":,\\\n -0e9\xff";
                v.insert(i, NOISE[rng.random_range(0..NOISE.len())]);
            }
            _ => {
                let j = rng.random_range(i..v.len());
                let chunk = v[i..j].to_vec();
                v.splice(i..i, chunk);
            }
        }
    }
    v
}

#[test]
fn the_request_parser_never_panics() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let input = if rng.random_bool(0.2) {
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            mutate(&mut rng, REQUEST.as_bytes())
        };
        if tollgate::request::ChatRequest::parse(&input).is_ok() {
            accepted += 1;
        }
    }
    // Mutations that keep the JSON valid are accepted: the test reaches
    // past the JSON decoder into validation.
    assert!(accepted > 100, "only {accepted} inputs got past parsing");
}

#[test]
fn the_policy_compiler_never_panics() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut accepted = 0;
    for _ in 0..3_000 {
        let bytes = mutate(&mut rng, POLICY.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        match tollgate::policy::load_str("fuzz.yaml", &text, Path::new("."), &|_| None) {
            Ok(_) => accepted += 1,
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(accepted > 10, "only {accepted} policies compiled");
}

#[test]
fn the_classifier_never_panics_and_stays_in_range() {
    let mut rng = StdRng::seed_from_u64(3);
    let alphabet: Vec<char> =
        "abc xyz 012 +=*/^()[]{}<>;:,.?!\n\t```def fn 总结翻译代码数学 ñé🙂\u{0}"
            .chars()
            .collect();
    for _ in 0..5_000 {
        let n = rng.random_range(0..3_000);
        let text: String = (0..n)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let c = tollgate::classify::classify(&tollgate::classify::Conversation {
            last_user: &text,
            system: if rng.random_bool(0.3) { &text } else { "" },
            turns: rng.random_range(0..20),
            has_tools: rng.random(),
            wants_json: rng.random(),
            max_tokens: rng.random_bool(0.5).then(|| rng.random()),
            prompt_tokens: rng.random(),
            ..Default::default()
        });
        assert!((0.0..=1.0).contains(&c.strong_score), "{}", c.strong_score);
    }
}

/// Text a client controls, at its worst: control characters, NUL, quotes
/// and SQL, invalid-looking escapes, emoji, and lengths up to 64 KiB.
fn hostile_text(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "\u{0}",
        "\n",
        "\r\n",
        "\t",
        "\u{7f}",
        "\u{1b}[31m",
        "'",
        "\"",
        "\\",
        "'); DROP TABLE tollgate_ledger; --",
        "%s%n",
        "\u{fffd}",
        "🙂",
        "总结",
        "é",
        "gpt-4",
        "\u{202e}",
        "$1",
        "?",
        "NULL",
    ];
    let n = match rng.random_range(0..10) {
        0 => rng.random_range(1_000..16_000),
        _ => rng.random_range(0..12),
    };
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn random_rows(seed: u64, n: u64) -> Vec<tollgate::ledger::Row> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut r = tollgate::ledger::Row::opened(
                1_764_288_000_000 + i64::try_from(i).unwrap(),
                &hostile_text(&mut rng),
                &format!("key-{i}"),
                &hostile_text(&mut rng),
            );
            r.requested_model = hostile_text(&mut rng);
            r.model = hostile_text(&mut rng);
            r.route = hostile_text(&mut rng);
            r.prompt_tokens = if rng.random_bool(0.1) {
                u64::MAX
            } else {
                rng.random_range(0..100_000)
            };
            r.completion_tokens = rng.random();
            r.cost = tollgate::money::Nanos(rng.random_range(0..1_000_000_000));
            r.status = rng.random();
            r.latency_ms = rng.random();
            r.ttft_ms = rng.random_bool(0.5).then(|| rng.random());
            r.strong_milli = rng.random_bool(0.5).then(|| rng.random());
            r
        })
        .collect()
}

fn every_random_row_lands(target: tollgate::policy::LedgerTarget) {
    use tollgate::ledger::{open, Ledger, Query};
    let rows = random_rows(4, 2_000);
    let ledger = Ledger::start(target.clone(), None).unwrap().unwrap();
    for r in &rows {
        ledger.record(r.clone());
    }
    assert!(ledger.flush(std::time::Duration::from_secs(30)));
    ledger.close();
    let mut store = open(&target).unwrap().unwrap();
    let all = Query {
        from: 0,
        to: i64::MAX,
        by: vec![tollgate::ledger::Dim::Model],
    };
    let groups = store.report(&all).unwrap(); // sums must not overflow
    let landed: u64 = groups.iter().map(|g| g.requests).sum();
    assert_eq!(landed, rows.len() as u64);
    for g in &groups {
        let name = &g.keys[0];
        assert!(name.len() <= tollgate::ledger::MAX_TEXT && !name.contains('\u{0}'));
        assert!(g.prompt_tokens <= g.requests * tollgate::ledger::MAX_TOKENS);
    }
}

#[test]
fn random_rows_all_reach_the_sqlite_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.sqlite").display().to_string();
    every_random_row_lands(tollgate::policy::LedgerTarget::Sqlite(path));
}

#[test]
fn random_rows_all_reach_the_postgres_ledger() {
    every_random_row_lands(support::pg::PgSchema::new("tollgate_fuzz").target());
}
