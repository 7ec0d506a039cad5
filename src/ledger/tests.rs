//! Unit tests of `ledger`.

use super::*;

pub fn row(i: u64, team: &str, model: &str, cost: u64) -> Row {
    Row {
        ts: 1_764_288_000_000 + i64::try_from(i).unwrap() * 1000,
        request_id: format!("req_{i}"),
        key_id: format!("key-{}", i % 2),
        team: team.into(),
        task: "chat".into(),
        complexity: "low".into(),
        route: "r".into(),
        requested_model: "auto".into(),
        model: model.into(),
        prompt_tokens: 10,
        completion_tokens: 5,
        cached_tokens: 0,
        cost: Nanos(cost),
        baseline_cost: Nanos(cost * 10),
        cache: if i.is_multiple_of(3) { "hit" } else { "miss" }.into(),
        saved: Nanos::ZERO,
        status: 200,
        latency_ms: 12,
        ttft_ms: Some(3),
        ending: "complete".into(),
        strong_milli: Some(400),
        risk_milli: if model == "gpt-4" { 0 } else { 400 },
        certainty: "exact".into(),
        ..Row::opened(0, "", "", "")
    }
}

#[test]
fn writer_batches_and_flushes_everything_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.sqlite").display().to_string();
    let target = LedgerTarget::Sqlite(path);
    let ledger = Ledger::start(target.clone(), None).unwrap().unwrap();
    for i in 0..1000 {
        ledger.record(row(i, "web", "gpt-4", 7));
    }
    ledger.close();
    let mut store = open(&target).unwrap().unwrap();
    let total = store
        .report(&Query {
            from: 0,
            to: i64::MAX,
            by: vec![],
        })
        .unwrap();
    assert_eq!(total[0].requests, 1000);
    assert_eq!(total[0].cost, Nanos(7000));
    assert_eq!((total[0].scored, total[0].risk_milli), (1000, 0));
}

#[test]
fn quality_retained_is_the_share_without_expected_loss() {
    let g = |scored, risk_milli| Group {
        scored,
        risk_milli,
        ..Group::default()
    };
    assert_eq!(g(0, 0).quality_retained_tenths(), None);
    assert_eq!(g(4, 0).quality_retained_tenths(), Some(1000));
    // Four requests, two sent to a weak model at strong_score 0.3: 85%.
    assert_eq!(g(4, 600).quality_retained_tenths(), Some(850));
    assert_eq!(g(3, 1000).quality_retained_tenths(), Some(667));
    assert_eq!(g(1, 5000).quality_retained_tenths(), Some(0));
}

mod journal {
    use std::time::Duration;

    use super::super::journal::{Journal, Line};
    use super::*;

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn costs(target: &LedgerTarget) -> (u64, Nanos) {
        let mut store = open(target).unwrap().unwrap();
        let g = store
            .report(&Query {
                from: 0,
                to: i64::MAX,
                by: vec![],
            })
            .unwrap();
        g.first().map_or((0, Nanos::ZERO), |g| (g.requests, g.cost))
    }

    #[test]
    fn a_dead_process_journal_is_replayed_once_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = LedgerTarget::Sqlite(dir.path().join("l.sqlite").display().to_string());
        let jdir = dir.path().join("l.sqlite.journal");
        // Committed before the crash: must not be inserted twice.
        open(&target)
            .unwrap()
            .unwrap()
            .insert(&[row(0, "web", "gpt-4", 1)])
            .unwrap();

        let (mut j, rec) = Journal::open(&jdir).unwrap();
        assert!(rec.is_empty());
        j.append(Line::Final, &row(0, "web", "gpt-4", 1));
        // In flight at the crash: kept at its reservation.
        let r1 = row(1, "web", "gpt-4", 0);
        j.append(
            Line::Provisional,
            &r1.interrupted("gpt-4", (10, 16), Nanos(20), Nanos(20)),
        );
        j.append(Line::Final, &row(2, "web", "gpt-4", 300));
        // Reserved, then settled for less: the row wins.
        let r3 = row(3, "web", "gpt-4", 4000);
        j.append(
            Line::Provisional,
            &r3.interrupted("gpt-4", (10, 16), Nanos(9000), Nanos(0)),
        );
        j.append(Line::Final, &r3);
        drop(j); // the process dies: its lock goes, its files stay

        let ledger = Ledger::start(target.clone(), Some(&jdir)).unwrap().unwrap();
        assert!(ledger.flush(Duration::from_secs(5)));
        assert_eq!(costs(&target), (4, Nanos(1 + 20 + 300 + 4000)));
        assert_eq!(
            files(&jdir).len(),
            2,
            "only the new process's lock and segment"
        );
        ledger.close();
        assert!(files(&jdir).is_empty(), "a clean close leaves no journal");
        // Nothing is replayed a second time.
        let again = Ledger::start(target.clone(), Some(&jdir)).unwrap().unwrap();
        again.close();
        assert_eq!(costs(&target), (4, Nanos(4321)));
    }

    #[test]
    fn a_live_process_journal_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (mut live, _) = Journal::open(dir.path()).unwrap();
        live.append(Line::Final, &row(1, "web", "gpt-4", 5));
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert!(rec.is_empty(), "its lock is held");
        drop(live);
        let (_, rec) = Journal::open(dir.path()).unwrap();
        assert_eq!(rec.rows.len(), 1);
    }

    #[test]
    fn rotation_carries_open_reservations_forward() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path()).unwrap();
        let open_one = row(0, "web", "gpt-4", 0).interrupted("gpt-4", (1, 2), Nanos(77), Nanos(0));
        j.append(Line::Provisional, &open_one);
        let mut retired = 0;
        let mut i = 1;
        while retired < 2 {
            if let Some(old) = j.append(Line::Final, &row(i, "web", "gpt-4", 1)) {
                std::fs::remove_file(old).unwrap(); // as the writer does once committed
                retired += 1;
            }
            i += 1;
        }
        j.append(Line::Final, &row(i, "web", "gpt-4", 1));
        drop(j);
        let (_, rec) = Journal::open(dir.path()).unwrap();
        let kept = rec.rows.iter().find(|r| r.request_id == "req_0").unwrap();
        assert_eq!(
            (kept.ending.as_str(), kept.cost),
            ("interrupted", Nanos(77))
        );
        assert!(rec.rows.iter().any(|r| r.request_id == format!("req_{i}")));
        assert!(
            rec.rows.len() < i as usize / 2,
            "retired segments are not replayed"
        );
    }
}
