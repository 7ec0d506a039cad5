//! `tollgate policy check`: compile policy files and print every error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use std::collections::BTreeMap;

use super::plan::{input_lines, plan, read_input, RouterArgs};
use crate::money::Nanos;
use crate::policy::load_file_offline;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Check policy files: print every error as `file:line:col: path: message`.
    ///
    /// An environment variable referenced as ${VAR} that is unset reads as
    /// empty and is printed as a note (only `serve` needs the secrets).
    /// Exits 0 when every file is valid, 1 otherwise.
    ///
    /// Example:
    ///   tollgate policy check policies/*.yaml
    Check(CheckArgs),
    /// Try a policy on sample prompts, offline: route, model and estimated
    /// cost per prompt, totals per model, and with --against the prompts
    /// whose model changes and the cost difference.
    ///
    /// Prompts are JSON lines {"id", "prompt"} or {"id", "messages"}, with an
    /// optional max_tokens. The estimated cost is the prompt at the model's
    /// input price plus max_tokens at its output price; for GPU-hour models
    /// it is estimated from their expected throughput and marked `~`.
    ///
    /// Example:
    ///   tollgate policy test policies/cost-capped.yaml --prompts prompts.jsonl --against policies/quality-first.yaml
    Test(TestArgs),
}

#[derive(Args)]
pub struct TestArgs {
    /// The policy to try.
    policy: PathBuf,
    /// JSON lines with the prompts.
    #[arg(long)]
    prompts: PathBuf,
    /// A second policy to compare with.
    #[arg(long)]
    against: Option<PathBuf>,
    /// The model or alias the requests ask for.
    #[arg(long, default_value = "auto")]
    model: String,
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Policy files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check(args) => check(args),
        PolicyCommand::Test(args) => test(args),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let mut failed = false;
    for file in &args.files {
        match load_file_offline(file) {
            Ok(p) => {
                println!(
                    "{}: ok ({} models, {} routes, {})",
                    file.display(),
                    p.models.len(),
                    p.routes.len(),
                    match &p.keys {
                        Some(k) => format!("{} keys", k.len()),
                        None => "no keys: needs --allow-anonymous".to_string(),
                    }
                );
                for w in p.warnings() {
                    eprintln!("{}: warning: {w}", file.display());
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A cost; `~` marks an estimate (a GPU-hour model at its expected throughput).
fn usd(c: Option<Nanos>, estimated: bool) -> String {
    match c {
        None => "-".to_string(),
        Some(c) if estimated => format!("~{c}"),
        Some(c) => c.to_string(),
    }
}

fn test(args: TestArgs) -> ExitCode {
    let load = |path: &PathBuf| {
        load_file_offline(path).map_err(|e| {
            eprintln!("{e}");
            ExitCode::from(2)
        })
    };
    let policy = match load(&args.policy) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let other = match args.against.as_ref().map(load).transpose() {
        Ok(o) => o,
        Err(code) => return code,
    };
    let text = match read_input(&args.prompts) {
        Ok(t) => t,
        Err(code) => return code,
    };
    // Each policy classifies with its own `router: { heads }`.
    let loaded = match args.router.load() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let router = match args.router.for_policy(loaded.clone(), &policy) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let other_router = match other
        .as_ref()
        .map(|o| args.router.for_policy(loaded, o))
        .transpose()
    {
        Ok(r) => r.flatten(),
        Err(code) => return code,
    };
    let mut rows = Vec::new();
    for (n, line) in input_lines(&text) {
        let a = plan(&policy, router.as_ref(), &args.model, line);
        let b = other
            .as_ref()
            .map(|o| plan(o, other_router.as_ref(), &args.model, line))
            .transpose();
        match (a, b) {
            (Ok(a), Ok(b)) => rows.push((a, b)),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("line {n}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!(
        "{:<10} {:<16} {:<8} {:<20} {:<20} {:>14}",
        "id", "task", "cplx", "route", "model", "est. USD"
    );
    let mut per_model: BTreeMap<String, (u32, Nanos)> = BTreeMap::new();
    for (p, _) in &rows {
        let model = p.model.clone().unwrap_or_else(|| "(no route)".into());
        println!(
            "{:<10} {:<16} {:<8} {:<20} {:<20} {:>14}",
            p.id.to_string().trim_matches('"'),
            p.class.task.as_str(),
            p.class.complexity.as_str(),
            p.route.as_deref().unwrap_or("-"),
            model,
            usd(p.cost, p.estimated)
        );
        let e = per_model.entry(model).or_default();
        e.0 += 1;
        e.1 = e.1.saturating_add(p.cost.unwrap_or_default());
    }
    println!("\n{:<20} {:>8} {:>14}", "model", "requests", "est. USD");
    let mut total = Nanos::ZERO;
    for (m, (n, c)) in &per_model {
        println!("{m:<20} {n:>8} {:>14}", c.to_string());
        total = total.saturating_add(*c);
    }
    println!(
        "{:<20} {:>8} {:>14}",
        "total",
        rows.len(),
        total.to_string()
    );
    if rows
        .iter()
        .any(|(a, b)| a.estimated || b.as_ref().is_some_and(|b| b.estimated))
    {
        println!(
            "~ estimated: a local model priced by the GPU hour, at the throughput its price expects \
             (prefill_per_s, generation_per_s; by default the last measured figures)"
        );
    }
    if let Some(path) = &args.against {
        let mut other_total = Nanos::ZERO;
        let mut changed = 0;
        println!("\nagainst {}:", path.display());
        for (a, b) in &rows {
            let Some(b) = b else { continue };
            other_total = other_total.saturating_add(b.cost.unwrap_or_default());
            if a.model != b.model {
                changed += 1;
                println!(
                    "  {}: {} -> {} ({} -> {} USD)",
                    a.id.to_string().trim_matches('"'),
                    b.model.as_deref().unwrap_or("(no route)"),
                    a.model.as_deref().unwrap_or("(no route)"),
                    usd(b.cost, b.estimated),
                    usd(a.cost, a.estimated)
                );
            }
        }
        let (sign, diff) = if total >= other_total {
            ("+", Nanos(total.0 - other_total.0))
        } else {
            ("-", Nanos(other_total.0 - total.0))
        };
        println!(
            "{changed} of {} prompts change model; est. cost {other_total} -> {total} USD ({sign}{diff})",
            rows.len()
        );
    }
    ExitCode::SUCCESS
}
