//! `tollgate route fit`: router heads fitted on a deployment's own
//! outcomes, and `tollgate route eval`: how a router ranks given outcomes.
//!
//! An outcomes file is JSON lines `{"prompt": "…", "strong": S, "weak": W}`
//! (or `"messages"` for `"prompt"`), the two scores on any scale where
//! higher is better. Every figure printed is on the file's own rows:
//! `fit`'s is held out by k-fold cross-validation, and the router in use
//! and prompt length are scored on the same rows beside it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use super::super::plan::{input_lines, input_request, read_input, RouterArgs};
use crate::classify::fit::{self, Quality, Row};
use crate::classify::learned::heads::{Heads, Linear};
use crate::classify::{tokens, Router, Texts};

#[derive(Args)]
pub struct FitArgs {
    /// JSON lines {"prompt" | "messages", "strong": number, "weak": number},
    /// or - for stdin.
    #[arg(long)]
    outcomes: PathBuf,
    /// Where to write the heads file (name it in a policy with
    /// `router: { heads: FILE }`, or pass it as --router).
    #[arg(long)]
    out: PathBuf,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Write nothing (exit code 1) unless the fitted heads beat the router
    /// in use on the held-out folds.
    #[arg(long)]
    keep_better: bool,
    /// The router to start from and compare with (default: the shipped one).
    #[command(flatten)]
    router: RouterArgs,
}

#[derive(Args)]
pub struct EvalArgs {
    /// JSON lines {"prompt" | "messages", "strong": number, "weak": number},
    /// or - for stdin.
    #[arg(long)]
    outcomes: PathBuf,
    #[command(flatten)]
    router: RouterArgs,
}

/// The outcome rows of a file, with each prompt's length.
struct Outcomes {
    rows: Vec<Row>,
    length: Vec<f64>,
    /// A shadow line's `answered` is its `strong_model` (other files: none).
    answered_strong: Vec<Option<bool>>,
    distinct: usize,
}

impl Outcomes {
    fn pairs(&self) -> Vec<(f64, f64)> {
        self.rows.iter().map(|r| (r.strong, r.weak)).collect()
    }

    /// The strong_score `heads` give each row, as serving computes it
    /// (unrounded).
    fn scores(&self, heads: &Heads) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| heads.strong_score(heads.strong_raw(&r.features, r.domain)))
            .collect()
    }
}

/// Reads and checks an outcomes file; every problem names its line.
fn read(text: &str, path: &std::path::Path, router: &Router) -> Result<Outcomes, String> {
    let mut out = Outcomes {
        rows: Vec::new(),
        length: Vec::new(),
        answered_strong: Vec::new(),
        distinct: 0,
    };
    let mut groups = std::collections::HashSet::new();
    for (n, line) in input_lines(text) {
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        let score = |field: &str| -> Result<f64, String> {
            match value.get(field) {
                None | Some(Value::Null) => Err(format!("line {n}: missing \"{field}\"")),
                Some(Value::Number(x)) => x
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| format!("line {n}: \"{field}\" is not a finite number")),
                Some(other) => Err(format!(
                    "line {n}: \"{field}\" must be a number, not {}",
                    kind(other)
                )),
            }
        };
        let (strong, weak) = (score("strong")?, score("weak")?);
        let (_, chat) = input_request(&value, "auto").map_err(|e| format!("line {n}: {e}"))?;
        let texts = Texts::of(&chat);
        let prompt_tokens = tokens::count_chat(chat.messages());
        let features = router.features(&texts.conversation(&chat, prompt_tokens));
        let group = prompt_hash(&[&texts.system, &texts.earlier, &texts.last_user]);
        groups.insert(group);
        out.length.push(f64::from(prompt_tokens));
        out.answered_strong.push(
            value["answered"]
                .as_str()
                .zip(value["strong_model"].as_str())
                .map(|(a, s)| a == s),
        );
        out.rows.push(Row {
            domain: router.judge(&features).1,
            features: features.vector,
            strong,
            weak,
            group,
        });
    }
    if out.rows.is_empty() {
        return Err(format!(
            "{}: no outcomes (the file is empty)",
            path.display()
        ));
    }
    if out.rows.iter().all(|r| r.strong == r.weak) {
        return Err(format!(
            "{}: every row scores the strong and weak models the same: there is nothing to learn",
            path.display()
        ));
    }
    out.distinct = groups.len();
    Ok(out)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Bool(_) => "a boolean",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "that",
    }
}

