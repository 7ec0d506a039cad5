//! The embedded ledger: one SQLite file in WAL mode.

use rusqlite::{params, Connection};

use super::{
    insert_sql, journal, learnt, report_sql, schema, to_i64, to_u64, Group, Query, Row, Store,
    ADDED, SEEN_SQL,
};
use crate::money::Nanos;

pub struct Sqlite {
    conn: Connection,
}

fn placeholder(i: usize) -> String {
    format!("?{i}")
}

impl Sqlite {
    pub fn open(path: &str) -> anyhow::Result<Sqlite> {
        let conn = Connection::open(path)
            .map_err(|e| anyhow::anyhow!("opening the ledger {path}: {e}"))?;
        // WAL: reports read while the writer writes; a busy file waits.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(schema())?;
        conn.execute_batch(learnt::TABLE)?;
        // Ledgers made before a column existed get it.
        for (name, ty) in ADDED {
            let has = conn
                .prepare(&format!("SELECT {name} FROM tollgate_ledger LIMIT 0"))
                .is_ok();
            if !has {
                conn.execute_batch(&format!(
                    "ALTER TABLE tollgate_ledger ADD COLUMN {name} {ty}"
                ))?;
            }
        }
        Ok(Sqlite { conn })
    }
}

impl Store for Sqlite {
    fn teach(&mut self, taught: &[learnt::Taught]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&learnt::upsert("MAX", placeholder))?;
            for t in taught {
                let l = &t.learnt;
                stmt.execute(params![
                    t.provider,
                    t.model,
                    l.shape.name(),
                    to_i64(l.prompt_milli),
                    to_i64(l.completion_milli),
                    to_i64(l.settled),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn taught(&mut self) -> anyhow::Result<Vec<learnt::Taught>> {
        let mut stmt = self.conn.prepare(learnt::SELECT)?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(learnt::taught(r?));
        }
        Ok(out)
    }

    fn insert(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(&insert_sql(placeholder))?;
            for r in rows {
                stmt.execute(params![
                    r.ts,
                    crate::clock::day_string(r.ts),
                    r.request_id,
                    r.key_id,
                    r.team,
                    r.task,
                    r.complexity,
                    r.route,
                    r.requested_model,
                    r.model,
                    to_i64(r.prompt_tokens),
                    to_i64(r.completion_tokens),
                    to_i64(r.cost.0),
                    to_i64(r.baseline_cost.0),
                    r.cache,
                    r.status,
                    to_i64(r.latency_ms),
                    r.ttft_ms.map(to_i64),
                    r.ending,
                    to_i64(r.saved.0),
                    r.strong_milli,
                    to_i64(r.risk_milli),
                    r.certainty,
                    to_i64(r.cached_tokens),
                    to_i64(r.cache_write_tokens),
                    to_i64(r.audio_prompt_tokens),
                    to_i64(r.reasoning_tokens),
                    to_i64(r.audio_completion_tokens),
                    to_i64(r.prompt_cache_saved.0),
                    r.price,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn report(&mut self, q: &Query) -> anyhow::Result<Vec<Group>> {
        let mut stmt = self.conn.prepare(&report_sql(q, placeholder))?;
        let n = q.by.len();
        let rows = stmt.query_map(params![q.from, q.to], |r| {
            let mut keys = Vec::with_capacity(n);
            for i in 0..n {
                keys.push(r.get::<_, String>(i)?);
            }
            Ok(Group {
                keys,
                requests: to_u64(r.get(n)?),
                prompt_tokens: to_u64(r.get(n + 1)?),
                completion_tokens: to_u64(r.get(n + 2)?),
                cost: Nanos(to_u64(r.get(n + 3)?)),
                baseline_cost: Nanos(to_u64(r.get(n + 4)?)),
                cache_hits: to_u64(r.get(n + 5)?),
                cache_saved: Nanos(to_u64(r.get(n + 6)?)),
                scored: to_u64(r.get(n + 7)?),
                risk_milli: to_u64(r.get(n + 8)?),
                cached_tokens: to_u64(r.get(n + 9)?),
                prompt_cache_saved: Nanos(to_u64(r.get(n + 10)?)),
                reasoning_tokens: to_u64(r.get(n + 11)?),
                unpriced: to_u64(r.get(n + 12)?),
                estimated: to_u64(r.get(n + 13)?),
            })
        })?;
        let mut out = Vec::new();
        for g in rows {
            out.push(g?);
        }
        // An empty ledger has one all-zero total row in SQL; drop it.
        out.retain(|g| g.requests > 0);
        Ok(out)
    }

    /// A constraint, a value of the wrong type or over SQLite's limits.
    fn rejects(&self, e: &anyhow::Error) -> bool {
        use rusqlite::ErrorCode::{ConstraintViolation, TooBig, TypeMismatch};
        matches!(
            e.downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code),
            Some(ConstraintViolation | TooBig | TypeMismatch)
        )
    }

    fn seen_since(&mut self, from: i64) -> anyhow::Result<std::collections::HashSet<String>> {
        let mut stmt = self.conn.prepare(&format!("{SEEN_SQL}?1"))?;
        let keys = stmt.query_map(params![from], |r| {
            Ok(journal::key(
                &r.get::<_, String>(0)?,
                r.get(1)?,
                &r.get::<_, String>(2)?,
            ))
        })?;
        Ok(keys.collect::<Result<_, _>>()?)
    }
}
