//! The shared ledger for several replicas: PostgreSQL, through the
//! blocking client on the ledger's writer thread (never on the async
//! request path).

use postgres::{Client, NoTls};

use super::tls;
use super::{
    insert_sql, journal, learnt, report_sql, schema, to_i64, to_u64, Group, Query, Row, Store,
    ADDED, SEEN_SQL,
};
use crate::money::Nanos;

pub struct Postgres {
    client: Client,
}

fn placeholder(i: usize) -> String {
    format!("${i}")
}

impl Postgres {
    /// Connects with libpq's `sslmode` (and `sslrootcert`) from the URL
    /// (`ledger::tls`); the URL may also carry `?options=-c search_path=…`.
    pub fn connect(url: &str) -> anyhow::Result<Postgres> {
        let split = tls::split(url)?;
        let config = tls::client_config(split.mode, split.root_cert.as_deref())?;
        let connected = match config {
            None => Client::connect(&split.url, NoTls),
            Some(c) => {
                Client::connect(&split.url, tokio_postgres_rustls::MakeRustlsConnect::new(c))
            }
        };
        let mut client = connected.map_err(|e| {
            let mut why = e.to_string();
            let mut cur = std::error::Error::source(&e);
            while let Some(c) = cur {
                why = format!("{why}: {c}");
                cur = c.source();
            }
            anyhow::anyhow!("connecting to the PostgreSQL ledger: {why}")
        })?;
        client.batch_execute(schema())?;
        client.batch_execute(learnt::TABLE)?;
        for (name, ty) in ADDED {
            client.batch_execute(&format!(
                "ALTER TABLE tollgate_ledger ADD COLUMN IF NOT EXISTS {name} {ty}"
            ))?;
        }
        Ok(Postgres { client })
    }
}

impl Store for Postgres {
    fn teach(&mut self, taught: &[learnt::Taught]) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        let stmt = tx.prepare(&learnt::upsert("GREATEST", placeholder))?;
        for t in taught {
            let l = &t.learnt;
            tx.execute(
                &stmt,
                &[
                    &t.provider,
                    &t.model,
                    &l.shape.name(),
                    &to_i64(l.prompt_milli),
                    &to_i64(l.completion_milli),
                    &to_i64(l.settled),
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn taught(&mut self) -> anyhow::Result<Vec<learnt::Taught>> {
        let rows = self.client.query(learnt::SELECT, &[])?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(learnt::taught((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            )));
        }
        Ok(out)
    }

    fn insert(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let mut tx = self.client.transaction()?;
        let stmt = tx.prepare(&insert_sql(placeholder))?;
        for r in rows {
            let day = crate::clock::day_string(r.ts);
            tx.execute(
                &stmt,
                &[
                    &r.ts,
                    &day,
                    &r.request_id,
                    &r.key_id,
                    &r.team,
                    &r.task,
                    &r.complexity,
                    &r.route,
                    &r.requested_model,
                    &r.model,
                    &to_i64(r.prompt_tokens),
                    &to_i64(r.completion_tokens),
                    &to_i64(r.cost.0),
                    &to_i64(r.baseline_cost.0),
                    &r.cache,
                    &i32::from(r.status),
                    &to_i64(r.latency_ms),
                    &r.ttft_ms.map(to_i64),
                    &r.ending,
                    &to_i64(r.saved.0),
                    &r.strong_milli.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
                    &to_i64(r.risk_milli),
                    &r.certainty,
                    &to_i64(r.cached_tokens),
                    &to_i64(r.cache_write_tokens),
                    &to_i64(r.audio_prompt_tokens),
                    &to_i64(r.reasoning_tokens),
                    &to_i64(r.audio_completion_tokens),
                    &to_i64(r.prompt_cache_saved.0),
                    &r.price,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn report(&mut self, q: &Query) -> anyhow::Result<Vec<Group>> {
        let n = q.by.len();
        let rows = self
            .client
            .query(&report_sql(q, placeholder), &[&q.from, &q.to])?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut keys = Vec::with_capacity(n);
            for i in 0..n {
                keys.push(r.try_get::<_, String>(i)?);
            }
            out.push(Group {
                keys,
                requests: to_u64(r.try_get(n)?),
                prompt_tokens: to_u64(r.try_get(n + 1)?),
                completion_tokens: to_u64(r.try_get(n + 2)?),
                cost: Nanos(to_u64(r.try_get(n + 3)?)),
                baseline_cost: Nanos(to_u64(r.try_get(n + 4)?)),
                cache_hits: to_u64(r.try_get(n + 5)?),
                cache_saved: Nanos(to_u64(r.try_get(n + 6)?)),
                scored: to_u64(r.try_get(n + 7)?),
                risk_milli: to_u64(r.try_get(n + 8)?),
                cached_tokens: to_u64(r.try_get(n + 9)?),
                prompt_cache_saved: Nanos(to_u64(r.try_get(n + 10)?)),
                reasoning_tokens: to_u64(r.try_get(n + 11)?),
                unpriced: to_u64(r.try_get(n + 12)?),
                estimated: to_u64(r.try_get(n + 13)?),
            });
        }
        out.retain(|g| g.requests > 0);
        Ok(out)
    }

    /// SQLSTATE classes 22 (data exception: NUL in text, a number out of
    /// range), 23 (integrity: a constraint) and 54 (a value over a limit).
    fn rejects(&self, e: &anyhow::Error) -> bool {
        e.downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::code)
            .is_some_and(|c| ["22", "23", "54"].iter().any(|k| c.code().starts_with(k)))
    }

    fn seen_since(&mut self, from: i64) -> anyhow::Result<std::collections::HashSet<String>> {
        let rows = self.client.query(&format!("{SEEN_SQL}$1"), &[&from])?;
        let mut keys = std::collections::HashSet::with_capacity(rows.len());
        for r in rows {
            let (id, ts, key): (String, i64, String) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            keys.insert(journal::key(&id, ts, &key));
        }
        Ok(keys)
    }
}
