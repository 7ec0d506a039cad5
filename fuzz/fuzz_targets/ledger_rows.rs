//! Ledger rows built from arbitrary bytes (the fields a client controls:
//! model names, request ids; and the token counts an upstream reports),
//! written through the ledger writer into a SQLite file: every row must
//! land, cleaned, and the writer must never be stuck.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tollgate::ledger::{Ledger, Row, MAX_TEXT};
use tollgate::policy::LedgerTarget;

fn ledger() -> &'static Ledger {
    static L: OnceLock<std::sync::Arc<Ledger>> = OnceLock::new();
    L.get_or_init(|| {
        let path = std::env::temp_dir().join(format!("tollgate-fuzz-{}.sqlite", std::process::id()));
        let target = LedgerTarget::Sqlite(path.display().to_string());
        Ledger::start(target, None).unwrap().unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let mut next = || parts.next().unwrap_or("").to_string();
    let mut row = Row::opened(1_764_288_000_000, &next(), &next(), &next());
    row.requested_model = next();
    row.model = next();
    row.route = next();
    let n = |i: usize| data.get(i..i + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
    row.prompt_tokens = n(0);
    row.completion_tokens = n(8);
    let mut cleaned = row.clone();
    cleaned.sanitize();
    assert!(cleaned.model.len() <= MAX_TEXT && !cleaned.model.contains('\u{0}'));
    let l = ledger();
    l.record(row);
    assert!(l.flush(Duration::from_secs(10)), "the ledger writer is stuck");
});
