//! The two ledger stores pass the same test body: SQLite (a temp file)
//! and PostgreSQL (a fresh schema in the database at
//! `TOLLGATE_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432/test).
#![allow(clippy::unwrap_used)]

use tollgate::ledger::{open, Dim, Ledger, Query, Row};
use tollgate::money::Nanos;
use tollgate::policy::LedgerTarget;
use tollgate::report::build;
use tollgate::secret::Secret;

use std::path::Path;

mod support;
use support::pg::PgSchema;

fn day(s: &str) -> i64 {
    tollgate::clock::parse_day(s).unwrap()
}

fn row(i: u64) -> Row {
    let models = ["gpt-4", "gpt-3.5-turbo", "smollm2"];
    Row {
        // 2026-11-27 00:00 UTC, one row every 15 minutes: three days.
        ts: day("2026-11-27") + i64::try_from(i).unwrap() * 900_000,
        request_id: format!("req_{i}"),
        key_id: format!("key-{}", i % 4),
        team: if i.is_multiple_of(2) { "web" } else { "data" }.into(),
        task: if i.is_multiple_of(3) { "code" } else { "chat" }.into(),
        complexity: "low".into(),
        route: "main".into(),
        requested_model: "auto".into(),
        model: models[usize::try_from(i % 3).unwrap()].into(),
        prompt_tokens: 10 + i,
        completion_tokens: i % 50,
        cached_tokens: 0,
        cost: Nanos(1_000 * (i % 7) + 13),
        baseline_cost: Nanos(20_000 + i),
        cache: if i.is_multiple_of(5) { "hit" } else { "miss" }.into(),
        saved: Nanos(if i.is_multiple_of(5) { 500 } else { 0 }),
        status: if i.is_multiple_of(11) { 502 } else { 200 },
        latency_ms: 40 + i,
        ttft_ms: if i.is_multiple_of(2) { Some(10) } else { None },
        ending: "complete".into(),
        strong_milli: if i.is_multiple_of(4) { None } else { Some(300) },
        risk_milli: if i.is_multiple_of(3) { 0 } else { 300 },
        certainty: "exact".into(),
        cache_write_tokens: 0,
        audio_prompt_tokens: 0,
        reasoning_tokens: i % 3,
        audio_completion_tokens: 0,
        prompt_cache_saved: Nanos::ZERO,
        price: r#"{"input":1000,"output":2000}"#.into(),
    }
}

fn exercise(target: LedgerTarget) {
    let ledger = Ledger::start(target.clone(), None).unwrap().unwrap();
    let rows: Vec<Row> = (0..288).map(row).collect();
    for r in &rows {
        ledger.record(r.clone());
    }
    ledger.close();
    let mut store = open(&target).unwrap().unwrap();
    let all = Query {
        from: 0,
        to: i64::MAX,
        by: vec![],
    };
    let total = &store.report(&all).unwrap()[0];
    assert_eq!(total.requests, 288);
    assert_eq!(
        total.cost,
        Nanos(rows.iter().map(|r| r.cost.0).sum::<u64>())
    );
    assert_eq!(
        total.baseline_cost,
        Nanos(rows.iter().map(|r| r.baseline_cost.0).sum::<u64>())
    );
    assert_eq!(
        total.prompt_tokens,
        rows.iter().map(|r| r.prompt_tokens).sum::<u64>()
    );
    assert_eq!(
        total.cache_hits,
        rows.iter().filter(|r| r.cache == "hit").count() as u64
    );
    assert_eq!(
        total.cache_saved,
        Nanos(rows.iter().map(|r| r.saved.0).sum::<u64>())
    );
    assert_eq!(
        (total.scored, total.risk_milli),
        (
            rows.iter().filter(|r| r.strong_milli.is_some()).count() as u64,
            rows.iter().map(|r| r.risk_milli).sum::<u64>()
        )
    );
    // Every grouping sums to the total, and each group is exact.
    for by in [
        vec![Dim::Model],
        vec![Dim::Day],
        vec![Dim::Team, Dim::Key],
        vec![Dim::Task, Dim::Model],
        vec![Dim::Route],
    ] {
        let r = build(store.as_mut(), &by, 0, i64::MAX).unwrap();
        assert_eq!(r.total, *total, "{by:?}");
        for g in &r.groups {
            let expected: u64 = rows
                .iter()
                .filter(|row| {
                    by.iter().zip(&g.keys).all(|(d, k)| match d {
                        Dim::Model => row.model == *k,
                        Dim::Day => tollgate::clock::day_string(row.ts) == *k,
                        Dim::Team => row.team == *k,
                        Dim::Key => row.key_id == *k,
                        Dim::Task => row.task == *k,
                        Dim::Route => row.route == *k,
                    })
                })
                .map(|r| r.cost.0)
                .sum();
            assert_eq!(g.cost.0, expected, "{by:?} {:?}", g.keys);
        }
    }
    let days = build(store.as_mut(), &[Dim::Day], 0, i64::MAX).unwrap();
    let names: Vec<&str> = days.groups.iter().map(|g| g.keys[0].as_str()).collect();
    assert_eq!(names, ["2026-11-27", "2026-11-28", "2026-11-29"]);
    assert!(days.groups.iter().all(|g| g.requests == 96));
    // Time ranges are half-open: [from, to).
    let day2 = Query {
        from: day("2026-11-28"),
        to: day("2026-11-29"),
        by: vec![],
    };
    assert_eq!(store.report(&day2).unwrap()[0].requests, 96);
    let none = Query {
        from: 0,
        to: 1,
        by: vec![Dim::Model],
    };
    assert!(store.report(&none).unwrap().is_empty());
    replay_a_dead_process_journal(&target, total.requests, total.cost);
}

