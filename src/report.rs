//! Cost reports from the ledger: one engine for `tollgate report` and
//! `GET /admin/report`, rendered as a table, CSV or JSON.
//!
//! Savings = baseline cost − cost (negative when a request went to a model
//! dearer than the baseline); savings % = savings ÷ baseline cost.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clock::{day_string, parse_day, Millis};
use crate::ledger::{Dim, Group, Query, Store};
use crate::money::{Nanos, NANOS_PER_USD};

const DAY_MS: i64 = 86_400_000;

/// The options both front ends take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub since: Option<Duration>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Vec<Dim>,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since: None,
            from: None,
            to: None,
            by: vec![Dim::Model],
            format: Format::Table,
        }
    }
}

/// The default window when neither `since` nor `from`/`to` is given.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(30 * 86_400);

impl Options {
    /// The time range `[from, to)`: `since` back from `now`, or whole UTC
    /// days `from..=to`.
    pub fn range(&self, now: Millis) -> Result<(Millis, Millis), String> {
        if self.since.is_some() && (self.from.is_some() || self.to.is_some()) {
            return Err("give either --since or --from/--to, not both".into());
        }
        let day = |s: &str| parse_day(s).ok_or_else(|| format!("`{s}` is not a date (YYYY-MM-DD)"));
        let from = match &self.from {
            Some(f) => day(f)?,
            None if self.to.is_some() => 0,
            None => now - self.since.unwrap_or(DEFAULT_SINCE).as_millis() as i64,
        };
        let to = match &self.to {
            Some(t) => day(t)? + DAY_MS,
            None => i64::MAX,
        };
        if from >= to {
            return Err("the range is empty (--from is after --to)".into());
        }
        Ok((from, to))
    }

