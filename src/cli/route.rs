//! `tollgate route calibrate`: the cost–quality curve of `strong_score`
//! thresholds on the operator's own prompts, and the threshold for a chosen
//! strong-model share. `tollgate route features`: the learned router's
//! feature vectors, for `scripts/train-router`. `route fit` and `route
//! eval`: heads fitted on, and routers scored on, the operator's own
//! outcomes (`fit`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::plan::{class_of, input_lines, parse_input, read_input, RouterArgs};
use crate::classify::{tokens, Router, Texts};
use crate::money::{Nanos, Price};
use crate::policy::load_file_offline;
use clap::{Args, Subcommand};
use serde_json::json;

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Print the cost–quality curve of strong_score thresholds on the given
    /// prompts: for each threshold, the strong model's share, the estimated
    /// cost per 1,000 requests, and the router's expected share of the
    /// quality gap recovered (the strong_score mass above the threshold:
    /// strong_score is the router's probability that the weak model's
    /// answer is worse). With --strong-share, first the threshold for that
    /// share, to paste into a policy as `when: { strong_score: ">= T" }`.
    ///
    /// Prompts are JSON lines {"prompt": "…"} or {"messages": […]}, with an
    /// optional max_tokens (the output estimate otherwise).
    ///
    /// Example:
    ///   tollgate route calibrate --prompts prompts.jsonl --strong-share 0.3
    Calibrate(CalibrateArgs),
    /// Write the learned router's feature vector for each prompt, one JSON
    /// line {"id", "features": […], "prompt_tokens"} after a first line
    /// {"columns": {name: index}}; `scripts/train-router` trains on these.
    Features(FeaturesArgs),
    /// Fit the router's strong head on your own outcomes and write a heads
    /// file. Each line: {"prompt": "…", "strong": S, "weak": W} (or
    /// "messages" for "prompt"), the two models' scores on any scale,
    /// higher is better. Prints the k-fold held-out APGR and CPT(50%) of the
    /// fit next to the router in use and prompt length on the same rows.
    ///
    /// Example:
    ///   tollgate route fit --outcomes outcomes.jsonl --out heads.json --keep-better
    ///   then in the policy: router: { heads: heads.json }
    Fit(fit::FitArgs),
    /// Score outcomes (the same lines as `fit` reads) with the router in use
    /// (--router: the shipped one, or a heads file) and prompt length.
    Eval(fit::EvalArgs),
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// JSON lines with the prompts, or - for stdin.
    #[arg(long)]
    prompts: PathBuf,
    /// The share of prompts the strong model should get, in (0, 1].
    #[arg(long)]
    strong_share: Option<f64>,
    /// The policy whose prices the costs use.
    #[arg(long, default_value = "policies/default.yaml")]
    policy: PathBuf,
    /// The strong model (default: the policy's baseline).
    #[arg(long)]
    strong: Option<String>,
    /// The weak model; one priced per GPU hour (or none) counts as free.
    #[arg(long)]
    weak: Option<String>,
    /// Completion tokens per request when a prompt gives no max_tokens.
    #[arg(long, default_value_t = 256)]
    output_tokens: u32,
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Args)]
pub struct FeaturesArgs {
    /// JSON lines {"id", "prompt"} or {"id", "messages"}, or - for stdin.
    #[arg(long)]
    jsonl: PathBuf,
    #[command(flatten)]
    router: RouterArgs,
}

pub fn run(cmd: RouteCommand) -> ExitCode {
    match cmd {
        RouteCommand::Calibrate(args) => calibrate(args),
        RouteCommand::Features(args) => features(args),
        RouteCommand::Fit(args) => fit::fit(args),
        RouteCommand::Eval(args) => fit::eval(args),
    }
}

/// One prompt: its score and what it costs on each model.
struct Scored {
    score: f64,
    strong: Nanos,
    weak: Nanos,
}

