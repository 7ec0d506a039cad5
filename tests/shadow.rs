//! Router learning from live traffic, full stack: a sampled request is
//! answered as usual, then sent to the other side of the decision, judged,
//! and its outcome appended where `route fit` reads it; the learning calls
//! are priced, in the ledger under their own key and budget, shown apart
//! in the report, and never on the client's path.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_openai::{Behavior, Fake, Options as FakeOptions};
use tollgate::gateway::{Gateway, Options};

const STRONG_SAYS: &str = "A careful, complete answer from the strong model.";
const APP_KEY: &str = "tg_shadow_app";
const OPS_KEY: &str = "tg_shadow_ops";

struct Setup {
    url: String,
    gw: Arc<Gateway>,
    strong: Fake,
    weak: Fake,
    judge: Fake,
    outcomes: PathBuf,
    ledger: PathBuf,
    _dir: tempfile::TempDir,
}

/// Strong, weak and judge models on three fakes; code goes to the strong
/// model, the rest to the weak one; `shadow` samples every request.
async fn setup(budget_usd: &str, sample: &str) -> Setup {
    let strong = Fake::start_with(FakeOptions {
        greeting: Some(STRONG_SAYS.into()),
        ..FakeOptions::default()
    })
    .await;
    let weak = Fake::start().await;
    let judge = Fake::start_with(FakeOptions {
        judge: Some(("strong model".into(), "poem".into())),
        ..FakeOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outcomes = dir.path().join("outcomes.jsonl");
    let ledger = dir.path().join("ledger.sqlite");
    let yaml = format!(
        r#"version: 1
ledger: "sqlite:{ledger}"
server: {{ metrics: open }}
providers:
  s: {{ kind: openai, base_url: "{s}", api_key: upstream-secret }}
  w: {{ kind: openai, base_url: "{w}", api_key: upstream-secret }}
  j: {{ kind: openai, base_url: "{j}", api_key: upstream-secret }}
models:
  big: {{ provider: s, price: {{ input: 10, output: 30 }} }}
  small: {{ provider: w, price: {{ input: 0.5, output: 1.5 }} }}
  grader: {{ provider: j, price: {{ input: 2, output: 8 }} }}
baseline: big
aliases: {{ auto: router }}
routes:
  - {{ name: hard, when: {{ task: [code] }}, to: big }}
  - {{ name: easy, to: small }}
shadow: {{ sample: {sample}, strong: big, weak: small, judge: grader, budget_usd: {budget_usd}, period: day, outcomes: "{out}" }}
keys:
  - {{ id: app, team: web, hash: "{app}" }}
  - {{ id: ops, team: ops, hash: "{ops}", admin: true }}
"#,
        ledger = ledger.display(),
        s = strong.base_url(),
        w = weak.base_url(),
        j = judge.base_url(),
        out = outcomes.display(),
        app = support::hash(APP_KEY),
        ops = support::hash(OPS_KEY),
    );
    let policy = tollgate::policy::load_str("shadow.yaml", &yaml, Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(policy, &Options::default()).unwrap());
    let url = format!("http://{}", support::serve(gw.clone()).await);
    Setup {
        url,
        gw,
        strong,
        weak,
        judge,
        outcomes,
        ledger,
        _dir: dir,
    }
}

impl Setup {
    async fn ask(&self, prompt: &str, stream: bool) -> (reqwest::StatusCode, String) {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(APP_KEY)
            .json(&json!({"model": "auto", "stream": stream,
                          "messages": [{"role": "user", "content": prompt}]}))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// The outcome lines once `n` are written (waits up to 10 s).
    async fn outcomes(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = std::fs::read_to_string(&self.outcomes)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "{} of {n} outcomes", lines.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// (key, route, model, cost) of every ledger row.
    fn rows(&self) -> Vec<(String, String, String, i64)> {
        assert!(self
            .gw
            .ledger
            .as_ref()
            .unwrap()
            .flush(Duration::from_secs(5)));
        let conn = rusqlite::Connection::open(&self.ledger).unwrap();
        let mut stmt = conn
            .prepare(
                "SELECT key_id, route, model, cost_nanos FROM tollgate_ledger ORDER BY ts, rowid",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

#[tokio::test]
async fn a_weak_answer_is_shadowed_by_the_strong_model_judged_and_written() {
    let s = setup("1", "1").await;
    let (status, body) = s.ask("Write me a poem about the sea", false).await;
    assert_eq!(status, 200);
    // The client's answer is the weak model's, unchanged.
    assert!(body.contains("Hello from the fake upstream."), "{body}");
    let o = &s.outcomes(1).await[0];
    assert_eq!(o["answered"], "small");
    assert_eq!(
        (o["strong_model"].as_str(), o["weak_model"].as_str()),
        (Some("big"), Some("small"))
    );
    // The judge graded the strong answer 9 and the weak one 2, in
    // whichever order it saw them.
    assert_eq!(
        (o["strong"].as_f64(), o["weak"].as_f64()),
        (Some(9.0), Some(2.0)),
        "{o}"
    );
    assert!(o["judged_first"] == "strong" || o["judged_first"] == "weak");
    assert_eq!(o["messages"][0]["content"], "Write me a poem about the sea");
    // The other side was asked without a stream, the judge saw both.
    assert_eq!((s.weak.hits(), s.strong.hits(), s.judge.hits()), (1, 1, 1));
    let shadow = &s.strong.requests()[0].body;
    assert!(
        shadow.get("stream").is_none() && shadow["model"] == "big",
        "{shadow}"
    );
    let judge = s.judge.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(judge.contains(STRONG_SAYS) && judge.contains("Hello from the fake upstream."));

    // Three rows: the client's, and two of router learning, priced.
    let rows = s.rows();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2.as_str()), ("app", "small"));
    let learning: Vec<_> = rows.iter().filter(|r| r.0 == "router-learning").collect();
    assert_eq!(learning.len(), 2);
    assert!(
        learning.iter().all(|r| r.1 == "router-learning" && r.3 > 0),
        "{rows:?}"
    );
    let models: Vec<&str> = learning.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(models, ["big", "grader"]);

    // Shown apart in the report and counted in the metrics.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["report", "--ledger"])
        .arg(format!("sqlite:{}", s.ledger.display()))
        .output()
        .unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("ROUTER LEARNING: 2 shadow and judge calls"),
        "{report}"
    );
    let metrics = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tollgate_router_learning_outcomes_total 1"),
        "{metrics}"
    );
    let page = reqwest::Client::new()
        .get(format!("{}/dashboard", s.url))
        .bearer_auth(OPS_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<h2>Router learning</h2><div>2 shadow and judge calls"),
        "{page}"
    );
}

#[tokio::test]
async fn a_streamed_strong_answer_is_collected_and_the_weak_model_shadows_it() {
    let s = setup("1", "1").await;
    let (status, body) = s
        .ask("Write a Python function that reverses a list", true)
        .await;
    assert_eq!(status, 200);
    assert!(body.contains("data: [DONE]"));
    let o = &s.outcomes(1).await[0];
    assert_eq!(o["answered"], "big");
    assert_eq!((s.strong.hits(), s.weak.hits(), s.judge.hits()), (1, 1, 1));
    // The judge saw the streamed text, put back together.
    let judge = s.judge.requests()[0].body["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(judge.contains("Hello from the fake upstream."), "{judge}");
    // Not a poem: both graded 8.
    assert_eq!(
        (o["strong"].as_f64(), o["weak"].as_f64()),
        (Some(8.0), Some(8.0))
    );
}

#[tokio::test]
async fn the_client_never_waits_for_learning() {
    let s = setup("1", "1").await;
    // The strong side takes 1.5 s to answer the shadow call.
    s.strong
        .script([Behavior::Delay(Duration::from_millis(1500))]);
    let started = Instant::now();
    let (status, _) = s.ask("Write me a poem about rain", false).await;
    let client = started.elapsed();
    assert_eq!(status, 200);
    // The client had its answer while the shadow call was still out.
    assert!(
        !s.outcomes.exists(),
        "an outcome was written before the client's answer"
    );
    assert!(client < Duration::from_millis(1500), "{client:?}");
    s.outcomes(1).await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn learning_stops_at_its_own_budget_and_the_client_is_untouched() {
    // $0.000001 a day: not enough for the strong model's reservation.
    let s = setup("0.000001", "1").await;
    let (status, body) = s.ask("Write me a poem about snow", false).await;
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while s
        .gw
        .counters
        .shadow_failures
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the refused learning was not counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!s.outcomes.exists());
    assert_eq!((s.strong.hits(), s.judge.hits()), (0, 0));
    let rows = s.rows();
    assert_eq!(rows.iter().filter(|r| r.0 == "app").count(), 1);
    assert!(
        rows.iter()
            .filter(|r| r.0 == "router-learning")
            .all(|r| r.3 == 0),
        "{rows:?}"
    );
}

#[tokio::test]
async fn unsampled_requests_are_never_shadowed() {
    let s = setup("1", "0").await;
    for i in 0..5 {
        assert_eq!(
            s.ask(&format!("Write me a poem, number {i}"), false)
                .await
                .0,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((s.strong.hits(), s.judge.hits()), (0, 0));
    assert!(!s.outcomes.exists());
}

const TOPICS: [&str; 12] = [
    "the sea",
    "autumn",
    "a city at night",
    "my grandmother",
    "a lost dog",
    "the moon",
    "winter trees",
    "a train journey",
    "the desert",
    "first love",
    "an old house",
    "rain",
];

#[tokio::test]
async fn shadow_outcomes_feed_route_fit() {
    // Poems: only the strong model does well. Capitals: both do.
    let s = setup("5", "1").await;
    for (i, t) in TOPICS.iter().enumerate() {
        assert_eq!(
            s.ask(&format!("Write a short poem about {t}"), false)
                .await
                .0,
            200
        );
        let country = ["France", "Peru", "Japan", "Kenya", "Norway", "Chile"][i % 6];
        assert_eq!(
            s.ask(
                &format!("What is the capital of {country}? Question {i}"),
                false
            )
            .await
            .0,
            200
        );
    }
    let n = 2 * TOPICS.len();
    let lines = s.outcomes(n).await;
    assert_eq!(lines.len(), n);
    let heads = s.outcomes.with_extension("heads.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["route", "fit", "--outcomes"])
        .arg(&s.outcomes)
        .arg("--out")
        .arg(&heads)
        .args(["--folds", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("24 outcomes (24 distinct prompts)"),
        "{stdout}"
    );
    let fitted: Value = serde_json::from_str(&std::fs::read_to_string(&heads).unwrap()).unwrap();
    // Half the rows gain: 0.75 is a perfect ranking.
    assert!(
        fitted["fitted"]["held_out"]["apgr"].as_f64().unwrap() > 0.7,
        "{stdout}"
    );

    // The report closes the loop: the heads in use on these outcomes, and
    // what a fit would change, held out.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["report", "--ledger"])
        .arg(format!("sqlite:{}", s.ledger.display()))
        .arg("--outcomes")
        .arg(&s.outcomes)
        .output()
        .unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("ROUTER QUALITY on the last 24 of 24 outcomes")
            && report.contains("at the strong share they saw (0.0%)"),
        "{report}"
    );
    let apgr = |after: &str| -> f64 {
        let at = report.find(after).unwrap() + after.len();
        report[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    let (in_use, fit) = (
        apgr("heads in use: APGR "),
        apgr("route fit, held out: APGR "),
    );
    assert!(fit > 0.7, "{report}");
    assert!(
        report.contains(&format!("({:+.3})", fit - in_use)),
        "{report}"
    );
}

#[test]
fn a_bad_shadow_block_names_every_error() {
    let yaml = format!(
        r#"version: 1
ledger: none
providers:
  s: {{ kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: k }}
models:
  big: {{ provider: s, price: {{ input: 10, output: 30 }} }}
keys:
  - {{ id: router-learning, team: t, hash: "{}" }}
shadow: {{ sample: 2, weak: nope, judge: big, budget_usd: 1, period: hourly, outcomes: " " }}
"#,
        support::hash("k")
    );
    let e = tollgate::policy::load_str("bad.yaml", &yaml, Path::new("."), &|_| None)
        .unwrap_err()
        .to_string();
    for want in [
        "shadow.sample: must be a share in [0, 1]",
        "shadow.weak: unknown model `nope`",
        "shadow.period: unknown period `hourly`",
        "shadow.outcomes: name the JSON lines file",
        "the key id `router-learning` is the shadow calls' own",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
}

#[test]
fn a_short_block_takes_the_catch_all_route_and_a_default_file() {
    let policy = |routes: &str| {
        format!(
            "version: 1\nledger: none\nproviders:\n  s: {{ kind: openai, base_url: \"http://127.0.0.1:9/v1\", api_key: k }}\nmodels:\n  gpt-4: {{ provider: s, price: {{ input: 30, output: 60 }} }}\n  small: {{ provider: s, price: {{ input: 0.5, output: 1.5 }} }}\naliases: {{ auto: router }}\nroutes:\n{routes}shadow: {{ sample: 0.02, judge: gpt-4, budget_usd: 5, period: day }}\n"
        )
    };
    let p = tollgate::policy::load_str(
        "short.yaml",
        &policy("  - { name: hard, when: { task: [code] }, to: gpt-4 }\n  - { name: rest, to: small }\n"),
        Path::new("."),
        &|_| None,
    )
    .unwrap();
    let s = p.shadow.as_ref().unwrap();
    assert_eq!(p.models[s.strong].name, "gpt-4"); // the baseline
    assert_eq!(p.models[s.weak].name, "small"); // the catch-all route's
    assert_eq!(s.outcomes, Path::new("router-outcomes.jsonl"));
    assert!(p.budgets.iter().any(|b| b.name == s.budget));
    // Without a catch-all route, the weak model must be named.
    let e = tollgate::policy::load_str(
        "short.yaml",
        &policy("  - { name: hard, when: { task: [code] }, to: small }\n"),
        Path::new("."),
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("shadow.weak: name the weak model"), "{e}");
}

#[tokio::test]
async fn tool_calls_and_several_choices_are_never_shadowed() {
    let s = setup("1", "1").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    for extra in [json!({"tools": tools}), json!({"n": 2})] {
        let mut body = json!({"model": "auto",
            "messages": [{"role": "user", "content": "Write me a poem about Paris weather"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", s.url))
            .bearer_auth(APP_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((s.weak.hits(), s.strong.hits(), s.judge.hits()), (2, 0, 0));
    assert!(!s.outcomes.exists());
}