    /// Parses `by` values, comma-separated or repeated.
    pub fn parse_by<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Vec<Dim>, String> {
        let mut out = Vec::new();
        for v in values {
            for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let d = Dim::parse(part).ok_or_else(|| {
                    format!("unknown --by `{part}` (expected key, team, model, task, route or day)")
                })?;
                if !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// A finished report: groups sorted, plus the total.
#[derive(Debug, Clone)]
pub struct Report {
    pub by: Vec<Dim>,
    pub from: Millis,
    pub to: Millis,
    pub groups: Vec<Group>,
    pub total: Group,
    /// Models that answered with no known price (charged at the
    /// baseline's), and their requests.
    pub unpriced: Vec<(String, u64)>,
    /// Router learning's shadow and judge calls (key `router-learning`),
    /// included above and shown apart.
    pub learning: Option<Group>,
}

pub fn build(
    store: &mut dyn Store,
    by: &[Dim],
    from: Millis,
    to: Millis,
) -> anyhow::Result<Report> {
    let mut groups = store.report(&Query {
        from,
        to,
        by: by.to_vec(),
    })?;
    // Days read in order; anything else from the most spent down.
    if by.first() == Some(&Dim::Day) {
        groups.sort_by(|a, b| a.keys.cmp(&b.keys).then(b.cost.cmp(&a.cost)));
    } else {
        groups.sort_by(|a, b| b.cost.cmp(&a.cost).then(a.keys.cmp(&b.keys)));
    }
    let mut total = Group::default();
    for g in &groups {
        total.requests += g.requests;
        total.prompt_tokens += g.prompt_tokens;
        total.completion_tokens += g.completion_tokens;
        total.cost = total.cost.saturating_add(g.cost);
        total.baseline_cost = total.baseline_cost.saturating_add(g.baseline_cost);
        total.cache_hits += g.cache_hits;
        total.cache_saved = total.cache_saved.saturating_add(g.cache_saved);
        total.scored += g.scored;
        total.risk_milli += g.risk_milli;
        total.cached_tokens += g.cached_tokens;
        total.prompt_cache_saved = total
            .prompt_cache_saved
            .saturating_add(g.prompt_cache_saved);
        total.reasoning_tokens += g.reasoning_tokens;
        total.unpriced += g.unpriced;
        total.estimated += g.estimated;
    }
    // Never a silent $0: the models answering without a price, by name.
    let unpriced = if total.unpriced == 0 {
        Vec::new()
    } else {
        let by_model = store.report(&Query {
            from,
            to,
            by: vec![Dim::Model],
        })?;
        by_model
            .into_iter()
            .filter(|g| g.unpriced > 0)
            .map(|g| (g.keys.concat(), g.unpriced))
            .collect()
    };
    let learning = store
        .report(&Query {
            from,
            to,
            by: vec![Dim::Key],
        })?
        .into_iter()
        .find(|g| g.keys.concat() == crate::policy::shadow::KEY);
    Ok(Report {
        by: by.to_vec(),
        from,
        to,
        groups,
        total,
        unpriced,
        learning,
    })
}

mod cells;
pub use cells::{cached_share, caching_saved, quality_retained, savings, savings_pct};
use cells::{cells, HEAD};

impl Report {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => {
                let mut s = serde_json::to_string_pretty(&self.json()).unwrap_or_default();
                s.push('\n');
                s
            }
        }
    }

    fn header(&self) -> Vec<String> {
        self.by
            .iter()
            .map(|d| d.name().to_string())
            .chain(HEAD.iter().map(|h| h.to_string()))
            .collect()
    }

    fn table(&self) -> String {
        let mut rows = vec![self.header()];
        for g in &self.groups {
            rows.push(g.keys.iter().cloned().chain(cells(g, false)).collect());
        }
        let mut total: Vec<String> = (0..self.by.len())
            .map(|i| {
                if i == 0 {
                    "TOTAL".to_string()
                } else {
                    String::new()
                }
            })
            .collect();
        if total.is_empty() {
            total.push("TOTAL".into());
            rows[0].insert(0, String::new());
            for r in rows.iter_mut().skip(1) {
                r.insert(0, String::new());
            }
        }
        total.extend(cells(&self.total, false));
        let notes = self.notes();
        let widths: Vec<usize> = (0..rows[0].len())
            .map(|c| {
                rows.iter()
                    .chain([&total])
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let keys = self.by.len().max(1);
        let line = |r: &[String]| {
            let mut s = String::new();
            for (c, cell) in r.iter().enumerate() {
                let w = widths[c];
                if c < keys {
                    let _ = write!(s, "{cell:<w$}  ");
                } else {
                    let _ = write!(s, "{cell:>w$}  ");
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!(
            "tollgate cost report, {} to {} (UTC)\n\n",
            day_string(self.from),
            if self.to == i64::MAX {
                "now".to_string()
            } else {
                day_string(self.to - 1)
            }
        );
        out.push_str(&line(&rows[0]));
        out.push('\n');
        let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        for r in &rows[1..] {
            out.push_str(&line(r));
            out.push('\n');
        }
        out.push_str(&"-".repeat(rule));
        out.push('\n');
        out.push_str(&line(&total));
        out.push('\n');
        out.push_str(&notes);
        out
    }

    /// What a reader must know about the figures: unpriced models, and
    /// rows counted locally.
    fn notes(&self) -> String {
        let mut out = String::new();
        for (model, n) in &self.unpriced {
            let _ = writeln!(
                out,
                "\nUNPRICED: {model}: {n} requests with no known price, charged at the baseline's; give the model `price:` in the policy"
            );
        }
        if let Some(l) = &self.learning {
            let _ = writeln!(
                out,
                "\nROUTER LEARNING: {} shadow and judge calls, ${} (key {}, under the shadow budget; included above)",
                l.requests,
                l.cost,
                crate::policy::shadow::KEY
            );
        }
        if self.total.estimated > 0 {
            let _ = writeln!(
                out,
                "\n{} requests were charged on locally counted tokens (no usage came back)",
                self.total.estimated
            );
        }
        out
    }

    fn csv(&self) -> String {
        let esc = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = self.header().join(",");
        out.push('\n');
        for g in &self.groups {
            let row: Vec<String> = g
                .keys
                .iter()
                .map(|k| esc(k))
                .chain(cells(g, true))
                .collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }

    pub fn json(&self) -> Value {
        let group = |g: &Group| {
            let mut v = json!({
                "requests": g.requests,
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
                "cost_usd": g.cost.to_string(),
                "cost_nanos": g.cost.0,
                "baseline_usd": g.baseline_cost.to_string(),
                "baseline_nanos": g.baseline_cost.0,
                "savings_usd": savings(g),
                "savings_pct": savings_pct(g),
                "cache_hits": g.cache_hits,
                "cache_saved_usd": g.cache_saved.to_string(),
                "cached_tokens": g.cached_tokens,
                "cached_prompt_pct": cached_share(g),
                "prompt_cache_saved_usd": g.prompt_cache_saved.to_string(),
                "caching_saved_usd": caching_saved(g).to_string(),
                "reasoning_tokens": g.reasoning_tokens,
                "estimated_requests": g.estimated,
                "unpriced_requests": g.unpriced,
                "quality_retained_pct": quality_retained(g),
            });
            for (d, k) in self.by.iter().zip(&g.keys) {
                v[d.name()] = json!(k);
            }
            v
        };
        json!({
            "from": crate::clock::rfc3339(self.from),
            "to": crate::clock::rfc3339(self.to),
            "by": self.by.iter().map(|d| d.name()).collect::<Vec<_>>(),
            "groups": self.groups.iter().map(group).collect::<Vec<_>>(),
            "total": group(&self.total),
            "unpriced": self.unpriced.iter().map(|(m, n)| json!({"model": m, "requests": n})).collect::<Vec<_>>(),
            "router_learning": self.learning.as_ref().map(|l| json!({"requests": l.requests, "cost_usd": l.cost.to_string(), "cost_nanos": l.cost.0})),
        })
    }
}

/// Dollars as a float, for charts only (never for accounting).
pub fn usd_f64(n: Nanos) -> f64 {
    n.0 as f64 / NANOS_PER_USD as f64
}

#[cfg(test)]
mod tests;
