//! The learned router: its embedding against the reference implementation,
//! the calibration of its held-out scores, what it answers, and how it
//! fails when its files are missing or broken.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::Value;
use tollgate::classify::embed::Embedder;
use tollgate::classify::{load_router, Complexity, Conversation, Router, RouterLoad, Task};

fn dir() -> std::path::PathBuf {
    Router::default_dir()
}

fn router() -> Router {
    match load_router(&dir()) {
        RouterLoad::Loaded(r) => *r,
        RouterLoad::Missing(m) | RouterLoad::Broken(m) => {
            panic!("{m} (scripts/test runs scripts/fetch-test-model first)")
        }
    }
}

fn fixture(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new("tests/fixtures").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// `wordllama==0.4.0.post1`'s `embed(text, norm=True)` on fixed inputs
/// (tests/fixtures/wordllama_golden.json): same tokens, and each component
/// within 1e-5 (the table is F16; both sides sum in F32).
#[test]
fn the_embedding_equals_the_reference_implementation() {
    let e = Embedder::load(
        &dir().join("tokenizer.json"),
        &dir().join("l2_supercat_256.safetensors"),
    )
    .unwrap();
    let golden = fixture("wordllama_golden.json");
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<f32> = case["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let got = e.embed(text);
        assert_eq!(
            u64::from(got.tokens),
            case["tokens"].as_u64().unwrap(),
            "token count of {text:?}"
        );
        let worst = got
            .vector
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{text:?}: largest difference {worst}");
    }
}

/// Held-out (leave-one-source-out) scores in fifths, written by
/// scripts/train-router: each higher fifth wins more often for the strong
/// model, and each fifth's mean score is within 0.1 of what it observed.
#[test]
fn held_out_scores_are_monotone_and_calibrated() {
    let cal = fixture("router_calibration.json");
    let bins = cal["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 5);
    let observed: Vec<f64> = bins
        .iter()
        .map(|b| b["observed_strong_win"].as_f64().unwrap())
        .collect();
    for w in observed.windows(2) {
        assert!(w[1] >= w[0], "not monotone: {observed:?}");
    }
    assert!(observed[4] > observed[0] + 0.1, "{observed:?}");
    for b in bins {
        let (s, o) = (
            b["mean_score"].as_f64().unwrap(),
            b["observed_strong_win"].as_f64().unwrap(),
        );
        assert!((s - o).abs() < 0.1, "bin {b}: score {s} vs observed {o}");
    }
}

fn ask(r: &Router, text: &str) -> tollgate::classify::Class {
    r.classify(&Conversation {
        last_user: text,
        turns: 1,
        prompt_tokens: (text.len() / 4) as u32,
        ..Conversation::default()
    })
}

#[test]
fn hard_requests_score_above_easy_ones_and_tasks_come_out() {
    let r = router();
    let proof = ask(
        &r,
        "Prove that for every prime p > 3, p^2 - 1 is divisible by 24. Give a rigorous proof \
         with every step justified.",
    );
    let rewrite = ask(
        &r,
        "Rewrite this sentence more concisely: The meeting that we had planned for Monday \
         has been moved.",
    );
    let hello = ask(&r, "hi");
    assert!(
        proof.strong_score > rewrite.strong_score && proof.strong_score > hello.strong_score,
        "proof {} rewrite {} hi {}",
        proof.strong_score,
        rewrite.strong_score,
        hello.strong_score
    );
    assert!((0.0..=1.0).contains(&proof.strong_score));
    assert!(proof.signals.contains(&"learned router"));
    assert_eq!(
        ask(&r, "Write a Python function that merges two sorted lists.").task,
        Task::Code
    );
    assert_eq!(
        ask(&r, "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether?").task,
        Task::Math
    );
    // Chinese keeps the keyword classifier's task where the card says so.
    assert_eq!(
        ask(&r, "请将以下英文句子翻译成中文:Hello, how are you today?").task,
        Task::Translation
    );
    assert_ne!(proof.complexity, Complexity::Low);
    assert_eq!(hello.complexity, Complexity::Low);
}

/// Within maths the strong model's gain grows with the problem's length
/// (more quantities, more steps), though on chat a long prompt is often an
/// easy extraction: the maths domain's head ranks by the former.
#[test]
fn within_maths_a_longer_problem_scores_above_a_shorter_one() {
    let r = router();
    let short = ask(&r, "A box holds 12 eggs. How many eggs are in 5 boxes?");
    let long = ask(
        &r,
        "A farmer keeps chickens and cows. Last week he counted 40 heads in the barn, and his \
         daughter counted 112 legs. This week he sold a quarter of his cows to a neighbour and \
         bought 6 more chickens at the market, while 2 chickens were taken by a fox. How many \
         chickens and how many cows does he have this week?",
    );
    assert_eq!((short.task, long.task), (Task::Math, Task::Math));
    assert!(
        long.strong_score > short.strong_score,
        "long {} short {}",
        long.strong_score,
        short.strong_score
    );
}

#[test]
fn any_prompt_length_is_bounded_and_deterministic() {
    let r = router();
    let huge = "Summarize the findings below in three bullet points. ".repeat(20_000);
    let a = ask(&r, &huge);
    assert_eq!(a, ask(&r, &huge));
    assert!((0.0..=1.0).contains(&a.strong_score));
    let empty = ask(&r, "");
    assert!((0.0..=1.0).contains(&empty.strong_score));
}

#[test]
fn missing_files_leave_the_keyword_classifier_and_say_which() {
    let empty = tempfile::tempdir().unwrap();
    match load_router(empty.path()) {
        RouterLoad::Missing(m) => {
            assert!(m.contains("tokenizer.json"), "{m}");
            assert!(m.contains("l2_supercat_256.safetensors"), "{m}");
            assert!(m.contains("keyword classifier"), "{m}");
        }
        _ => panic!("expected Missing"),
    }
}

/// The reason `load_router` gives for unusable files in `d`.
fn broken(d: &Path) -> String {
    match load_router(d) {
        RouterLoad::Broken(m) => m,
        _ => panic!("expected Broken"),
    }
}

#[test]
fn corrupt_files_are_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let (tokenizer, table) = (
        d.path().join("tokenizer.json"),
        d.path().join("l2_supercat_256.safetensors"),
    );
    std::fs::copy(dir().join("tokenizer.json"), &tokenizer).unwrap();
    std::fs::write(&table, b"not a table").unwrap();
    let m = broken(d.path());
    assert!(m.contains("not a safetensors file"), "{m}");
    // A real table cut short.
    let real = std::fs::read(dir().join("l2_supercat_256.safetensors")).unwrap();
    std::fs::write(&table, &real[..real.len() / 2]).unwrap();
    broken(d.path());
    std::fs::write(&table, &real).unwrap();
    std::fs::write(&tokenizer, b"{").unwrap();
    let m = broken(d.path());
    assert!(m.contains("not a tokenizer.json"), "{m}");
}
