//! The SQL both stores share.

use super::Query;

/// The ledger's table and index.
pub(super) fn schema() -> &'static str {
    "CREATE TABLE IF NOT EXISTS tollgate_ledger (
        ts BIGINT NOT NULL,
        day TEXT NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT NOT NULL,
        team TEXT NOT NULL,
        task TEXT NOT NULL,
        complexity TEXT NOT NULL,
        route TEXT NOT NULL,
        requested_model TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nanos BIGINT NOT NULL,
        baseline_nanos BIGINT NOT NULL,
        cache TEXT NOT NULL,
        status INTEGER NOT NULL,
        latency_ms BIGINT NOT NULL,
        ttft_ms BIGINT,
        ending TEXT NOT NULL,
        saved_nanos BIGINT NOT NULL DEFAULT 0,
        strong_milli INTEGER,
        risk_milli BIGINT NOT NULL DEFAULT 0,
        certainty TEXT NOT NULL DEFAULT 'exact',
        cached_tokens BIGINT NOT NULL DEFAULT 0,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        audio_prompt_tokens BIGINT NOT NULL DEFAULT 0,
        reasoning_tokens BIGINT NOT NULL DEFAULT 0,
        audio_completion_tokens BIGINT NOT NULL DEFAULT 0,
        prompt_cache_saved_nanos BIGINT NOT NULL DEFAULT 0,
        price TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS tollgate_ledger_ts ON tollgate_ledger (ts)"
}

pub(super) const COLUMNS: usize = 30;

/// Columns added after the first release, for ledgers made before them.
pub(super) const ADDED: [(&str, &str); 11] = [
    ("saved_nanos", "BIGINT NOT NULL DEFAULT 0"),
    ("strong_milli", "INTEGER"),
    ("risk_milli", "BIGINT NOT NULL DEFAULT 0"),
    ("certainty", "TEXT NOT NULL DEFAULT 'exact'"),
    ("cached_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("cache_write_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("audio_prompt_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("reasoning_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("audio_completion_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("prompt_cache_saved_nanos", "BIGINT NOT NULL DEFAULT 0"),
    ("price", "TEXT NOT NULL DEFAULT ''"),
];

/// `p(i)` renders the i-th placeholder.
pub(super) fn insert_sql(p: fn(usize) -> String) -> String {
    let params: Vec<String> = (1..=COLUMNS).map(p).collect();
    format!(
        "INSERT INTO tollgate_ledger (ts, day, request_id, key_id, team, task, complexity, route, \
         requested_model, model, prompt_tokens, completion_tokens, cost_nanos, baseline_nanos, \
         cache, status, latency_ms, ttft_ms, ending, saved_nanos, strong_milli, risk_milli, certainty, \
         cached_tokens, cache_write_tokens, audio_prompt_tokens, reasoning_tokens, \
         audio_completion_tokens, prompt_cache_saved_nanos, price) \
         VALUES ({})",
        params.join(", ")
    )
}

pub(super) fn report_sql(q: &Query, p: fn(usize) -> String) -> String {
    let dims: Vec<&str> = q.by.iter().map(|d| d.column()).collect();
    let select = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
    let group = if dims.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", dims.join(", "))
    };
    format!(
        "SELECT {select}COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(cost_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(baseline_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(saved_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN strong_milli IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(risk_milli), 0) AS BIGINT), \
         CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(prompt_cache_saved_nanos), 0) AS BIGINT), \
         CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN certainty = 'unpriced' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN certainty = 'estimated' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM tollgate_ledger WHERE ts >= {} AND ts < {}{group}",
        p(1),
        p(2)
    )
}

pub(super) const SEEN_SQL: &str = "SELECT request_id, ts, key_id FROM tollgate_ledger WHERE ts >= ";

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