fn calibrate(args: CalibrateArgs) -> ExitCode {
    if args.strong_share.is_some_and(|s| !(s > 0.0 && s <= 1.0)) {
        eprintln!("error: --strong-share must be in (0, 1]");
        return ExitCode::from(2);
    }
    let policy = match load_file_offline(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let price_of = |name: &str| -> Result<Option<Price>, ExitCode> {
        let Some(id) = policy.model_ids.get(name) else {
            eprintln!("error: no model `{name}` in {}", args.policy.display());
            return Err(ExitCode::from(2));
        };
        Ok(Some(policy.estimate(*id).0))
    };
    let strong_name = args
        .strong
        .clone()
        .unwrap_or_else(|| policy.baseline.name.clone());
    let strong_price = match price_of(&strong_name) {
        Ok(Some(p)) => p,
        Ok(None) if args.strong.is_none() => policy.baseline.price,
        Ok(None) => {
            eprintln!("error: the strong model `{strong_name}` has no per-token price");
            return ExitCode::from(2);
        }
        Err(code) => return code,
    };
    let weak_price = match args.weak.as_deref().map(price_of).transpose() {
        Ok(p) => p.flatten(),
        Err(code) => return code,
    };
    let router = match args.router.load() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let text = match read_input(&args.prompts) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut rows = Vec::new();
    for (n, line) in input_lines(&text) {
        match parse_input(line, "auto") {
            Ok((_, chat)) => {
                let class = class_of(&chat, router.as_ref());
                let (p, c) = (
                    u64::from(class.prompt_tokens),
                    u64::from(chat.max_tokens.unwrap_or(args.output_tokens)),
                );
                rows.push(Scored {
                    score: class.strong_score,
                    strong: strong_price.cost(p, c),
                    weak: weak_price.map_or(Nanos::ZERO, |w| w.cost(p, c)),
                });
            }
            Err(e) => {
                eprintln!("line {n}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if rows.is_empty() {
        eprintln!("error: no prompts");
        return ExitCode::from(1);
    }
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    if let Some(share) = args.strong_share {
        let t = threshold(&rows, share);
        let sent = rows.iter().filter(|r| r.score >= t).count();
        println!(
            "strong_score: \">= {t:.3}\"   # sends {sent} of {} prompts ({:.1}%) to the strong model",
            rows.len(),
            100.0 * sent as f64 / rows.len() as f64
        );
        println!();
    }
    let weak_name = args.weak.as_deref().unwrap_or("the weak model");
    println!(
        "{} prompts; strong = {strong_name}, weak = {weak_name}{}; router: {}",
        rows.len(),
        if weak_price.is_none() {
            " (counted as free)"
        } else {
            ""
        },
        if router.is_some() {
            "learned"
        } else {
            "keyword classifier"
        }
    );
    println!(
        "{:>9} {:>12} {:>18} {:>22}",
        "threshold", "strong share", "USD / 1k requests", "expected gap recovered"
    );
    for r in curve(&rows) {
        println!(
            "{:>9} {:>11.1}% {:>18} {:>21.1}%",
            format!(">= {:.3}", r.threshold),
            100.0 * r.share,
            format!("{:.4}", r.cost_per_1k),
            100.0 * r.recovered
        );
    }
    ExitCode::SUCCESS
}

struct Point {
    threshold: f64,
    share: f64,
    cost_per_1k: f64,
    recovered: f64,
}

/// Points at each tenth of the strong share (rows sorted by score,
/// highest first), at score boundaries so tied prompts go together.
fn curve(rows: &[Scored]) -> Vec<Point> {
    let n = rows.len();
    let total_gain: f64 = rows.iter().map(|r| r.score).sum();
    let mut out: Vec<Point> = Vec::new();
    for tenth in 0..=10 {
        let want = (n * tenth).div_ceil(10).clamp(1, n);
        let t = rows[want - 1].score;
        let sent = rows.iter().take_while(|r| r.score >= t).count();
        if out.last().is_some_and(|p| p.threshold == t) {
            continue;
        }
        let (mut nanos, mut gain) = (0u128, 0.0);
        for (i, r) in rows.iter().enumerate() {
            let strong = i < sent;
            nanos += u128::from(if strong { r.strong.0 } else { r.weak.0 });
            if strong {
                gain += r.score;
            }
        }
        out.push(Point {
            threshold: t,
            share: sent as f64 / n as f64,
            cost_per_1k: nanos as f64 / 1e9 * 1000.0 / n as f64,
            recovered: if total_gain > 0.0 {
                gain / total_gain
            } else {
                1.0
            },
        });
    }
    out
}

/// The smallest score t such that at most `share` of the rows (sorted by
/// score, highest first) are ≥ t, moving down to include ties only while
/// the share is not exceeded; at least the top prompt goes strong.
fn threshold(rows: &[Scored], share: f64) -> f64 {
    let want = ((rows.len() as f64 * share).round() as usize).clamp(1, rows.len());
    let t = rows[want - 1].score;
    let at_or_above = rows.iter().filter(|r| r.score >= t).count();
    if at_or_above > want {
        if let Some(higher) = rows.iter().rev().find(|r| r.score > t) {
            return higher.score;
        }
    }
    t
}

fn features(args: FeaturesArgs) -> ExitCode {
    let router: Router = match args.router.load() {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: route features needs the learned router's files");
            return ExitCode::from(2);
        }
        Err(code) => return code,
    };
    let text = match read_input(&args.jsonl) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // First, where the named features sit; then one line per prompt, with
    // the prompt tokens serving counts (cl100k, the whole prompt) for the
    // complexity's length term.
    let columns: serde_json::Map<String, serde_json::Value> = crate::classify::learned::COLUMNS
        .iter()
        .map(|(name, at)| (name.to_string(), json!(at)))
        .collect();
    if writeln!(out, "{}", json!({"columns": columns})).is_err() {
        return ExitCode::from(2);
    }
    for (n, line) in input_lines(&text) {
        let (id, chat) = match parse_input(line, "auto") {
            Ok(v) => v,
            Err(e) => {
                eprintln!("line {n}: {e}");
                return ExitCode::from(1);
            }
        };
        let texts = Texts::of(&chat);
        let prompt_tokens = tokens::count_chat(chat.messages());
        let f = router.features(&texts.conversation(&chat, prompt_tokens));
        let row = json!({"id": id, "features": f.vector, "prompt_tokens": prompt_tokens,
                         "choices": f.choices, "quantities": f.quantities});
        if writeln!(out, "{row}").is_err() {
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

pub(super) mod fit;

#[cfg(test)]
mod tests;