/// A journal left by a process that died (its lock file is not held):
/// a row already committed, one that was not, and a reservation whose
/// request never settled. The next start inserts the last two, once.
fn replay_a_dead_process_journal(target: &LedgerTarget, requests: u64, cost: Nanos) {
    let dir = tempfile::tempdir().unwrap();
    let line = |kind: &str, r: &Row| format!("{kind} {}\n", serde_json::to_string(r).unwrap());
    let open_one = row(1001).interrupted("gpt-4", (20, 64), Nanos(7_777), Nanos(7_777));
    std::fs::write(dir.path().join("4242-1-0.lock"), "").unwrap();
    std::fs::write(
        dir.path().join("4242-1-0.0.log"),
        line("S", &row(0)) + &line("R", &open_one) + &line("S", &row(1000)),
    )
    .unwrap();
    for _ in 0..2 {
        let ledger = Ledger::start(target.clone(), Some(dir.path()))
            .unwrap()
            .unwrap();
        ledger.close();
    }
    let mut store = open(target).unwrap().unwrap();
    let all = Query {
        from: 0,
        to: i64::MAX,
        by: vec![],
    };
    let total = &store.report(&all).unwrap()[0];
    assert_eq!(total.requests, requests + 2);
    assert_eq!(total.cost, Nanos(cost.0 + row(1000).cost.0 + 7_777));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn sqlite_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite").display().to_string();
    exercise(LedgerTarget::Sqlite(path));
}

/// Rows a client could poison (a NUL or a 1 MiB model name, absurd
/// token counts) are stored cleaned; a row the store itself rejects (here
/// a rule an operator added: no team `poison`) is moved to `aside`, and
/// none of them holds back the good rows behind it.
fn hostile_rows_never_hold_the_ledger(target: &LedgerTarget, journal: &Path, aside: &Path) {
    let rejected_before = tollgate::ledger::rejected_rows();
    let ledger = Ledger::start(target.clone(), Some(journal))
        .unwrap()
        .unwrap();
    let named = |i: u64, model: &str| Row {
        model: model.into(),
        requested_model: model.into(),
        ..row(i)
    };
    ledger.record(named(0, "\u{0}"));
    ledger.record(named(1, &"m".repeat(1 << 20)));
    ledger.record(Row {
        team: "poison".into(),
        ..row(2)
    });
    ledger.record(Row {
        prompt_tokens: u64::MAX,
        completion_tokens: u64::MAX / 3,
        ..named(3, "absurd")
    });
    for i in 4..9 {
        ledger.record(named(i, "good"));
    }
    assert!(
        ledger.flush(std::time::Duration::from_secs(5)),
        "the writer is not stuck"
    );
    ledger.close();
    let mut store = open(target).unwrap().unwrap();
    let r = build(store.as_mut(), &[Dim::Model], 0, i64::MAX).unwrap();
    let mut models: Vec<(String, u64)> = r
        .groups
        .iter()
        .map(|g| (g.keys[0].clone(), g.requests))
        .collect();
    models.sort();
    assert_eq!(
        models,
        [
            ("absurd".into(), 1),
            ("good".into(), 5),
            ("m".repeat(256), 1),
            ("\u{fffd}".into(), 1)
        ]
    );
    let absurd = r.groups.iter().find(|g| g.keys[0] == "absurd").unwrap();
    assert_eq!(absurd.prompt_tokens, tollgate::ledger::MAX_TOKENS);
    let set_aside = std::fs::read_to_string(aside).unwrap();
    let lines: Vec<Row> = set_aside
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0].team.as_str(), lines[0].request_id.as_str()),
        ("poison", "req_2")
    );
    assert!(tollgate::ledger::rejected_rows() > rejected_before);
}

