//! `tollgate classify`: classify and route prompts offline, one JSON line
//! per input, to measure the classifier and try a policy.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::plan::{plan, RouterArgs};
use crate::classify::Router;
use crate::policy::load_file_offline;

/// Classify prompts and show where the policy would route them.
///
/// Reads JSON lines `{"id": …, "prompt": "…"}` or `{"id": …, "messages": […]}`
/// (from --jsonl FILE, or - for stdin), or one PROMPT argument, and writes
/// one line per input: {"id", "task", "complexity", "strong_score",
/// "prompt_tokens", "route", "model", "est_cost_usd"}. Prompt tokens are
/// counted with OpenAI's cl100k_base tokenizer; est_cost_usd is the prompt
/// at the model's input price plus max_tokens (if given) at its output
/// price. For a model priced by the GPU hour it is an estimate, from the
/// throughput its price expects (`prefill_per_s`, `generation_per_s`;
/// by default the last measured figures), and "est_cost_basis" says so.
///
/// Example:
///   tollgate classify "Write a Python function that merges two sorted lists."
///   tollgate classify --policy policies/cost-capped.yaml --jsonl prompts.jsonl
#[derive(Args)]
pub struct ClassifyArgs {
    /// The policy that routes the prompts.
    #[arg(long, default_value = "policies/default.yaml")]
    policy: PathBuf,
    /// JSON lines to read, or - for stdin.
    #[arg(long, conflicts_with = "prompt")]
    jsonl: Option<String>,
    /// The model or alias the requests ask for.
    #[arg(long, default_value = "auto")]
    model: String,
    /// One prompt to classify.
    prompt: Option<String>,
    #[command(flatten)]
    router: RouterArgs,
}

pub fn run(args: ClassifyArgs) -> ExitCode {
    let policy = match load_file_offline(&args.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let router = match args.router.load_for(&policy) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let lines: Box<dyn Iterator<Item = std::io::Result<String>>> = match (&args.jsonl, &args.prompt)
    {
        (Some(path), _) if path == "-" => Box::new(std::io::stdin().lock().lines()),
        (Some(path), _) => match std::fs::File::open(path) {
            Ok(f) => Box::new(std::io::BufReader::new(f).lines()),
            Err(e) => {
                eprintln!("error: cannot read {path}: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(p)) => Box::new(std::iter::once(Ok(
            json!({"id": 1, "prompt": p}).to_string()
        ))),
        (None, None) => {
            eprintln!("error: give a PROMPT or --jsonl FILE (- for stdin)");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for (n, line) in lines.enumerate() {
        let line = match line {
            Ok(l) if l.trim().is_empty() => continue,
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: reading input: {e}");
                return ExitCode::from(2);
            }
        };
        match one(&policy, router.as_ref(), &args.model, &line) {
            Ok(v) => {
                if writeln!(out, "{v}").is_err() {
                    return ExitCode::from(2);
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("line {}: {e}", n + 1);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn one(
    policy: &crate::policy::Policy,
    router: Option<&Router>,
    model: &str,
    line: &str,
) -> Result<Value, String> {
    let p = plan(policy, router, model, line)?;
    Ok(json!({
        "id": p.id,
        "task": p.class.task.as_str(),
        "complexity": p.class.complexity.as_str(),
        "strong_score": p.class.strong_score,
        "prompt_tokens": p.class.prompt_tokens,
        "route": p.route,
        "model": p.model,
        // Exact nano-dollars, printed as a decimal USD number.
        "est_cost_usd": p.cost.map(|c| c.to_string().parse::<f64>().map_or(Value::Null, Value::from)),
        // A GPU-hour model's cost: estimated from its expected throughput.
        "est_cost_basis": if p.estimated { "gpu_hour at expected throughput" } else { "per-token price" },
    }))
}
