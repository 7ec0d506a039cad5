//! Routing quality of the default classifier's `strong_score`, on public
//! data in ../shared/data (skips with a message when it is absent):
//!
//! - AlpacaEval (GPT-4-judged wins against text-davinci-003): a weak and a
//!   strong model, prompts with the highest scores go to the strong one.
//!   APGR (area under the performance-gap-recovered curve, random = 0.50)
//!   and CPT(x%) (the strong-call share that recovers x% of the gap), as
//!   defined by RouteLLM (Ong et al. 2024). Ties in the score are split
//!   at random in expectation (linear interpolation across a tie).
//! - WizardLM: the labelled difficulty (1–10) against the classifier's
//!   complexity, and the rank correlation of difficulty and strong_score.
//!
//! A fifth of the prompts (by index) is held out; report those.
//!
//!   cargo run --release --example route_eval [-- DATA_DIR [WEAK STRONG]]

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tollgate::classify::{classify, tokens, Complexity, Conversation};

fn score(prompt: &str) -> (f64, Complexity) {
    let prompt_tokens = tokens::count_chat(&[json!({"role": "user", "content": prompt})]);
    let c = classify(&Conversation {
        last_user: prompt,
        turns: 1,
        prompt_tokens,
        ..Conversation::default()
    });
    (c.strong_score, c.complexity)
}

fn held_out(idx: u64) -> bool {
    idx.is_multiple_of(5)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "../shared/data".into());
    let weak = args.next().unwrap_or_else(|| "llama-2-7b-chat-hf".into());
    let strong = args.next().unwrap_or_else(|| "gpt4".into());
    let alpaca = format!("{dir}/alpacaeval_v1_gpt4judge_wins.jsonl");
    let Ok(text) = std::fs::read_to_string(&alpaca) else {
        println!(
            "skipped: {alpaca} not found (the labelled prompts are not shipped with tollgate)"
        );
        return;
    };
    // (score, weak win, strong win) per split.
    let mut rows: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(w), Some(s)) = (row["win"][&weak].as_f64(), row["win"][&strong].as_f64()) else {
            continue;
        };
        let (sc, _) = score(row["instruction"].as_str().unwrap_or(""));
        let split = if held_out(row["idx"].as_u64().unwrap_or(0)) {
            "held-out"
        } else {
            "tuning"
        };
        for k in [split, "all"] {
            rows.entry(k).or_default().push((sc, w, s));
        }
    }
    println!("AlpacaEval, weak = {weak}, strong = {strong}, score = strong_score\n");
    println!("| split | n | weak quality | strong quality | APGR | CPT(50%) | CPT(80%) |");
    println!("|---|---|---|---|---|---|---|");
    for (split, r) in &rows {
        let e = evaluate(r);
        println!(
            "| {split} | {} | {:.3} | {:.3} | {:.3} | {} | {} |",
            r.len(),
            e.weak,
            e.strong,
            e.apgr,
            pct(e.cpt50),
            pct(e.cpt80)
        );
    }
    wizardlm(&dir);
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1}%", 100.0 * v))
}

struct Eval {
    weak: f64,
    strong: f64,
    apgr: f64,
    cpt50: Option<f64>,
    cpt80: Option<f64>,
}

/// The PGR curve at each score threshold, from "all weak" to "all strong".
fn evaluate(rows: &[(f64, f64, f64)]) -> Eval {
    let n = rows.len() as f64;
    let weak: f64 = rows.iter().map(|r| r.1).sum::<f64>() / n;
    let strong: f64 = rows.iter().map(|r| r.2).sum::<f64>() / n;
    let mut sorted = rows.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    // Points (strong share, PGR) at each boundary between distinct scores.
    let mut points = vec![(0.0, 0.0)];
    let mut gain = 0.0; // Σ (strong − weak) over the prompts sent strong
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            gain += sorted[j].2 - sorted[j].1;
            j += 1;
        }
        let q = weak + gain / n;
        points.push((j as f64 / n, (q - weak) / (strong - weak)));
        i = j;
    }
    let apgr = points
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum();
    let cpt = |x: f64| {
        points.windows(2).find_map(|w| {
            let ((c0, p0), (c1, p1)) = (w[0], w[1]);
            (p1 >= x).then(|| {
                if p1 == p0 {
                    c1
                } else {
                    c0 + (c1 - c0) * ((x - p0) / (p1 - p0)).clamp(0.0, 1.0)
                }
            })
        })
    };
    Eval {
        weak,
        strong,
        apgr,
        cpt50: cpt(0.5),
        cpt80: cpt(0.8),
    }
}

fn wizardlm(dir: &str) {
    let path = format!("{dir}/wizardlm_testset.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("\nskipped WizardLM: {path} not found");
        return;
    };
    let mut pairs = Vec::new();
    let mut table: BTreeMap<u64, [u32; 3]> = BTreeMap::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(d) = row["difficulty"].as_u64() else {
            continue;
        };
        let (s, c) = score(row["instruction"].as_str().unwrap_or(""));
        pairs.push((d as f64, s));
        let bucket = match d {
            1..=3 => 1,
            4..=6 => 4,
            _ => 7,
        };
        table.entry(bucket).or_default()[c as usize] += 1;
    }
    println!(
        "\nWizardLM difficulty against complexity ({} prompts):\n",
        pairs.len()
    );
    println!("| difficulty | low | medium | high |\n|---|---|---|---|");
    for (b, [l, m, h]) in &table {
        let label = match b {
            1 => "1–3",
            4 => "4–6",
            _ => "7–10",
        };
        println!("| {label} | {l} | {m} | {h} |");
    }
    println!(
        "\nSpearman rank correlation of difficulty and strong_score: {:.3}",
        spearman(&pairs)
    );
}

/// Spearman's rho with average ranks for ties.
fn spearman(pairs: &[(f64, f64)]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|a, b| v[*a].total_cmp(&v[*b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j < idx.len() && v[idx[j]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j - 1) as f64 / 2.0 + 1.0;
            for k in &idx[i..j] {
                r[*k] = avg;
            }
            i = j;
        }
        r
    }
    let a = ranks(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let b = ranks(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}