/// FNV-1a over the prompt's texts, lowercased with whitespace collapsed:
/// the same prompt, however spaced, is one group.
fn prompt_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for word in part.split_whitespace() {
            for b in word.bytes().map(|b| b.to_ascii_lowercase()).chain([b' ']) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The router and the outcomes read with it. Exit code 2 when the router
/// or the file cannot be read, 1 when a line is wrong.
fn load(args: &RouterArgs, path: &std::path::Path) -> Result<(Router, Outcomes), ExitCode> {
    let Some(router) = args.load()? else {
        eprintln!(
            "error: this needs the learned router's embedding (scripts/fetch-test-model \
             fetches it to models/wordllama)"
        );
        return Err(ExitCode::from(2));
    };
    let text = read_input(path)?;
    let data = read(&text, path, &router).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })?;
    Ok((router, data))
}

fn router_name(args: &RouterArgs) -> String {
    if args.dir.is_file() {
        args.dir.display().to_string()
    } else {
        "shipped".into()
    }
}

fn line(name: &str, q: Option<Quality>) {
    match q {
        Some(q) => println!("{name:<28} {:>6.3} {:>9.1}%", q.apgr, 100.0 * q.cpt50),
        None => println!("{name:<28} {:>6} {:>10}", "-", "-"),
    }
}

