//! `tollgate route fit` end to end, with the built binary: outcomes in, a
//! heads file out, `classify --router` scoring with it, and `serve` routing
//! by it and picking up a refitted file without a restart.
//!
//! The outcomes are made so that only a fit can know them: the strong
//! model wins every gardening question and ties every cooking one (or the
//! reverse), two families of short open questions the shipped router has
//! no reason to tell apart.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn tollgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
}

const PLANTS: [&str; 10] = [
    "roses",
    "tomatoes",
    "apple trees",
    "hydrangeas",
    "lavender",
    "blueberries",
    "ferns",
    "tulips",
    "basil",
    "lemon trees",
];
const GARDEN: [&str; 8] = [
    "How should I prune my {} before winter?",
    "What soil do {} grow best in?",
    "How often should I water {} in a dry summer?",
    "Why are the leaves on my {} turning yellow?",
    "When is the right time to plant {} outdoors?",
    "How do I protect {} from aphids without pesticides?",
    "What fertiliser should I give {} in spring?",
    "Can {} grow well in pots on a balcony?",
];
const FOODS: [&str; 10] = [
    "chicken thighs",
    "salmon",
    "potatoes",
    "a pork shoulder",
    "carrots",
    "tofu",
    "lamb chops",
    "mushrooms",
    "a whole duck",
    "sweet potatoes",
];
const KITCHEN: [&str; 8] = [
    "How long should I roast {} in the oven?",
    "What spices go well with {}?",
    "Should I marinate {} overnight?",
    "How do I keep {} from drying out on the grill?",
    "What is a good side dish for {}?",
    "Can I cook {} in an air fryer?",
    "How do I know when {} are done?",
    "What sauce should I serve with {}?",
];

/// Prompts of one family: every template with every noun, minus the
/// last template (kept for held-out checks).
fn family(templates: &[&str], nouns: &[&str]) -> Vec<String> {
    templates[..templates.len() - 1]
        .iter()
        .flat_map(|t| nouns.iter().map(move |n| t.replace("{}", n)))
        .collect()
}

/// Outcomes where the strong model wins on `wins` and ties on `ties`.
fn outcomes(wins: &[String], ties: &[String]) -> String {
    let mut lines = Vec::new();
    for (i, p) in wins.iter().chain(ties).enumerate() {
        let win = i < wins.len();
        // Scores on a 1-10 scale, as a judge would give them.
        let (strong, weak) = if win { (9, 3) } else { (8, 8) };
        lines.push(json!({"prompt": p, "strong": strong, "weak": weak}).to_string());
    }
    lines.join("\n") + "\n"
}

fn garden() -> Vec<String> {
    family(&GARDEN, &PLANTS)
}

fn kitchen() -> Vec<String> {
    family(&KITCHEN, &FOODS)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn fit(outcomes: &Path, out: &Path, extra: &[&str]) -> Output {
    tollgate()
        .args(["route", "fit", "--outcomes"])
        .arg(outcomes)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The APGR printed on the line that starts with `name`.
fn apgr(stdout: &str, name: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{stdout}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    cols[cols.len() - 2].parse().unwrap()
}

/// strong_score of each prompt by `classify --router heads`.
fn scores(dir: &Path, heads: &Path, prompts: &[&str]) -> Vec<f64> {
    let lines: Vec<String> = prompts
        .iter()
        .map(|p| json!({"prompt": p}).to_string())
        .collect();
    let input = write(dir, "prompts.jsonl", &(lines.join("\n") + "\n"));
    let out = tollgate()
        .args(["classify", "--router"])
        .arg(heads)
        .arg("--jsonl")
        .arg(&input)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["strong_score"]
                .as_f64()
                .unwrap()
        })
        .collect()
}

const HELD_OUT_GARDEN: &str = "Can tulips grow well in pots on a balcony?";
const HELD_OUT_KITCHEN: &str = "What sauce should I serve with salmon?";

