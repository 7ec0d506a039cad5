//! Task accuracy of the default classifier on the public labelled prompts
//! in ../shared/data (rows with a `proposed_gateway_label`), per language
//! and source, with a confusion matrix. Skips with a message when the data
//! is absent.
//!
//!   cargo run --release --example classify_eval [-- DATA_DIR]

use std::collections::BTreeMap;

use tollgate::classify::{classify, Conversation, Task};

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "../shared/data".into());
    let path = format!("{dir}/task_classification_eval.jsonl");
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!("skipped: {path} not found (the labelled prompts are not shipped with tollgate)");
        return;
    };
    let mut per: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut confusion: BTreeMap<(String, String), u32> = BTreeMap::new();
    for line in text.lines() {
        let Ok(row) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(label) = row["proposed_gateway_label"].as_str() else {
            continue;
        };
        // A fixed fifth of the rows (by id hash) is held out: the rules were
        // tuned on the rest only.
        let id = row["id"].as_str().unwrap_or("");
        let hash = id
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let held_out = hash % 5 == 0;
        let split = if held_out { "held-out" } else { "tuning" };
        let prompt = row["text"].as_str().unwrap_or("");
        let c = classify(&Conversation {
            last_user: prompt,
            turns: 1,
            ..Conversation::default()
        });
        let ok = c.task.as_str() == label;
        let lang = row["lang"].as_str().unwrap_or("?");
        if std::env::var_os("SHOW_ERRORS").is_some() && !ok && !held_out {
            println!(
                "ERR {label} -> {} :: {}",
                c.task,
                prompt
                    .chars()
                    .take(100)
                    .collect::<String>()
                    .replace('\n', " ")
            );
        }
        for key in [
            format!("{split} lang={lang}"),
            format!("{split} source={}", row["source"].as_str().unwrap_or("?")),
            format!("all lang={lang}"),
        ] {
            let e = per.entry(key).or_default();
            e.0 += u32::from(ok);
            e.1 += 1;
        }
        *confusion
            .entry((label.to_string(), c.task.to_string()))
            .or_default() += 1;
    }
    println!("| slice | accuracy | n |\n|---|---|---|");
    for (k, (ok, n)) in &per {
        println!(
            "| {k} | {:.1}% | {n} |",
            100.0 * f64::from(*ok) / f64::from(*n)
        );
    }
    println!("\nconfusion (label → predicted: count), errors only:");
    let names: Vec<&str> = Task::ALL.iter().map(|t| t.as_str()).collect();
    for l in &names {
        let row: Vec<String> = names
            .iter()
            .filter(|p| p != &l)
            .filter_map(|p| {
                confusion
                    .get(&(l.to_string(), p.to_string()))
                    .map(|n| format!("{p}:{n}"))
            })
            .collect();
        if !row.is_empty() {
            println!("  {l} → {}", row.join(" "));
        }
    }
}