pub fn fit(args: FitArgs) -> ExitCode {
    let started = std::time::Instant::now();
    let (router, data) = match load(&args.router, &args.outcomes) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let base = router.heads();
    let fitted = match fit::fit(&data.rows, (&base.strong.w, base.strong.b), args.folds) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", args.outcomes.display());
            return ExitCode::from(1);
        }
    };
    let pairs = data.pairs();
    let in_use = fit::quality(&data.scores(base), &pairs);
    let length = fit::quality(&data.length, &pairs);
    let name = router_name(&args.router);
    println!(
        "{} outcomes ({} distinct prompts); {}-fold cross-validation, held out by prompt",
        data.rows.len(),
        data.distinct,
        args.folds
    );
    println!("{:<28} {:>6} {:>10}", "router", "APGR", "CPT(50%)");
    line("route fit (held out)", Some(fitted.held_out));
    line(&format!("router in use ({name})"), in_use);
    line("prompt length", length);
    println!("(random routing: APGR 0.500, CPT(50%) 50.0%)");
    if fitted.platt[0] <= 0.0 {
        println!(
            "not written: held out, the fitted outputs do not rise with the strong model's wins \
             (nothing in these rows is learnable by this head); {} is unchanged",
            args.out.display()
        );
        return ExitCode::from(1);
    }
    let better = in_use.is_none_or(|q| fitted.held_out.apgr > q.apgr);
    if args.keep_better && !better {
        println!(
            "not written: the fitted heads do not beat the router in use on held-out rows; \
             {} is unchanged",
            args.out.display()
        );
        return ExitCode::from(1);
    }
    let mut heads: Heads = base.clone();
    // One head fitted on the deployment's own mix replaces the general
    // and every domain head.
    heads.domains.clear();
    heads.strong = Linear {
        w: fitted.w.clone(),
        b: fitted.b,
    };
    heads.platt = fitted.platt;
    heads.fitted = Some(json!({
        "outcomes": args.outcomes.display().to_string(),
        "rows": data.rows.len(),
        "distinct_prompts": data.distinct,
        "folds": args.folds,
        "fold_sizes": fitted.fold_sizes,
        "penalty": fitted.penalty,
        "held_out": {"apgr": round(fitted.held_out.apgr), "cpt50": round(fitted.held_out.cpt50)},
        "router_in_use": in_use.map(|q| json!({"name": name, "apgr": round(q.apgr), "cpt50": round(q.cpt50)})),
        "prompt_length": length.map(|q| json!({"apgr": round(q.apgr), "cpt50": round(q.cpt50)})),
    }));
    // Checked as every reader checks it, then written whole or not at all.
    let text = match serde_json::to_string(&heads) {
        Ok(t) if Heads::parse(&t).is_ok() => t,
        _ => {
            eprintln!(
                "error: the fit produced weights that are not finite numbers; nothing written"
            );
            return ExitCode::from(1);
        }
    };
    let tmp = args.out.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &args.out)) {
        eprintln!("error: cannot write {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    println!(
        "wrote {} (penalty {}·n) in {:.1} s",
        args.out.display(),
        fitted.penalty,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

pub fn eval(args: EvalArgs) -> ExitCode {
    let (router, data) = match load(&args.router, &args.outcomes) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let pairs = data.pairs();
    println!(
        "{} outcomes ({} distinct prompts)",
        data.rows.len(),
        data.distinct
    );
    println!("{:<28} {:>6} {:>10}", "router", "APGR", "CPT(50%)");
    line(
        &format!("router in use ({})", router_name(&args.router)),
        fit::quality(&data.scores(router.heads()), &pairs),
    );
    if args.router.dir.is_file() {
        let shipped = Heads::shipped().ok();
        line(
            "shipped router",
            shipped.and_then(|h| fit::quality(&data.scores(&h), &pairs)),
        );
    }
    line("prompt length", fit::quality(&data.length, &pairs));
    println!("(random routing: APGR 0.500, CPT(50%) 50.0%)");
    ExitCode::SUCCESS
}

/// For `tollgate report`: how the heads in use rank the last `last`
/// outcomes of `path`, and what `route fit` would change, held out, at
/// the strong share those outcomes saw (the share a shadow line's
/// `answered` names the strong model, else a half).
pub fn closing_the_loop(
    router: &Router,
    path: &std::path::Path,
    last: usize,
) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read outcomes {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(last)..];
    let data = read(&(tail.join("\n") + "\n"), path, router)
        .map_err(|e| format!("in the last {} outcomes: {e}", tail.len()))?;
    let known: Vec<bool> = data.answered_strong.iter().flatten().copied().collect();
    let share = if known.is_empty() {
        0.5
    } else {
        known.iter().filter(|s| **s).count() as f64 / known.len() as f64
    };
    let pairs = data.pairs();
    let heads = router.heads();
    let in_use = data.scores(heads);
    let q = fit::quality(&in_use, &pairs).ok_or("the strong model gains nothing on them")?;
    let at = fit::recovered_at(&in_use, &pairs, share).unwrap_or(0.0);
    let mut out = format!(
        "\nROUTER QUALITY on the last {} of {} outcomes ({}), at the strong share they saw ({:.1}%):\n  heads in use: APGR {:.3}, {:.1}% of the quality gap recovered\n",
        data.rows.len(),
        lines.len(),
        path.display(),
        100.0 * share,
        q.apgr,
        100.0 * at
    );
    match fit::fit(&data.rows, (&heads.strong.w, heads.strong.b), 5) {
        Ok(f) => {
            let fit_at = fit::recovered_at(&f.held_out_scores, &pairs, share).unwrap_or(0.0);
            out.push_str(&format!(
                "  route fit, held out: APGR {:.3} ({:+.3}), {:.1}% recovered ({:+.1} points)\n  refit: tollgate route fit --outcomes {} --out heads.json --keep-better\n",
                f.held_out.apgr,
                f.held_out.apgr - q.apgr,
                100.0 * fit_at,
                100.0 * (fit_at - at),
                path.display()
            ));
        }
        Err(e) => out.push_str(&format!("  route fit cannot fit them yet: {e}\n")),
    }
    Ok(out)
}