#[test]
fn a_fit_learns_what_the_shipped_router_cannot_and_classify_uses_it() {
    let dir = tempfile::tempdir().unwrap();
    let gardening = write(dir.path(), "g.jsonl", &outcomes(&garden(), &kitchen()));
    let cooking = write(dir.path(), "k.jsonl", &outcomes(&kitchen(), &garden()));
    let (g_heads, k_heads) = (dir.path().join("g.json"), dir.path().join("k.json"));
    let mut in_use = Vec::new();
    for (file, heads) in [(&gardening, &g_heads), (&cooking, &k_heads)] {
        let out = fit(file, heads, &[]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(
            stdout.contains("140 outcomes (140 distinct prompts); 5-fold"),
            "{stdout}"
        );
        let (fitted, shipped) = (
            apgr(&stdout, "route fit (held out)"),
            apgr(&stdout, "router in use (shipped)"),
        );
        // Half the rows gain: ranking them all first is APGR 0.75.
        assert!(fitted > 0.74, "{stdout}");
        assert!(fitted > shipped, "{stdout}");
        in_use.push(shipped);
        let written: Value =
            serde_json::from_str(&std::fs::read_to_string(heads).unwrap()).unwrap();
        assert_eq!(written["fitted"]["rows"], 140);
        let kept = written["fitted"]["held_out"]["apgr"].as_f64().unwrap();
        assert!((kept - fitted).abs() < 6e-4, "{kept} {fitted}");
        assert_eq!(written["features"], 275);
        // One head fitted on the deployment's mix: the shipped domain heads
        // would override it on maths and multiple-choice prompts.
        assert!(written.get("domains").is_none(), "{}", written["domains"]);
    }
    // The shipped router cannot rank both families' way round.
    assert!(in_use.iter().any(|a| *a < 0.75), "{in_use:?}");

    // Prompts no fit saw (their template was held back), scored as the
    // outcomes taught.
    let held = [HELD_OUT_GARDEN, HELD_OUT_KITCHEN];
    let g = scores(dir.path(), &g_heads, &held);
    let k = scores(dir.path(), &k_heads, &held);
    assert!(g[0] > 0.5 && g[1] < 0.5, "{g:?}");
    assert!(k[0] < 0.5 && k[1] > 0.5, "{k:?}");

    // `route eval` scores the fitted heads on fresh rows beside the
    // shipped ones.
    let fresh = outcomes(
        &[
            HELD_OUT_GARDEN.to_string(),
            "Can roses grow well in pots on a balcony?".into(),
        ],
        &[
            HELD_OUT_KITCHEN.to_string(),
            "What sauce should I serve with tofu?".into(),
        ],
    );
    let fresh = write(dir.path(), "fresh.jsonl", &fresh);
    let out = tollgate()
        .args(["route", "eval", "--outcomes"])
        .arg(&fresh)
        .arg("--router")
        .arg(&g_heads)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        (apgr(&stdout, "router in use") - 0.75).abs() < 1e-9,
        "{stdout}"
    );
    assert!(stdout.contains("shipped router"), "{stdout}");
}

#[test]
fn keep_better_writes_nothing_when_the_router_in_use_already_ranks_best() {
    // Outcomes that follow the shipped router's own scores: nothing can
    // beat it held out.
    let dir = tempfile::tempdir().unwrap();
    let prompts: Vec<String> = garden().into_iter().chain(kitchen()).collect();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let shipped = scores(dir.path(), Path::new("models/wordllama"), &refs);
    let mut sorted = shipped.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let lines: Vec<String> = prompts
        .iter()
        .zip(&shipped)
        .map(|(p, s)| {
            let weak = if *s > median { 0 } else { 1 };
            json!({"prompt": p, "strong": 1, "weak": weak}).to_string()
        })
        .collect();
    let file = write(dir.path(), "o.jsonl", &(lines.join("\n") + "\n"));
    let heads = dir.path().join("h.json");
    let out = fit(&file, &heads, &["--keep-better"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("not written"), "{stdout}");
    assert!(!heads.exists());
    assert!(apgr(&stdout, "router in use (shipped)") >= apgr(&stdout, "route fit (held out)"));
}

#[test]
fn bad_outcomes_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.json");
    let cases = [
        ("{\"prompt\":\"a\",\"strong\":1,\"weak\":0}\n{\"prompt\":\"b\",\"strong\":1}\n", "line 2: missing \"weak\""),
        ("{\"prompt\":\"a\",\"strong\":\"high\",\"weak\":0}\n", "line 1: \"strong\" must be a number, not a string"),
        ("{\"strong\":1,\"weak\":0}\n", "line 1: needs \"prompt\""),
        ("\n\n", "no outcomes (the file is empty)"),
        ("{\"prompt\":\"a\",\"strong\":1,\"weak\":0}\nnot json\n", "line 2: not JSON"),
        ("{\"prompt\":\"a\",\"strong\":3,\"weak\":3}\n{\"prompt\":\"b\",\"strong\":5,\"weak\":5}\n", "scores the strong and weak models the same"),
    ];
    for (input, want) in cases {
        let file = write(dir.path(), "o.jsonl", input);
        let o = fit(&file, &out, &[]);
        let (stdout, stderr) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{input}: {stdout}{stderr}");
        assert!(stderr.contains(want), "{input}: {stderr}");
        assert!(!out.exists());
    }
    // Too few distinct prompts for the folds.
    let two = outcomes(&["a b".into()], &["c d".into()]);
    let o = fit(&write(dir.path(), "o.jsonl", &two), &out, &[]);
    assert!(text(&o).1.contains("too few for 5 folds"), "{:?}", text(&o));
}

