//! `tollgate report`: spend, savings and cache hits from the ledger.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::clock::Clock;
use crate::policy::{load_file_offline, LedgerTarget};
use crate::report::{build, Format, Options};
use crate::secret::Secret;

#[derive(Args)]
/// Print a cost report from the ledger: requests, tokens, cost, what the
/// same tokens would have cost on the baseline model (default gpt-4), the
/// savings, and the cache hit rate, grouped and sorted, with totals.
///
/// The ledger is the one the policy names (`ledger:`), or --ledger.
///
/// Examples:
///   tollgate report --since 7d --by model
///   tollgate report --from 2026-11-01 --to 2026-11-30 --by team --by day --format csv
pub struct ReportArgs {
    /// The policy whose ledger to read.
    #[arg(long, short, default_value = "policies/default.yaml")]
    config: PathBuf,
    /// The ledger to read instead: sqlite:PATH or postgres://… .
    #[arg(long, env = "TOLLGATE_LEDGER", hide_env_values = true)]
    ledger: Option<String>,
    /// How far back from now, e.g. 24h, 7d (default 30d).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"])]
    since: Option<std::time::Duration>,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long)]
    from: Option<String>,
    /// Last day, inclusive, YYYY-MM-DD (UTC).
    #[arg(long)]
    to: Option<String>,
    /// Group by key, team, model, task, route or day (repeat or comma-separate).
    #[arg(long, default_value = "model")]
    by: Vec<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Outcomes to judge the router on (default: the policy's
    /// `shadow.outcomes`, when it has one): how the heads in use rank the
    /// last 2,000, and what `route fit` would change.
    #[arg(long)]
    outcomes: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> ExitCode {
    let mut policy = None;
    let target = match &args.ledger {
        Some(l) if l.starts_with("postgres://") || l.starts_with("postgresql://") => {
            LedgerTarget::Postgres(Secret::new(l.clone()))
        }
        Some(l) => LedgerTarget::Sqlite(
            l.trim_start_matches("sqlite:")
                .trim_start_matches("//")
                .to_string(),
        ),
        None => match load_file_offline(&args.config) {
            Ok(p) => {
                let t = p.ledger.clone();
                policy = Some(p);
                t
            }
            Err(e) => {
                eprintln!("error: invalid policy:\n{e}");
                return ExitCode::from(2);
            }
        },
    };
    let outcomes = args.outcomes.clone().or_else(|| {
        policy
            .as_ref()
            .and_then(|p| p.shadow.as_ref())
            .map(|s| s.outcomes.clone())
            .filter(|o| o.exists())
    });
    if let LedgerTarget::Sqlite(path) = &target {
        if !std::path::Path::new(path).exists() {
            eprintln!("error: no ledger at {path} (has the gateway run with this policy?)");
            return ExitCode::from(2);
        }
    }
    let by = match Options::parse_by(args.by.iter().map(String::as_str)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = Options {
        since: args.since,
        from: args.from,
        to: args.to,
        by,
        format: args.format,
    };
    let (from, to) = match opts.range(Clock::System.now()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut store = match crate::ledger::open(&target) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("error: the policy has `ledger: none`; pass --ledger");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match build(store.as_mut(), &opts.by, from, to) {
        Ok(r) => {
            print!("{}", r.render(opts.format));
            if let (Some(path), Format::Table) = (outcomes, opts.format) {
                print!("{}", router_quality(policy.as_ref(), &path));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: reading the ledger: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The "closing the loop" lines under the table: the router the policy
/// routes with, judged on the outcomes.
fn router_quality(policy: Option<&crate::policy::Policy>, path: &std::path::Path) -> String {
    let args = super::plan::RouterArgs {
        dir: crate::classify::Router::default_dir(),
    };
    let router = match policy.map_or_else(|| args.load(), |p| args.load_for(p)) {
        Ok(Some(r)) => r,
        _ => return "\nROUTER QUALITY: needs the learned router's files (scripts/fetch-test-model)\n".into(),
    };
    super::route::fit::closing_the_loop(&router, path, 2000)
        .unwrap_or_else(|e| format!("\nROUTER QUALITY: {e}\n"))
}
