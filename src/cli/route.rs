//! `tollgate route calibrate`: the `strong_score` threshold that sends a
//! chosen share of prompts to the strong model.

use std::path::PathBuf;
use std::process::ExitCode;

use super::plan::{class_of, input_lines, parse_input, read_input};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum RouteCommand {
    /// Print the strong_score threshold that sends a share of the given
    /// prompts to the strong model, to paste into a policy as
    /// `when: { strong_score: ">= T" }`.
    ///
    /// Prompts are JSON lines {"prompt": "…"} or {"messages": […]}.
    ///
    /// Example:
    ///   tollgate route calibrate --prompts prompts.jsonl --strong-share 0.3
    Calibrate(CalibrateArgs),
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// JSON lines with the prompts, or - for stdin.
    #[arg(long)]
    prompts: PathBuf,
    /// The share of prompts the strong model should get, in (0, 1].
    #[arg(long)]
    strong_share: f64,
}

pub fn run(cmd: RouteCommand) -> ExitCode {
    let RouteCommand::Calibrate(args) = cmd;
    if !(args.strong_share > 0.0 && args.strong_share <= 1.0) {
        eprintln!("error: --strong-share must be in (0, 1]");
        return ExitCode::from(2);
    }
    let text = match read_input(&args.prompts) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let mut scores = Vec::new();
    for (n, line) in input_lines(&text) {
        match score(line) {
            Ok(s) => scores.push(s),
            Err(e) => {
                eprintln!("line {n}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let Some(t) = threshold(&mut scores, args.strong_share) else {
        eprintln!("error: no prompts");
        return ExitCode::from(1);
    };
    let sent = scores.iter().filter(|s| **s >= t).count();
    println!(
        "strong_score: \">= {t:.2}\"   # sends {sent} of {} prompts ({:.1}%) to the strong model",
        scores.len(),
        100.0 * sent as f64 / scores.len() as f64
    );
    ExitCode::SUCCESS
}

fn score(line: &str) -> Result<f64, String> {
    let (_, chat) = parse_input(line, "auto")?;
    Ok(class_of(&chat).strong_score)
}

/// The smallest score t such that at most `share` of `scores` are ≥ t,
/// moving down to include ties only while the share is not exceeded; at
/// least the top prompt goes to the strong model.
fn threshold(scores: &mut [f64], share: f64) -> Option<f64> {
    if scores.is_empty() {
        return None;
    }
    scores.sort_by(|a, b| b.total_cmp(a));
    let want = ((scores.len() as f64 * share).round() as usize).clamp(1, scores.len());
    let mut t = scores[want - 1];
    // Scores tied at t would all go strong; step above them if that overshoots.
    let at_or_above = scores.iter().filter(|s| **s >= t).count();
    if at_or_above > want {
        if let Some(higher) = scores.iter().rev().find(|s| **s > t) {
            t = *higher;
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::threshold;

    #[test]
    fn picks_the_quantile() {
        let mut s = vec![0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6, 0.05];
        assert_eq!(threshold(&mut s, 0.3), Some(0.7));
        assert_eq!(threshold(&mut s, 1.0), Some(0.05));
        let mut ties = vec![0.5, 0.5, 0.5, 0.9];
        // Half would need one of the tied 0.5s: step above them.
        assert_eq!(threshold(&mut ties, 0.5), Some(0.9));
        assert_eq!(threshold(&mut [], 0.5), None);
    }
}