#[test]
fn serve_routes_by_the_policys_heads_and_reloads_a_refitted_file() {
    let dir = tempfile::tempdir().unwrap();
    let heads = dir.path().join("heads.json");
    let g = write(dir.path(), "g.jsonl", &outcomes(&garden(), &kitchen()));
    let k = write(dir.path(), "k.jsonl", &outcomes(&kitchen(), &garden()));
    assert!(fit(&g, &heads, &[]).status.success());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(support::fake_openai::Fake::start());
    let policy = write(
        dir.path(),
        "p.yaml",
        &format!(
            "version: 1\nledger: none\nrouter: {{ heads: {} }}\nproviders:\n  up: {{ kind: openai, base_url: \"{}\", api_key: upstream-secret }}\nmodels:\n  big: {{ provider: up, price: {{ input: 10, output: 30 }} }}\n  small: {{ provider: up, price: {{ input: 0.1, output: 0.3 }} }}\naliases: {{ auto: router }}\nroutes:\n  - {{ name: hard, when: {{ strong_score: \">= 0.5\" }}, to: big }}\n  - {{ name: easy, to: small }}\n",
            heads.display(),
            fake.base_url()
        ),
    );
    let check = tollgate()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(check.status.success(), "{:?}", text(&check));
    let log = dir.path().join("serve.log");
    let (child, url) = support::spawn_serve_logged(
        env!("CARGO_BIN_EXE_tollgate"),
        &policy,
        std::fs::File::create(&log).unwrap(),
    );
    // Killed however the test ends.
    struct Serving(std::process::Child);
    impl Drop for Serving {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let serving = Serving(child);
    let route = |prompt: &str| {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .json(&json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]}))
                .send()
                .await
                .unwrap();
            let route = r.headers().get("x-tollgate-route").cloned();
            let status = r.status();
            let body = r.text().await.unwrap();
            assert_eq!(
                status,
                200,
                "{body}\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
            route.unwrap().to_str().unwrap().to_string()
        })
    };
    assert_eq!(route(HELD_OUT_GARDEN), "hard");
    assert_eq!(route(HELD_OUT_KITCHEN), "easy");

    // Refit on the reverse outcomes, over the same file: the running
    // gateway sees the file change and routes by the new heads.
    assert!(fit(&k, &heads, &[]).status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while route(HELD_OUT_GARDEN) != "easy" {
        assert!(
            std::time::Instant::now() < deadline,
            "the refitted heads were not picked up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(route(HELD_OUT_KITCHEN), "hard");

    // A broken heads file is refused and the last good heads stay.
    std::fs::write(&heads, "{\"features\": 3}").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(route(HELD_OUT_KITCHEN), "hard");
    drop(serving);

    let check = tollgate()
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check).1.contains("router.heads"),
        "{:?}",
        text(&check)
    );
}

#[test]
fn a_broken_heads_file_is_refused_by_every_command_that_takes_it() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write(dir.path(), "broken.json", "{\"features\": 3}");
    let prompts = write(dir.path(), "p.jsonl", "{\"prompt\": \"hi\"}\n");
    for args in [
        vec!["classify", "--jsonl"],
        vec!["route", "eval", "--outcomes"],
    ] {
        let out = tollgate()
            .args(&args)
            .arg(&prompts)
            .arg("--router")
            .arg(&broken)
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("broken.json: router heads"),
            "{args:?}: {stderr}"
        );
    }
    let out = tollgate()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-anonymous",
            "--config",
            "policies/default.yaml",
            "--router",
        ])
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("broken.json: router heads"),
        "{:?}",
        text(&out)
    );
}