#[test]
fn sqlite_ledger_survives_hostile_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite").display().to_string();
    let target = LedgerTarget::Sqlite(path.clone());
    drop(open(&target).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER no_poison BEFORE INSERT ON tollgate_ledger WHEN NEW.team = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'constraint failed: no poison'); END",
        )
        .unwrap();
    let journal = dir.path().join("journal");
    let aside = std::path::PathBuf::from(format!("{path}.rejected.jsonl"));
    hostile_rows_never_hold_the_ledger(&target, &journal, &aside);
}

#[test]
fn postgres_ledger_survives_hostile_rows() {
    let mut pg = PgSchema::new("tollgate_hostile");
    let target = pg.target();
    drop(open(&target).unwrap());
    pg.admin
        .batch_execute(&format!(
            "ALTER TABLE {}.tollgate_ledger ADD CONSTRAINT no_poison CHECK (team <> 'poison')",
            pg.name
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let aside = dir.path().join("rejected.jsonl");
    hostile_rows_never_hold_the_ledger(&target, dir.path(), &aside);
}

#[test]
fn postgres_ledger() {
    exercise(PgSchema::new("tollgate_test").target());
}

/// Whether the ledger's connection (found by its application_name) is
/// encrypted, as the server sees it.
fn encrypted(admin: &mut postgres::Client, app: &str) -> Option<bool> {
    admin
        .query_opt(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = $1",
            &[&app],
        )
        .unwrap()
        .map(|r| r.get(0))
}

#[test]
fn postgres_ledger_over_tls_with_each_sslmode() {
    let base = std::env::var("TOLLGATE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    let ssl: String = admin.query_one("SHOW ssl", &[]).unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "this test needs the PostgreSQL at {base} with ssl = on"
    );
    // The server's own certificate (CN and SAN `localhost`, self-signed)
    // is the trusted root for the verifying modes.
    let cert: String = admin.query_one("SHOW ssl_cert_file", &[]).unwrap().get(0);
    let (user_at, rest) = base
        .strip_prefix("postgres://")
        .unwrap()
        .split_once('@')
        .unwrap();
    let (port, db) = {
        let hostport = rest.split('/').next().unwrap();
        let port = hostport.rsplit_once(':').map_or("5432", |(_, p)| p);
        (
            port.to_string(),
            rest.split('/').nth(1).unwrap_or("test").to_string(),
        )
    };
    let url = |host: &str, app: &str, params: &str| {
        format!("postgres://{user_at}@{host}:{port}/{db}?application_name={app}&{params}")
    };
    let pid = std::process::id();
    let cases = [
        ("localhost", "sslmode=verify-full&sslrootcert={cert}", true),
        ("127.0.0.1", "sslmode=verify-ca&sslrootcert={cert}", true),
        ("127.0.0.1", "sslmode=require", true),
        ("127.0.0.1", "", true),
        ("127.0.0.1", "sslmode=disable", false),
    ];
    for (i, (host, params, tls)) in cases.into_iter().enumerate() {
        let app = format!("tollgate_tls_{pid}_{i}");
        let target = LedgerTarget::Postgres(Secret::new(url(
            host,
            &app,
            &params.replace("{cert}", &cert),
        )));
        let store = open(&target).unwrap_or_else(|e| panic!("{params}: {e:#}"));
        assert_eq!(encrypted(&mut admin, &app), Some(tls), "{params}");
        drop(store);
    }
    // A name the certificate does not carry, or a root that did not sign
    // it, is refused by the modes that check them.
    let refused = [
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={cert}"),
            "not valid for name",
        ),
        (
            "localhost",
            "sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt".to_string(),
            "UnknownIssuer",
        ),
        (
            "localhost",
            "sslmode=verify-full&sslrootcert=/no/such.pem".to_string(),
            "/no/such.pem",
        ),
        (
            "localhost",
            "sslmode=verify-everything".to_string(),
            "unknown sslmode",
        ),
    ];
    for (host, params, why) in refused {
        let target =
            LedgerTarget::Postgres(Secret::new(url(host, "tollgate_tls_refused", &params)));
        let e = match open(&target) {
            Ok(_) => panic!("{params} connected"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains(why), "{params}: {e}");
    }
}

/// The ledger table as the first release made it, with one row.
const FIRST_RELEASE: &str = "CREATE TABLE tollgate_ledger (
    ts BIGINT NOT NULL, day TEXT NOT NULL, request_id TEXT NOT NULL, key_id TEXT NOT NULL,
    team TEXT NOT NULL, task TEXT NOT NULL, complexity TEXT NOT NULL, route TEXT NOT NULL,
    requested_model TEXT NOT NULL, model TEXT NOT NULL, prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL, cost_nanos BIGINT NOT NULL, baseline_nanos BIGINT NOT NULL,
    cache TEXT NOT NULL, status INTEGER NOT NULL, latency_ms BIGINT NOT NULL, ttft_ms BIGINT,
    ending TEXT NOT NULL);
  INSERT INTO tollgate_ledger VALUES (1764288000000, '2025-11-28', 'req_old', 'key-0', 'web',
    'chat', 'low', 'main', 'auto', 'gpt-4', 10, 5, 600000, 600000, 'miss', 200, 40, 10, 'complete')";

/// Opens a ledger made by the first release, adds rows with every count
/// and the price they were charged at: the old row is still there, with
/// the new columns at their defaults, and a report sums both.
fn migrates_in_place(target: LedgerTarget) {
    let mut store = open(&target).unwrap().unwrap();
    let mut new = row(1);
    new.cached_tokens = 7;
    new.prompt_cache_saved = Nanos(123);
    store.insert(&[new]).unwrap();
    let groups = store
        .report(&Query {
            from: 0,
            to: i64::MAX,
            by: vec![Dim::Model],
        })
        .unwrap();
    let requests: u64 = groups.iter().map(|g| g.requests).sum();
    assert_eq!(requests, 2, "no row lost: {groups:?}");
    let total = |f: fn(&tollgate::ledger::Group) -> u64| groups.iter().map(f).sum::<u64>();
    assert_eq!(total(|g| g.cost.0), 600_000 + row(1).cost.0);
    assert_eq!(total(|g| g.cached_tokens), 7);
    assert_eq!(total(|g| g.prompt_cache_saved.0), 123);
    assert_eq!(total(|g| g.reasoning_tokens), 1);
    // Opening it again is a no-op.
    drop(store);
    open(&target).unwrap().unwrap();
}

#[test]
fn a_first_release_sqlite_ledger_migrates_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite").display().to_string();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(FIRST_RELEASE)
        .unwrap();
    migrates_in_place(LedgerTarget::Sqlite(path.clone()));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (certainty, price): (String, String) = conn
        .query_row(
            "SELECT certainty, price FROM tollgate_ledger WHERE request_id = 'req_old'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((certainty.as_str(), price.as_str()), ("exact", ""));
}

#[test]
fn a_first_release_postgres_ledger_migrates_in_place() {
    let mut pg = PgSchema::new("tollgate_migrate");
    pg.admin
        .batch_execute(&format!("SET search_path TO {}; {FIRST_RELEASE}", pg.name))
        .unwrap();
    migrates_in_place(pg.target());
    let price: String = pg
        .admin
        .query_one(
            &format!(
                "SELECT price FROM {}.tollgate_ledger WHERE request_id = 'req_1'",
                pg.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(price, r#"{"input":1000,"output":2000}"#);
    let _ = pg.admin.batch_execute("SET search_path TO DEFAULT");
}
